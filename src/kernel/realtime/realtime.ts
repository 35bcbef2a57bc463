// The realtime port: modules push to browsers (a user's sockets, a chat's room) without knowing where the
// socket.io server runs. It rides the socket.io Redis emitter, so it works from any process and any
// instance sharing Redis.
import { Emitter } from '@socket.io/redis-emitter';
import type { Redis } from 'ioredis';

export const userRoom = (userId: string) => `user:${userId}`;
export const chatRoom = (chatId: string) => `chat:${chatId}`;
export const sessionRoom = (sessionId: string) => `session:${sessionId}`;
export const apiKeyRoom = (apiKeyId: string) => `apikey:${apiKeyId}`;

export class Realtime {
  private readonly emitter: Emitter;

  constructor(client: Redis) {
    this.emitter = new Emitter(client);
  }

  toUser(userId: string, event: string, payload: unknown): void {
    this.emitter.to(userRoom(userId)).emit(event, payload);
  }

  toChat(chatId: string, event: string, payload: unknown): void {
    this.emitter.to(chatRoom(chatId)).emit(event, payload);
  }

  /** Closes every open socket of a user (after revocation of all their sessions), on every instance. */
  disconnectUser(userId: string): void {
    this.emitter.in(userRoom(userId)).disconnectSockets(true);
  }

  /** Closes the sockets opened with one API key (after its revocation), on every instance. */
  disconnectApiKey(apiKeyId: string): void {
    this.emitter.in(apiKeyRoom(apiKeyId)).disconnectSockets(true);
  }

  /** Closes the sockets opened with one session's tokens (after its logout), on every instance. */
  disconnectSession(sessionId: string): void {
    this.emitter.in(sessionRoom(sessionId)).disconnectSockets(true);
  }
}

// The realtime port: modules push to browsers (a user's sockets, a chat's room) without knowing where the
// socket.io server runs. It rides the socket.io Redis emitter, so it works from any process and any
// instance sharing Redis. In a process that runs the socket.io server itself, pushes go through that
// server instead: its sockets get them at once (no trip through Redis and back), and its Redis adapter
// publishes them to the other instances as the emitter would.
import { Emitter } from '@socket.io/redis-emitter';
import type { Redis } from 'ioredis';

export const userRoom = (userId: string) => `user:${userId}`;
export const chatRoom = (chatId: string) => `chat:${chatId}`;
export const sessionRoom = (sessionId: string) => `session:${sessionId}`;
export const apiKeyRoom = (apiKeyId: string) => `apikey:${apiKeyId}`;
/** Every socket of a user holding `role` (joined at the handshake, from the credential's roles). */
export const roleRoom = (role: string) => `role:${role}`;

/**
 * What the emitter needs of a Redis client (it only publishes). Publishes made in the same turn of the
 * event loop go out as one pipeline after it: a streamed reply emits a burst of deltas at once (a model
 * host often sends several tokens in one TCP read), and one write of N commands costs far less than N
 * writes. Order is kept (one queue, one connection); the delay is at most the rest of the current
 * event-loop turn.
 */
class BatchingPublisher {
  private queue: [string, string | Buffer][] = [];
  private scheduled = false;

  constructor(private readonly client: Redis) {}

  publish(channel: string, message: string | Buffer): void {
    this.queue.push([channel, message]);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    // Realtime pushes are best effort (a browser re-reads what it missed); a failed publish must not
    // become an unhandled rejection.
    if (batch.length === 1) {
      this.client.publish(batch[0]![0], batch[0]![1]).catch(() => undefined);
      return;
    }
    const pipeline = this.client.pipeline();
    for (const [channel, message] of batch) pipeline.publish(channel, message);
    pipeline.exec().catch(() => undefined);
  }
}

/** What the port needs of a socket.io server running in this process (a `Server` with the Redis adapter). */
export interface LocalSockets {
  to(room: string): { emit(event: string, ...args: unknown[]): unknown };
}

export class Realtime {
  private readonly emitter: Emitter;
  private local: LocalSockets | undefined;

  constructor(client: Redis) {
    this.emitter = new Emitter(new BatchingPublisher(client));
  }

  /** The socket.io server of this process (undefined: none, or it closed): pushes go through it. */
  attachLocal(io: LocalSockets | undefined): void {
    this.local = io;
  }

  toUser(userId: string, event: string, payload: unknown): void {
    this.push(userRoom(userId), event, payload);
  }

  toChat(chatId: string, event: string, payload: unknown): void {
    this.push(chatRoom(chatId), event, payload);
  }

  /** To every signed-in socket of a role (e.g. admins asked to decide an approval only they may give). */
  toRole(role: string, event: string, payload: unknown): void {
    this.push(roleRoom(role), event, payload);
  }

  private push(room: string, event: string, payload: unknown): void {
    if (this.local) this.local.to(room).emit(event, payload);
    else this.emitter.to(room).emit(event, payload);
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

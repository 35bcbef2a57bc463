// How the edge learns who is calling. The `auth` module provides the real one; until it is wired, no
// credential is accepted and `user`/`admin` routes answer 401.
import type { Actor } from '../kernel/context/request-context.js';

export type Authenticator = (token: string) => Promise<Actor | undefined>;

export const refuseAll: Authenticator = async () => undefined;

export function bearerToken(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return m?.[1];
}

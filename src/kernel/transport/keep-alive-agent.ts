// The one way this codebase keeps outgoing HTTP connections alive. The agent's `timeout` is what makes
// it close an idle pooled socket a second before the server would: Node reads an answer's
// `Keep-Alive: timeout=N` only when the agent has a timeout of its own, and then uses N - 1 s when that
// is shorter. Without it a socket stayed pooled until the server closed it, and a request sent on it as
// it closed failed (ECONNRESET). It takes a busy caller: the server's FIN waits unread while the event
// loop is busy, so the socket still looks free when the next request picks it. Most likely what failed
// one chat turn `unavailable` in the benchmark with `llm` lifted, at 20 turns/s (`llm.generate` is not
// idempotent, so it is not retried). A request in progress is not cut by it: the request only emits
// 'timeout', which callers may act on (the guard proxy does, with its own per-request timeout).
import http from 'node:http';
import https from 'node:https';

/** How long a pooled socket may idle when the server names no keep-alive timeout. */
const IDLE_SOCKET_MS = 30_000;

export function keepAliveAgent(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, timeout: IDLE_SOCKET_MS });
}

export function keepAliveHttpsAgent(maxSockets: number): https.Agent {
  return new https.Agent({ keepAlive: true, maxSockets, timeout: IDLE_SOCKET_MS });
}

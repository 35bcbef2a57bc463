// The HTTP binding and the RPC server, over real loopback HTTP: the shared behaviour table (the same
// rows as the local binding), then what only a wire has: credentials, headers, retries, the circuit
// breaker, health of an unreachable target, and the NDJSON framing.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { withContext } from '../../../src/kernel/context/request-context.js';
import { createHttpBinding, type HttpBindingOptions } from '../../../src/kernel/transport/http-binding.js';
import { createLocalBinding } from '../../../src/kernel/transport/local-binding.js';
import { decodeActor, headers as wireHeaders } from '../../../src/kernel/transport/wire.js';
import { silentLogger, startRpcHost, type RpcHostOptions } from '../../support/describe-over-bindings.js';
import { collect, errorOf, probeBehaviour } from './probe-behaviour.js';
import { probeContract, probeHandlers, ProbeRecorder } from './probe-contract.js';

probeBehaviour(['http']);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function hostProbe(opts: RpcHostOptions = {}) {
  const rec = new ProbeRecorder();
  const local = createLocalBinding(probeContract, probeHandlers(rec), { logger: silentLogger() });
  const host = await startRpcHost([{ contract: probeContract, port: local as unknown as Record<string, unknown> }], opts);
  cleanups.push(() => host.close());
  return { rec, host };
}

type ClientOptions = Partial<Omit<HttpBindingOptions, 'resolveUrl' | 'internalToken'>>;
function client(resolveUrl: () => string | undefined, internalToken: string, extra: ClientOptions = {}) {
  return createHttpBinding(probeContract, { resolveUrl, internalToken, ...extra });
}

/** A loopback port with nothing listening on it: connections are refused. */
async function deadUrl(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

/** A target that accepts TCP connections and drops each at once, counting them. */
async function droppingTarget(): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  const s = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, connections: () => connections };
}

function rpc(url: string, operation: string, body: string, token?: string): Promise<Response> {
  return fetch(`${url}/rpc/probe/${operation}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body,
  });
}

describe('RPC server: internal credential', () => {
  it('refuses a request without the token with 401 unauthenticated, and runs nothing', async () => {
    const { rec, host } = await hostProbe();
    const res = await rpc(host.url, 'echo', JSON.stringify({ input: { text: 'hi' } }));
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthenticated');
    expect(rec.calls).toEqual({});
  });

  it('refuses a binding holding the wrong token, without retrying even an idempotent call', async () => {
    const { rec, host } = await hostProbe();
    const port = client(() => host.url, 'not-the-token');
    const err = await errorOf(port.echo({ text: 'hi' }));
    expect(err.code).toBe('unauthenticated');
    expect(host.requests()).toBe(1);
    expect(rec.calls).toEqual({});
  });

  it('refuses every call when the server has no token configured', async () => {
    const { rec, host } = await hostProbe({ internalToken: null });
    const err = await errorOf(client(() => host.url, 'anything').echo({ text: 'hi' }));
    expect(err.code).toBe('unauthenticated');
    expect(rec.calls).toEqual({});
  });

  it('refuses an unauthenticated caller before reading its body', async () => {
    const { host } = await hostProbe();
    // Larger than the body limit: a server parsing first would answer 413, not 401.
    const res = await rpc(host.url, 'echo', JSON.stringify({ input: { text: 'x'.repeat(11 * 1024 * 1024) } }), 'wrong');
    expect(res.status).toBe(401);
  });
});

describe('RPC server: wire format', () => {
  it('validates input on the server as well, answering 400 invalid_input naming the field', async () => {
    const { rec, host } = await hostProbe();
    const res = await rpc(host.url, 'echo', JSON.stringify({ input: { text: 'a', repeat: 'twice' } }), host.internalToken);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; details: { path: string }[] } };
    expect(body.error.code).toBe('invalid_input');
    expect(body.error.details.map((d) => d.path)).toEqual(['repeat']);
    expect(rec.calls).toEqual({});
  });

  it('answers malformed JSON with the error envelope (400 invalid_input), not an HTML page', async () => {
    const { host } = await hostProbe();
    const res = await rpc(host.url, 'echo', '{"input":', host.internalToken);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_input');
  });

  it('answers an over-large body with 413 payload_too_large', async () => {
    const { host } = await hostProbe();
    const res = await rpc(host.url, 'echo', JSON.stringify({ input: { text: 'x'.repeat(11 * 1024 * 1024) } }), host.internalToken);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
  });

  it('answers an unknown operation with 404 not_found', async () => {
    const { host } = await hostProbe();
    const res = await rpc(host.url, 'nope', JSON.stringify({ input: {} }), host.internalToken);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  it('streams NDJSON: a line per chunk, then an end line, or an error line after the chunks so far', async () => {
    const { host } = await hostProbe();
    const ok = await rpc(host.url, 'count', JSON.stringify({ input: { n: 2 } }), host.internalToken);
    expect(ok.headers.get('content-type')).toContain('application/x-ndjson');
    const okLines = (await ok.text()).trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(okLines).toEqual([{ chunk: { i: 0 } }, { chunk: { i: 1 } }, { end: true }]);

    const failing = await rpc(host.url, 'count', JSON.stringify({ input: { n: 3, failAt: 1 } }), host.internalToken);
    expect(failing.status).toBe(200); // the head went out with the first chunk
    const failLines = (await failing.text()).trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(failLines).toEqual([{ chunk: { i: 0 } }, { error: expect.objectContaining({ code: 'conflict', message: 'conflict at 1' }) }]);
  });

  it('sends request id, actor, deadline and idempotency key as headers', async () => {
    const seen: Record<string, string | undefined>[] = [];
    const { host } = await hostProbe({
      before: (app) =>
        app.use((req, _res, next) => {
          seen.push({
            requestId: req.header(wireHeaders.requestId),
            actor: req.header(wireHeaders.actor),
            deadline: req.header(wireHeaders.deadline),
            idempotencyKey: req.header(wireHeaders.idempotencyKey),
          });
          next();
        }),
    });
    const port = client(() => host.url, host.internalToken);
    const actor = { type: 'user' as const, id: 'u-7', roles: ['user'] };
    const deadline = Date.now() + 4_000;
    await withContext({ requestId: 'req-wire', actor, deadline, idempotencyKey: 'saga-1:step' }, () => port.echo({ text: 'x' }));
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ requestId: 'req-wire', deadline: String(deadline), idempotencyKey: 'saga-1:step' });
    expect(decodeActor(seen[0]?.actor)).toEqual(actor);
  });
});

describe('HTTP binding: retries', () => {
  /** Makes the next `n` answers vanish: the handler runs, then the connection is cut instead of answering. */
  async function hostDroppingAnswers() {
    let drop = 0;
    const { rec, host } = await hostProbe({
      before: (app) =>
        app.use((req, res, next) => {
          if (drop > 0) {
            drop--;
            // The handler runs; its answer (the response's end) never leaves.
            res.end = (() => {
              req.socket.destroy();
              return res;
            }) as typeof res.end;
          }
          next();
        }),
    });
    return { rec, host, dropNext: (n: number) => (drop = n) };
  }

  it('repeats an idempotent call whose answer was lost, so it succeeds (the handler ran twice)', async () => {
    const { rec, host, dropNext } = await hostDroppingAnswers();
    const port = client(() => host.url, host.internalToken, { breaker: { volumeThreshold: 100 } });
    dropNext(1);
    await expect(port.echo({ text: 'again' })).resolves.toEqual({ text: 'again' });
    expect(rec.calls.echo).toBe(2);
  });

  it('never repeats a non-idempotent call whose answer was lost: unavailable, handler ran once', async () => {
    const { rec, host, dropNext } = await hostDroppingAnswers();
    const port = client(() => host.url, host.internalToken, { breaker: { volumeThreshold: 100 } });
    dropNext(1);
    const err = await errorOf(port.record({ note: 'once' }));
    expect(err.code).toBe('unavailable');
    expect(rec.calls.record).toBe(1);
  });

  it('tries an idempotent call 1 + retries times against a target that drops connections, others once', async () => {
    const target = await droppingTarget();
    const port = client(() => target.url, 'token', { retries: 2, breaker: { volumeThreshold: 100 } });
    expect((await errorOf(port.echo({ text: 'x' }))).code).toBe('unavailable');
    expect(target.connections()).toBe(3);
    expect((await errorOf(port.record({ note: 'x' }))).code).toBe('unavailable');
    expect(target.connections()).toBe(4);
  });

  it('tries an idempotent call 1 + retries times when the target is down (connection refused)', async () => {
    const url = await deadUrl();
    let resolved = 0;
    const port = client(
      () => {
        resolved++;
        return url;
      },
      'token',
      { retries: 2, breaker: { volumeThreshold: 100 } },
    );
    expect((await errorOf(port.echo({ text: 'x' }))).code).toBe('unavailable');
    expect(resolved).toBe(3);
    expect((await errorOf(port.record({ note: 'x' }))).code).toBe('unavailable');
    expect(resolved).toBe(4);
  });
});

describe('HTTP binding: kept-alive connections', () => {
  it('closes an idle connection a second before the target would, so no call is sent on a socket the target is closing', async () => {
    const { rec, host } = await hostProbe();
    // Answers now say `Keep-Alive: timeout=2`: the target closes a connection idle for 2 s.
    host.server.keepAliveTimeout = 2000;
    // Who closed the connection: the target's socket sees the client's end first only when the client closed it.
    const closed = new Promise<{ by: string; idleMs: number }>((resolve) =>
      host.server.once('connection', (socket) => {
        let peerEnded = false;
        let lastCall = Date.now();
        socket.on('data', () => (lastCall = Date.now()));
        socket.on('end', () => (peerEnded = true));
        socket.on('close', () => resolve({ by: peerEnded ? 'client' : 'target', idleMs: Date.now() - lastCall }));
      }),
    );
    const port = client(() => host.url, host.internalToken);
    await port.record({ note: 'first' });
    // Reused while fresh: the same connection.
    await port.record({ note: 'second' });
    const { by, idleMs } = await closed;
    expect(by).toBe('client');
    expect(idleMs).toBeLessThan(2000);
    expect(rec.calls.record).toBe(2);
    // The next call opens a connection of its own and succeeds.
    await expect(port.record({ note: 'third' })).resolves.toBeDefined();
  });
});

describe('HTTP binding: circuit breaker', () => {
  const breaker = { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 200 };

  it('opens after transport failures, then fails fast without reaching the target, and closes once it answers again', async () => {
    const { rec, host } = await hostProbe();
    let url = await deadUrl();
    const port = client(() => url, host.internalToken, { retries: 0, breaker });
    expect(port.$breaker().state).toBe('closed');
    for (let i = 0; i < 3; i++) expect((await errorOf(port.record({ note: 'x' }))).code).toBe('unavailable');
    expect(port.$breaker().state).toBe('open');

    // The target is back, but the breaker has not let anything through yet.
    url = host.url;
    const requestsBefore = host.requests();
    const fast = await errorOf(port.record({ note: 'x' }));
    expect(fast.code).toBe('unavailable');
    expect(fast.message).toMatch(/circuit open/);
    expect(host.requests()).toBe(requestsBefore);
    expect(rec.calls).toEqual({});

    // After resetTimeoutMs one trial call goes through; its success closes the breaker.
    await vi.waitFor(() => expect(port.$breaker().state).toBe('half-open'), { timeout: 5_000, interval: 20 });
    await expect(port.record({ note: 'trial' })).resolves.toEqual({ recorded: 1 });
    expect(port.$breaker().state).toBe('closed');
    await expect(port.echo({ text: 'ok' })).resolves.toEqual({ text: 'ok' });
  });

  it('opens again when the half-open trial call fails', async () => {
    const url = await deadUrl();
    const port = client(() => url, 'token', { retries: 0, breaker });
    for (let i = 0; i < 3; i++) await errorOf(port.record({ note: 'x' }));
    await vi.waitFor(() => expect(port.$breaker().state).toBe('half-open'), { timeout: 5_000, interval: 20 });
    expect((await errorOf(port.record({ note: 'trial' }))).code).toBe('unavailable');
    expect(port.$breaker().state).toBe('open');
  });

  it('stays closed when the target answers with errors: not_found and invalid input are the target working', async () => {
    const { host } = await hostProbe();
    const port = client(() => host.url, host.internalToken, { retries: 0, breaker });
    for (let i = 0; i < 6; i++) expect((await errorOf(port.find({ id: String(i) }))).code).toBe('not_found');
    for (let i = 0; i < 3; i++) expect((await errorOf(port.crash({}))).code).toBe('internal');
    expect(port.$breaker().state).toBe('closed');
  });

  it('does not count a caller whose deadline has already passed against the target', async () => {
    const { host } = await hostProbe();
    const port = client(() => host.url, host.internalToken, { retries: 0, breaker });
    for (let i = 0; i < 5; i++) {
      expect((await errorOf(withContext({ deadline: Date.now() - 1 }, () => port.echo({ text: 'late' })))).code).toBe('timeout');
    }
    expect(port.$breaker().state).toBe('closed');
    expect(host.requests()).toBe(0);
  });
});

describe('HTTP binding: health and failures of the target', () => {
  it('reports down for an unreachable target', async () => {
    const url = await deadUrl();
    const health = await client(() => url, 'token').$health();
    expect(health.status).toBe('down');
  });

  it('reports down when no instance of the module is known', async () => {
    const health = await client(() => undefined, 'token').$health();
    expect(health).toEqual({ status: 'down', detail: expect.stringContaining('no reachable instance') });
  });

  it('times out a remote stream that goes silent even when the server never times it out itself', async () => {
    // A hand-made hosted port without the local binding's idle timeout: the client must not wait forever.
    let release: () => void = () => undefined;
    const stalled = new Promise<void>((r) => (release = r));
    cleanups.push(() => release());
    const hosted = {
      count: () => ({
        async *[Symbol.asyncIterator]() {
          yield { i: 0 };
          await stalled;
        },
      }),
    };
    const host = await startRpcHost([{ contract: probeContract, port: hosted }]);
    cleanups.push(() => host.close());
    const { items, error } = await collect(client(() => host.url, host.internalToken).count({ n: 5 }));
    expect(items).toEqual([{ i: 0 }]);
    expect(error?.code).toBe('timeout');
  });

  it('fails a stream with unavailable when the server goes away mid-stream', async () => {
    const { host } = await hostProbe();
    const port = client(() => host.url, host.internalToken);
    const stream = port.count({ n: 1_000, gapMs: 10 });
    const iterator = stream[Symbol.asyncIterator]();
    await expect(iterator.next()).resolves.toEqual({ done: false, value: { i: 0 } });
    await host.close();
    const rest = await collect({ [Symbol.asyncIterator]: () => iterator });
    expect(rest.error?.code).toBe('unavailable');
  });
});

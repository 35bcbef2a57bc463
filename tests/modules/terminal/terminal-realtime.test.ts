// The terminal module through the REST surface and real socket.io clients, with the real auth module:
// approvals pushed to their owner and decided over the socket, the result of an approved execution
// pushed back, expiry announced without anyone asking, the error envelope and role gates, and
// interactive PTY sessions driven over the socket (input, resize, output), closed when their socket
// goes, on logout and on idle.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { authModule } from '../../../src/modules/auth/module.js';
import { configModule } from '../../../src/modules/config/module.js';
import { healthModule } from '../../../src/modules/health/module.js';
import { terminalModule } from '../../../src/modules/terminal/module.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../../support/app.js';
import { authHttp, expectErrorEnvelope, type AuthHttp, type TokenPair } from '../../support/auth-http.js';

type Ack = { ok: true; data: Record<string, unknown> } | { ok: false; error: { code: string; message: string } };

const TTL_S = 2;

let redis: TestRedis;
let app: TestApp;
let http: AuthHttp;
let admin: TokenPair;
const sockets: Socket[] = [];

async function connected(token: string): Promise<Socket> {
  const socket = connectSocket(app.url, { path: '/ws', transports: ['websocket'], reconnection: false, auth: { token } });
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) => reject(err));
  });
  return socket;
}

/** The next `event` on `socket` whose payload satisfies `match`. */
function next<T = Record<string, unknown>>(socket: Socket, event: string, match: (p: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (p: T) => {
      if (!match(p)) return;
      clearTimeout(timer);
      socket.off(event, on);
      resolve(p);
    };
    socket.on(event, on);
  });
}

function emit(socket: Socket, event: string, payload: unknown): Promise<Ack> {
  return socket.timeout(10_000).emitWithAck(event, payload) as Promise<Ack>;
}

async function json<T = Record<string, unknown>>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect({ status: res.status, body: text }).toMatchObject({ status });
  return JSON.parse(text) as T;
}

/** Collects a session's output until `pattern` shows up in it. */
function outputUntil(socket: Socket, sessionId: string, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('terminal:output', on);
      reject(new Error(`output never matched ${pattern}: ${JSON.stringify(seen)}`));
    }, timeoutMs);
    const on = (p: { sessionId: string; data: string }) => {
      if (p.sessionId !== sessionId) return;
      seen += p.data;
      if (pattern.test(seen)) {
        clearTimeout(timer);
        socket.off('terminal:output', on);
        resolve(seen);
      }
    };
    socket.on('terminal:output', on);
  });
}

beforeAll(async () => {
  redis = await startTestRedis();
  app = await startTestApp({ redisUrl: redis.url, credentials: 'module', catalogue: [configModule, healthModule, authModule, terminalModule] });
  http = authHttp(app.url);
  admin = await http.login('admin', ADMIN_PASSWORD);
  await json(await http.request('PATCH', '/config', { token: admin.accessToken, body: { terminal: { approvalTtlS: TTL_S } } }), 200);
  // Applied when the module has reloaded (config.settings.changed): a held approval then carries the new deadline.
  const user = await http.signedInUser(admin.accessToken);
  for (;;) {
    const e = await json<{ approvalId: string }>(await http.request('POST', '/terminal/execute', { token: user.accessToken, body: { command: 'mkdir probe' } }), 200);
    const a = await json<{ createdAt: string; expiresAt: string }>(await http.request('GET', `/terminal/approvals/${e.approvalId}`, { token: user.accessToken }), 200);
    if (Date.parse(a.expiresAt) - Date.parse(a.createdAt) === TTL_S * 1000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});
afterEach(() => {
  while (sockets.length) sockets.pop()!.close();
});
afterAll(async () => {
  await app?.stop();
  await redis?.stop();
});

describe('approvals over the socket', () => {
  it('asks the owner (only) on their sockets, takes the decision over the socket and pushes the result', async () => {
    const owner = await http.signedInUser(admin.accessToken);
    const other = await http.signedInUser(admin.accessToken);
    const ownerSocket = await connected(owner.accessToken);
    const otherSocket = await connected(other.accessToken);
    let leaked = 0;
    otherSocket.on('approval:requested', () => leaked++);

    const requested = next<{ approvalId: string; command: string; risk: string; reason: string }>(ownerSocket, 'approval:requested');
    const held = await json<{ id: string; status: string; approvalId: string }>(
      await http.request('POST', '/terminal/execute', { token: owner.accessToken, body: { command: 'mkdir from-socket' } }),
      200,
    );
    expect(held.status).toBe('pending_approval');
    expect(await requested).toMatchObject({ approvalId: held.approvalId, command: 'mkdir from-socket', risk: 'moderate', reason: expect.stringContaining('mkdir') });

    // Another user cannot decide it over their socket.
    const foreign = await emit(otherSocket, 'approval:decide', { approvalId: held.approvalId, approve: true });
    expect(foreign).toMatchObject({ ok: false, error: { code: 'not_found' } });

    const pushed = next<{ execution: { id: string; status: string; exitCode: number } }>(ownerSocket, 'terminal:execution', (p) => p.execution.id === held.id);
    const ack = await emit(ownerSocket, 'approval:decide', { approvalId: held.approvalId, approve: true });
    expect(ack).toMatchObject({ ok: true, data: { approval: { id: held.approvalId, status: 'approved' } } });
    expect((await pushed).execution).toMatchObject({ status: 'completed', exitCode: 0 });
    const stored = await json(await http.request('GET', `/terminal/executions/${held.id}`, { token: owner.accessToken }), 200);
    expect(stored).toMatchObject({ status: 'completed', approvalId: held.approvalId });
    expect(leaked).toBe(0);
  });

  it('asks every admin, and no other user, to decide a critical command only an admin may allow', async () => {
    const owner = await http.signedInUser(admin.accessToken);
    const bystander = await http.signedInUser(admin.accessToken);
    const ownerSocket = await connected(owner.accessToken);
    const adminSocket = await connected(admin.accessToken);
    const bystanderSocket = await connected(bystander.accessToken);
    let leaked = 0;
    bystanderSocket.on('approval:requested', () => leaked++);
    const toOwner = next<Record<string, unknown>>(ownerSocket, 'approval:requested');
    const toAdmin = next<Record<string, unknown>>(adminSocket, 'approval:requested');
    const held = await json<{ id: string; risk: string; status: string; approvalId: string }>(
      await http.request('POST', '/terminal/execute', { token: owner.accessToken, body: { command: 'dd if=/dev/zero of=one.bin bs=1 count=1' } }),
      200,
    );
    expect(held).toMatchObject({ risk: 'critical', status: 'pending_approval' });
    expect(await toOwner).toMatchObject({ approvalId: held.approvalId, needsAdmin: true });
    expect(await toAdmin).toMatchObject({ approvalId: held.approvalId, needsAdmin: true, risk: 'critical', ownerId: expect.any(String) });
    // The owner cannot allow it; the admin who heard of it can, over the same socket.
    expect(await emit(ownerSocket, 'approval:decide', { approvalId: held.approvalId, approve: true })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    const pushed = next<{ execution: { id: string; status: string } }>(ownerSocket, 'terminal:execution', (p) => p.execution.id === held.id);
    expect(await emit(adminSocket, 'approval:decide', { approvalId: held.approvalId, approve: true })).toMatchObject({ ok: true, data: { approval: { status: 'approved' } } });
    expect((await pushed).execution).toMatchObject({ status: 'completed' });
    expect(leaked).toBe(0);
  });

  it("closes a user's open sockets when their role changes, so the rooms of the old role are left", async () => {
    const user = await http.signedInUser(admin.accessToken);
    const me = await json<{ id: string }>(await http.request('GET', '/auth/me', { token: user.accessToken }), 200);
    const socket = await connected(user.accessToken);
    const closed = new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
    await json(await http.request('PATCH', `/auth/users/${me.id}`, { token: admin.accessToken, body: { role: 'admin' } }), 200);
    expect(await closed).toBe('io server disconnect');
  });

  it('announces an expiry to the owner without anyone asking', async () => {
    const owner = await http.signedInUser(admin.accessToken);
    const socket = await connected(owner.accessToken);
    const held = await json<{ id: string; approvalId: string }>(
      await http.request('POST', '/terminal/execute', { token: owner.accessToken, body: { command: 'touch never' } }),
      200,
    );
    // Nothing reads or decides it from here on: the delayed job expires it.
    const wait = (TTL_S + 8) * 1000;
    const resolved = next<{ approvalId: string; status: string }>(socket, 'approval:resolved', (p) => p.approvalId === held.approvalId, wait);
    const pushed = next<{ execution: { id: string; status: string } }>(socket, 'terminal:execution', (p) => p.execution.id === held.id, wait);
    expect((await resolved).status).toBe('expired');
    expect((await pushed).execution).toMatchObject({ status: 'denied', reason: expect.stringContaining('expired') });
    expect(await json(await http.request('GET', `/terminal/executions/${held.id}`, { token: owner.accessToken }), 200)).toMatchObject({ status: 'denied' });
  });
});

describe('REST surface', () => {
  it('answers the error envelope naming the field, and gates admin routes', async () => {
    const user = await http.signedInUser(admin.accessToken);
    const bad = await expectErrorEnvelope(await http.request('POST', '/terminal/execute', { token: user.accessToken, body: { command: 'echo a; echo b' } }), 400, 'invalid_input');
    expect(bad.details).toEqual([{ path: 'command', message: expect.stringContaining('not supported') }]);
    await expectErrorEnvelope(await http.request('POST', '/terminal/execute', { token: user.accessToken, body: { command: 'ls', cwd: '../..' } }), 403, 'forbidden');
    await expectErrorEnvelope(await http.request('POST', '/terminal/execute', { body: { command: 'ls' } }), 401, 'unauthenticated');
    await expectErrorEnvelope(await http.request('GET', '/terminal/audit', { token: user.accessToken }), 403, 'forbidden');
    await expectErrorEnvelope(await http.request('POST', '/terminal/sessions', { token: user.accessToken, body: {} }), 403, 'forbidden');
    await expectErrorEnvelope(await http.request('GET', '/terminal/executions/ex_nope', { token: user.accessToken }), 404, 'not_found');
    const audit = await json<{ items: unknown[] }>(await http.request('GET', '/terminal/audit?limit=5', { token: admin.accessToken }), 200);
    expect(audit.items.length).toBeGreaterThan(0);
    const ok = await json(await http.request('POST', '/terminal/execute', { token: user.accessToken, body: { command: 'echo "$HOME" ~ *' } }), 200);
    expect(ok).toMatchObject({ status: 'completed', stdout: '$HOME ~ *\n' });
    const classified = await json(await http.request('POST', '/terminal/classify', { token: user.accessToken, body: { command: 'rm -rf /' } }), 200);
    expect(classified).toMatchObject({ risk: 'forbidden', needsApproval: true, pipeline: [['rm', '-rf', '/']] });
  });
});

describe('interactive sessions', () => {
  it('runs a shell over a PTY: input and resize in, output out; closed when its socket goes', async () => {
    const socket = await connected(admin.accessToken);
    const watcher = await connected(admin.accessToken);
    const session = await json<{ id: string; cwd: string }>(
      await http.request('POST', '/terminal/sessions', { token: admin.accessToken, body: { cols: 80, rows: 24, socketId: socket.id } }),
      201,
    );
    expect(session.cwd).toBe('.');
    const sum = outputUntil(socket, session.id, /pty-5/);
    expect(await emit(socket, 'terminal:input', { sessionId: session.id, data: 'echo pty-$((2+3))\r' })).toMatchObject({ ok: true });
    await sum;
    expect(await emit(socket, 'terminal:resize', { sessionId: session.id, cols: 100, rows: 40 })).toMatchObject({ ok: true });
    const size = outputUntil(socket, session.id, /40 100/);
    await emit(socket, 'terminal:input', { sessionId: session.id, data: 'stty size\r' });
    await size;
    // A plain user cannot drive it.
    const user = await http.signedInUser(admin.accessToken);
    const userSocket = await connected(user.accessToken);
    expect(await emit(userSocket, 'terminal:input', { sessionId: session.id, data: 'id\r' })).toMatchObject({ ok: false, error: { code: 'forbidden' } });

    const exited = next<{ sessionId: string; reason: string }>(watcher, 'terminal:exit', (p) => p.sessionId === session.id);
    socket.close();
    expect(await exited).toMatchObject({ reason: 'socket' });
    expect(await emit(watcher, 'terminal:input', { sessionId: session.id, data: 'x' })).toMatchObject({ ok: false, error: { code: 'not_found' } });
  });

  it('closes the sessions a sign-in opened when it logs out', async () => {
    const other = await http.login('admin', ADMIN_PASSWORD);
    const ending = await http.login('admin', ADMIN_PASSWORD);
    const watcher = await connected(other.accessToken);
    const session = await json<{ id: string }>(await http.request('POST', '/terminal/sessions', { token: ending.accessToken, body: {} }), 201);
    const exited = next<{ sessionId: string; reason: string }>(watcher, 'terminal:exit', (p) => p.sessionId === session.id);
    expect((await http.request('POST', '/auth/logout', { token: ending.accessToken })).status).toBe(204);
    expect(await exited).toMatchObject({ reason: 'logout' });
    const audit = await json<{ items: { sessionId?: string; decision: string }[] }>(await http.request('GET', '/terminal/audit?limit=20', { token: other.accessToken }), 200);
    expect(audit.items.filter((i) => i.sessionId === session.id).map((i) => i.decision)).toEqual(['closed (logout)', 'opened']);
  });

  it('closes an idle session', async () => {
    await json(await http.request('PATCH', '/config', { token: admin.accessToken, body: { terminal: { sessionIdleS: 1 } } }), 200);
    const watcher = await connected(admin.accessToken);
    // Wait for the module to reload its settings, then a session without input closes within about a second.
    for (let attempt = 0; ; attempt++) {
      const session = await json<{ id: string }>(await http.request('POST', '/terminal/sessions', { token: admin.accessToken, body: {} }), 201);
      const exit = await next<{ sessionId: string; reason: string }>(watcher, 'terminal:exit', (p) => p.sessionId === session.id, 2500).catch(() => undefined);
      if (exit) {
        expect(exit.reason).toBe('idle');
        break;
      }
      await http.request('DELETE', `/terminal/sessions/${session.id}`, { token: admin.accessToken });
      if (attempt > 5) throw new Error('idle sessions were never closed');
    }
  });
});

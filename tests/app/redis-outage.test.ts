// Redis dies under a running AutoBot that hosts every domain module, stays down a while, and comes back:
// every background loop (event consumers, job workers, the saga worker, the registry's heartbeats,
// index followers, pollers) must take the outage as logged errors and recover, never as an unhandled
// rejection or an uncaught exception (either one ends a production process), and the app must serve
// again. The app runs in a child process whose stderr marks every such escape (watched-server-main.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, expect, it } from 'vitest';
import { INTERNAL_TOKEN } from '../support/app.js';
import { spawnApp, type ChildApp } from '../support/process.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { bearer, USER_TOKEN } from '../support/test-auth.js';

let redis: TestRedis | undefined;
let app: ChildApp | undefined;
let socket: Socket | undefined;
let dir: string | undefined;

afterAll(async () => {
  socket?.close();
  if (app && app.child.exitCode === null && app.child.signalCode === null) {
    app.child.kill('SIGTERM');
    await Promise.race([app.exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (app.child.exitCode === null) app.child.kill('SIGKILL');
  }
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const escapes = (out: string) => out.split('\n').filter((l) => /^(UNHANDLED_REJECTION|UNCAUGHT_EXCEPTION) /.test(l));

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${app?.output().slice(-4000)}`);
    await sleep(200);
  }
}

it('survives Redis being killed and restarted with every module hosted, and serves again', async () => {
  redis = await startTestRedis({ persistence: true });
  dir = mkdtempSync(path.join(tmpdir(), 'abo-'));
  app = await spawnApp(
    {
      REDIS_URL: redis.url,
      AUTOBOT_DATA_DIR: dir,
      PORT: '0',
      AUTOBOT_INTERNAL_TOKEN: INTERNAL_TOKEN,
      AUTOBOT_HEARTBEAT_MS: '500',
      // Nothing listens there: the llm module's host probes fail fast, as with Ollama stopped.
      OLLAMA_URL: 'http://127.0.0.1:9',
    },
    { script: path.resolve(import.meta.dirname, 'support/watched-server-main.ts'), timeoutMs: 90_000 },
  );
  const api = (p: string) => `${app!.url}/api/v1${p}`;
  const post = (p: string, body: unknown) => fetch(api(p), { method: 'POST', headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json' }, body: JSON.stringify(body) });

  // Some work in flight everywhere before the outage: a chat, a document in the pipeline, a socket.
  expect((await post('/chats', { title: 'before the outage' })).status).toBe(201);
  socket = connect(app.url, { path: '/ws', auth: { token: USER_TOKEN }, transports: ['websocket'] });
  await new Promise<void>((resolve, reject) => {
    socket!.once('connect', () => resolve());
    socket!.once('connect_error', reject);
  });
  const form = new FormData();
  form.append('file', new Blob([`# Outage\n\n${'words before the outage. '.repeat(200)}`]), 'outage.md');
  expect((await fetch(api('/documents/upload'), { method: 'POST', headers: bearer(USER_TOKEN), body: form })).status).toBe(202);

  redis.server.kill();
  // Requests keep coming while Redis is away: they are refused (503), nothing else.
  const during = await Promise.all([
    fetch(api('/chats'), { headers: bearer(USER_TOKEN) }),
    post('/documents/url', { url: 'http://127.0.0.1:9/' }),
    fetch(api('/search/suggestions?q=out'), { headers: bearer(USER_TOKEN) }),
    new Promise<unknown>((resolve) => socket!.timeout(5000).emit('chat:join', { chatId: 'c_none' }, (err: unknown, ack: unknown) => resolve(err ?? ack))),
  ]);
  expect(during.slice(0, 3).map((r) => (r as Response).status)).not.toContain(500);
  // Long enough for every loop to fail several times (blocking reads, heartbeats, pollers, retries).
  await sleep(8000);
  expect(escapes(app.output())).toEqual([]);
  await redis.server.start();

  await until('the app to be ready again', async () => (await fetch(api('/health/ready'))).status === 200, 60_000);
  await until('a chat to be created again', async () => (await post('/chats', { title: 'after the outage' })).status === 201, 30_000);
  const chats = (await (await fetch(api('/chats'), { headers: bearer(USER_TOKEN) })).json()) as { items: { title: string }[] };
  expect(chats.items.map((c) => c.title)).toEqual(expect.arrayContaining(['before the outage', 'after the outage']));
  // A document uploaded after the outage goes all the way through the pipeline (jobs and events work).
  const after = new FormData();
  after.append('file', new Blob([`# After\n\n${'words after the outage. '.repeat(50)}`]), 'after.md');
  const res = await fetch(api('/documents/upload'), { method: 'POST', headers: bearer(USER_TOKEN), body: after });
  expect(res.status).toBe(202);
  const id = ((await res.json()) as { items: { id: string }[] }).items[0]!.id;
  await until(
    'the document uploaded after the outage to be indexed',
    async () => ((await (await fetch(api(`/documents/${id}`), { headers: bearer(USER_TOKEN) })).json()) as { status: string }).status === 'indexed',
    60_000,
  );
  // Loops that were sleeping on a back-off get their turn too.
  await sleep(3000);
  expect(app.child.exitCode).toBeNull();
  expect(escapes(app.output())).toEqual([]);

  // And a shutdown while Redis is down again: connections close under loops that are still retrying.
  redis.server.kill();
  await sleep(3000);
  app.child.kill('SIGTERM');
  // The stop is bounded by the shutdown deadline (10 s) even with Redis gone; the child then lingers 3 s.
  const code = await Promise.race([app.exited, sleep(30_000).then(() => 'still running')]);
  expect(escapes(app.output())).toEqual([]);
  expect(app.output()).toContain('STOPPED');
  expect(code).toBe(0);
}, 240_000);

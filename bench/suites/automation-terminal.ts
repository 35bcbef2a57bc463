// A safe command through the terminal API (REST, authentication, classification with real path checks,
// Redis records, audit) against spawning the same program directly from Node, in the same process and
// the same run, rounds alternating so machine drift hits both alike. Target: at most 5 ms added at p50.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../../src/app/server.js';
import { loadConfig } from '../../src/kernel/config/app-config.js';
import { createLogger } from '../../src/kernel/log/logger.js';
import { authModule } from '../../src/modules/auth/module.js';
import { configModule } from '../../src/modules/config/module.js';
import { healthModule } from '../../src/modules/health/module.js';
import { terminalModule } from '../../src/modules/terminal/module.js';
import { fmt, percentile, rows } from '../lib.js';

const PASSWORD = 'bench-admin-password';

function spawnDirect(cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('echo', ['hello', 'world'], { cwd, shell: false, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 && out === 'hello world\n' ? resolve() : reject(new Error(`echo: ${code} ${out}`))));
  });
}

function post(url: URL, agent: http.Agent, token: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function run(): Promise<void> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'abt-'));
  const config = loadConfig({
    PORT: '0',
    AUTOBOT_DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    AUTOBOT_ADMIN_PASSWORD: PASSWORD,
    AUTOBOT_RATE_LIMITS: JSON.stringify({ default: { points: 10_000_000, durationS: 60 }, auth: { points: 1000, durationS: 60 } }),
  });
  const server = await startServer({ config, catalogue: [configModule, healthModule, authModule, terminalModule], logger: createLogger('silent') });
  try {
    const login = await fetch(`${server.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
    const { accessToken } = (await login.json()) as { accessToken: string };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const url = new URL('/api/v1/terminal/execute', server.url);
    const body = JSON.stringify({ command: 'echo hello world' });
    const viaApi = async () => {
      const r = JSON.parse(await post(url, agent, accessToken, body)) as { status: string; stdout: string };
      if (r.status !== 'completed' || r.stdout !== 'hello world\n') throw new Error(`unexpected answer: ${JSON.stringify(r)}`);
    };
    // The gateway's own share (HTTP, authentication, rate limit) on an authenticated route doing nothing.
    const meUrl = new URL('/api/v1/auth/me', server.url);
    const viaMe = () =>
      new Promise<void>((resolve, reject) => {
        const req = http.request(meUrl, { agent, headers: { authorization: `Bearer ${accessToken}` } }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`/auth/me: ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end();
      });
    const workspace = path.join(dataDir, 'terminal', 'workspaces');
    const direct = () => spawnDirect(workspace);

    for (let i = 0; i < 50; i++) {
      await viaApi();
      await direct();
    }
    const api: number[] = [];
    const base: number[] = [];
    const me: number[] = [];
    // CPU of this process per call (server and client side of the API call, or the spawn alone): unlike
    // wall time it hardly moves with the load other processes put on the machine.
    let apiCpu = 0;
    let baseCpu = 0;
    const cpu = () => {
      const u = process.cpuUsage();
      return u.user + u.system;
    };
    for (let i = 0; i < 400; i++) {
      let c = cpu();
      api.push(await timed(viaApi));
      apiCpu += cpu() - c;
      c = cpu();
      base.push(await timed(direct));
      baseCpu += cpu() - c;
      me.push(await timed(viaMe));
    }
    agent.destroy();
    const p50 = percentile(api, 50);
    const b50 = percentile(base, 50);
    const added = p50 - b50;
    rows.push({
      name: 'terminal: `echo hello world` through POST /api/v1/terminal/execute, p50 (ms; p95 in brackets)',
      autobot: `${fmt(p50, 2)} (${fmt(percentile(api, 95), 2)})`,
      baseline: `${fmt(b50, 2)} (${fmt(percentile(base, 95), 2)}) (child_process.spawn, same process); GET /auth/me ${fmt(percentile(me, 50), 2)}`,
      ratio: `+${fmt(added, 2)} ms`,
      target: '<= +5 ms',
      met: added <= 5,
    });
    rows.push({
      name: 'same, CPU of the AutoBot process per call (µs; API: server and client side)',
      autobot: fmt(apiCpu / 400, 0),
      baseline: `${fmt(baseCpu / 400, 0)} (child_process.spawn)`,
      ratio: `+${fmt((apiCpu - baseCpu) / 400 / 1000, 2)} ms`,
      target: '<= +5 ms',
      met: (apiCpu - baseCpu) / 400 / 1000 <= 5,
    });
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

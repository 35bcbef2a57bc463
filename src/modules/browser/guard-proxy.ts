// Chromium's only way out: a small HTTP and CONNECT proxy on loopback. Every request Chromium makes
// (first navigation, each redirect, each sub-resource, https tunnels, websockets) arrives here with the
// host name still unresolved; the SSRF guard resolves it once and judges the addresses, and the proxy
// connects to exactly the address judged. Each browser context has its own credential, so a refusal is
// attributed to the session that caused it, and nobody else on the machine can use the proxy as a relay.
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { SsrfGuard } from './ssrf-guard.js';
import { keepAliveAgent } from '../../kernel/transport/keep-alive-agent.js';

/** Response header marking answers the proxy made itself (never forwarded from a site). */
export const BLOCKED_HEADER = 'x-autobot-blocked';
export const UPSTREAM_ERROR_HEADER = 'x-autobot-upstream-error';

export interface Refusal {
  url: string;
  reason: string;
  at: number;
}

/** One browser context's pass through the proxy. */
export interface ProxyClient {
  readonly username: string;
  readonly password: string;
  /** Requests the guard refused, newest last (bounded). */
  readonly refusals: Refusal[];
  /** Upstream failures (refused, reset, timed out), newest last (bounded). */
  readonly failures: Refusal[];
}

export interface UpstreamConnection {
  host: string;
  address: string;
  port: number;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const KEEP = 20;

function remember(list: Refusal[], r: Refusal): void {
  list.push(r);
  if (list.length > KEEP) list.shift();
}

export class GuardProxy {
  private server: http.Server | undefined;
  private readonly clients = new Map<string, ProxyClient>();
  private readonly sockets = new Set<Duplex>();
  private readonly agent = keepAliveAgent(32);
  /** Observers of every upstream connection the proxy opens (metrics, tests counting connections). */
  readonly upstreamListeners = new Set<(c: UpstreamConnection) => void>();
  port = 0;

  constructor(
    private readonly guard: SsrfGuard,
    private readonly logger: Logger,
    private readonly connectTimeoutMs = 10_000,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => void this.forward(req, res));
    server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void this.tunnel(req, socket, head));
    // Plain-http websocket upgrades would skip the per-request check: refused (Chromium tunnels ws via CONNECT).
    server.on('upgrade', (_req: http.IncomingMessage, socket: Duplex) => socket.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n'));
    server.on('connection', (s: net.Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    server.on('clientError', (_err, socket: Duplex) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.agent.destroy();
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** A new credential for one browser context. */
  register(): ProxyClient {
    const client: ProxyClient = { username: `ctx-${randomBytes(6).toString('hex')}`, password: randomBytes(18).toString('base64url'), refusals: [], failures: [] };
    this.clients.set(client.username, client);
    return client;
  }

  unregister(client: ProxyClient): void {
    this.clients.delete(client.username);
  }

  private clientOf(req: http.IncomingMessage): ProxyClient | undefined {
    const header = req.headers['proxy-authorization'];
    if (typeof header !== 'string' || !header.startsWith('Basic ')) return undefined;
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const sep = decoded.indexOf(':');
    const client = this.clients.get(decoded.slice(0, sep));
    return client && client.password === decoded.slice(sep + 1) ? client : undefined;
  }

  private opened(host: string, address: string, port: number): void {
    for (const l of this.upstreamListeners) l({ host, address, port });
  }

  private async forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const client = this.clientOf(req);
    if (!client) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="autobot"', 'content-length': '0' }).end();
      return;
    }
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.writeHead(400, { 'content-length': '0' }).end();
      return;
    }
    if (target.protocol !== 'http:') {
      this.refuse(res, client, req.url ?? '', `the ${target.protocol} scheme is not allowed`);
      return;
    }
    const port = target.port ? Number(target.port) : 80;
    const verdict = await this.guard.check(target.hostname, port);
    if (!verdict.allowed) {
      if (verdict.kind === 'forbidden') this.refuse(res, client, target.href, verdict.reason);
      else this.failUpstream(res, client, target.href, verdict.reason);
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    this.opened(verdict.host, verdict.address, port);
    // Connect to the judged address; the Host header keeps the name the site expects.
    const upstream = http.request({
      host: verdict.address,
      family: verdict.family,
      port,
      method: req.method,
      path: `${target.pathname}${target.search}`,
      headers,
      agent: this.agent,
      timeout: this.connectTimeoutMs,
    });
    upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    upstream.on('response', (up) => {
      const out: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(up.headers)) if (!HOP_BY_HOP.has(k) && k !== BLOCKED_HEADER && k !== UPSTREAM_ERROR_HEADER && v !== undefined) out[k] = v;
      res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
      up.pipe(res);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) res.destroy();
      else this.failUpstream(res, client, target.href, `cannot reach ${target.host}: ${err.code ?? err.message}`);
    });
    req.pipe(upstream);
  }

  private refuse(res: http.ServerResponse, client: ProxyClient, url: string, reason: string): void {
    remember(client.refusals, { url, reason, at: Date.now() });
    this.logger.info({ url, reason }, 'browser request refused by the SSRF guard');
    const body = `Refused by AutoBot's SSRF guard: ${reason}\n`;
    res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), [BLOCKED_HEADER]: encodeURIComponent(reason) }).end(body);
  }

  private failUpstream(res: http.ServerResponse, client: ProxyClient, url: string, reason: string): void {
    remember(client.failures, { url, reason, at: Date.now() });
    const body = `${reason}\n`;
    res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), [UPSTREAM_ERROR_HEADER]: encodeURIComponent(reason) }).end(body);
  }

  private async tunnel(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    const client = this.clientOf(req);
    if (!client) {
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="autobot"\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(req.url ?? '');
    if (!m) {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const port = Number(m[2]);
    const verdict = await this.guard.check(m[1]!, port);
    if (!verdict.allowed) {
      const list = verdict.kind === 'forbidden' ? client.refusals : client.failures;
      remember(list, { url: `https://${req.url}/`, reason: verdict.reason, at: Date.now() });
      if (verdict.kind === 'forbidden') this.logger.info({ target: req.url, reason: verdict.reason }, 'browser tunnel refused by the SSRF guard');
      socket.end(`HTTP/1.1 ${verdict.kind === 'forbidden' ? '403 Forbidden' : '502 Bad Gateway'}\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    this.opened(verdict.host, verdict.address, port);
    const upstream = net.connect({ host: verdict.address, port, family: verdict.family });
    upstream.setTimeout(this.connectTimeoutMs, () => upstream.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) {
        socket.destroy();
        return;
      }
      remember(client.failures, { url: `https://${req.url}/`, reason: `cannot reach ${req.url}: ${err.code ?? err.message}`, at: Date.now() });
      socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
    });
    socket.once('close', () => upstream.destroy());
    upstream.once('close', () => socket.destroy());
  }
}

// A fake Ollama server for tests and benchmarks. It speaks Ollama's real wire protocol (the one the
// `ollama` npm client and Ollama's docs/api.md describe), so production code talks to it unchanged:
//   POST /api/chat      NDJSON stream (default) or one JSON object with `stream: false`; `tools` in,
//                       `message.tool_calls` out; a final `done` object with done_reason and counters
//   POST /api/generate  same, with `response` deltas
//   POST /api/embed     deterministic vectors from the text (`nomic-embed-text`: 768 dimensions)
//   GET  /api/tags, GET /api/ps, POST /api/show, GET /api/version
// Errors are Ollama's: a status code and `{"error": "..."}`, or an `{"error": ...}` line mid-stream.
// Each test scripts the answers (tokens, delays, failures before or after the first token, hangs,
// tool calls) and reads what happened (requests, and whether the client closed a request early).
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeModel {
  name: string;
  family?: string;
  /** `model_info["<family>.context_length"]`; omitted from /api/show when null. */
  contextLength?: number | null;
  capabilities?: string[];
  size?: number;
  /** Embedding models: vector length. */
  dimensions?: number;
}

export interface ChatScript {
  /** The reply, one delta per element. Default: `['Hello', ' from', ' fake', ' Ollama', '.']`. */
  tokens?: string[];
  /** Wait before the headers and the first delta (model load plus prompt evaluation). */
  firstTokenDelayMs?: number;
  /** Wait between deltas. */
  tokenDelayMs?: number;
  /**
   * The whole streamed reply (every line and the final one) in one write, so it reaches the client in
   * one read: a host that produced tokens faster than the connection took them. Default: one write per
   * line, in the same tick when there is no tokenDelayMs.
   */
  burst?: boolean;
  /** Fail before anything is sent: an HTTP error in Ollama's shape, or `drop` (connection reset). */
  failBefore?: { status: number; error?: string } | 'drop';
  /** Fail after this many deltas: an `{"error"}` line (as Ollama does), or `drop` (connection closed). */
  failAfter?: { tokens: number; mode?: 'error' | 'drop'; error?: string };
  /** Never answer (`before`: not even headers) or stop after the first delta and never finish (`after`). */
  hang?: 'before' | 'after';
  /**
   * Tool calls sent after the tokens, in one `message.tool_calls` chunk, when the request offers
   * `tools` (as Ollama, which parses no tool calls out of a reply to a request without tools).
   */
  toolCalls?: { name: string; arguments: Record<string, unknown> }[];
  doneReason?: string;
  promptEvalCount?: number;
}

export interface RecordedRequest {
  seq: number;
  method: string;
  path: string;
  body: Record<string, unknown> | undefined;
  startedAt: number;
  /** When the first delta was written (chat and generate). */
  firstTokenAt?: number;
  /** The same on performance.now()'s clock (sub-millisecond, for benchmarks in this process). */
  firstTokenPerfAt?: number;
  /** The client closed the connection before the answer ended. */
  aborted: boolean;
  abortedAt?: number;
  finished: boolean;
  status?: number;
  /** Deltas written before the end or the abort. */
  tokensSent: number;
}

export interface FakeOllamaOptions {
  port?: number;
  models?: FakeModel[];
  /** Names of models reported as loaded by /api/ps. */
  loaded?: string[];
  version?: string;
  script?: ChatScript;
}

export interface FakeOllama {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly requests: RecordedRequest[];
  /** Sets the default script for every later chat/generate request. */
  script(script: ChatScript): void;
  /** Scripts only the next chat/generate request (queued, first in first out). */
  scriptNext(...scripts: ChatScript[]): void;
  setModels(models: FakeModel[]): void;
  setLoaded(names: string[]): void;
  /** Every endpoint answers this error (e.g. 500) until cleared with `null`. */
  failAll(error: { status: number; error?: string } | null): void;
  /** Chat and generate requests so far. */
  chats(): RecordedRequest[];
  aborted(): RecordedRequest[];
  /**
   * Resolves when a chat/generate request (with `seq` above `sinceSeq`) has been aborted by the client,
   * or rejects after `timeoutMs`.
   */
  waitForAbort(timeoutMs?: number, sinceSeq?: number): Promise<RecordedRequest>;
  /** `seq` of the latest request so far (0 before any). */
  lastSeq(): number;
  waitForRequests(count: number, path?: string, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Stops listening and cuts every connection: clients see a connection error. */
  stop(): Promise<void>;
  /** Listens again on the same port after `stop()`. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_FAKE_MODELS: FakeModel[] = [
  { name: 'mistral:7b-instruct', family: 'llama', contextLength: 32_768, capabilities: ['completion', 'tools'], size: 4_113_301_824 },
  { name: 'llama3.2:latest', family: 'llama', contextLength: 131_072, capabilities: ['completion', 'tools'], size: 2_019_393_189 },
  { name: 'gemma:2b', family: 'gemma', contextLength: 8_192, capabilities: ['completion'], size: 1_678_456_656 },
  { name: 'nomic-embed-text:latest', family: 'nomic-bert', contextLength: 2_048, capabilities: ['embedding'], size: 274_302_450, dimensions: 768 },
];

export const DEFAULT_TOKENS = ['Hello', ' from', ' fake', ' Ollama', '.'];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Ollama accepts a name without a tag as `:latest`. */
function canonical(name: string): string {
  return name.includes(':') ? name : `${name}:latest`;
}

/** Feature hashing of lower-cased words: texts sharing words get close vectors, the same text the same one. */
export function fakeEmbedding(text: string, dimensions: number): number[] {
  const v = new Array<number>(dimensions).fill(0);
  const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  for (const word of words) {
    const h = createHash('sha256').update(word).digest();
    for (let k = 0; k < 4; k++) {
      const idx = h.readUInt32BE(k * 4) % dimensions;
      v[idx]! += h[16 + k]! & 1 ? 1 : -1;
    }
  }
  let norm = Math.hypot(...v);
  if (norm === 0) {
    // No words: still a unit vector, derived from the raw text.
    const h = createHash('sha256').update(text).digest();
    v[h.readUInt32BE(0) % dimensions] = 1;
    norm = 1;
  }
  return v.map((x) => x / norm);
}

function details(m: FakeModel) {
  return {
    parent_model: '',
    format: 'gguf',
    family: m.family ?? 'llama',
    families: [m.family ?? 'llama'],
    parameter_size: m.capabilities?.includes('embedding') ? '137M' : '7.2B',
    quantization_level: m.capabilities?.includes('embedding') ? 'F16' : 'Q4_0',
  };
}

function digest(name: string): string {
  return createHash('sha256').update(name).digest('hex');
}

export async function startFakeOllama(opts: FakeOllamaOptions = {}): Promise<FakeOllama> {
  let models = [...(opts.models ?? DEFAULT_FAKE_MODELS)];
  let loaded = new Set((opts.loaded ?? []).map(canonical));
  let defaultScript: ChatScript = opts.script ?? {};
  const queue: ChatScript[] = [];
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const abortWaiters: ((r: RecordedRequest) => void)[] = [];
  const requestWaiters: (() => void)[] = [];
  let failing: { status: number; error?: string } | null = null;
  let seq = 0;
  const version = opts.version ?? '0.9.0';

  const find = (name: unknown) => (typeof name === 'string' ? models.find((m) => m.name === canonical(name)) : undefined);

  function sendJson(res: ServerResponse, rec: RecordedRequest, status: number, body: unknown): void {
    rec.status = status;
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  }

  function notFound(res: ServerResponse, rec: RecordedRequest, model: unknown): void {
    sendJson(res, rec, 404, { error: `model "${String(model)}" not found, try pulling it first` });
  }

  async function readBody(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
    const parts: Buffer[] = [];
    for await (const p of req) parts.push(p as Buffer);
    if (parts.length === 0) return undefined;
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
  }

  async function streamChat(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, kind: 'chat' | 'generate'): Promise<void> {
    const body = rec.body ?? {};
    const model = find(body.model);
    if (!body.model) return sendJson(res, rec, 400, { error: 'model is required' });
    if (!model) return notFound(res, rec, body.model);
    if (model.capabilities?.includes('embedding') && !model.capabilities.includes('completion')) {
      return sendJson(res, rec, 400, { error: `"${model.name}" does not support ${kind}` });
    }
    if (kind === 'chat' && Array.isArray(body.tools) && body.tools.length > 0 && !model.capabilities?.includes('tools')) {
      return sendJson(res, rec, 400, { error: `registry.ollama.ai/library/${model.name} does not support tools` });
    }
    const s: ChatScript = { ...defaultScript, ...(queue.shift() ?? {}) };
    const tokens = s.tokens ?? DEFAULT_TOKENS;
    const toolCalls = Array.isArray(body.tools) && body.tools.length > 0 ? s.toolCalls : undefined;
    const stream = body.stream !== false;
    const gone = () => rec.aborted;

    if (s.firstTokenDelayMs) await sleep(s.firstTokenDelayMs);
    if (gone()) return;
    if (s.hang === 'before') return; // never answers; the client's abort or timeout ends it
    if (s.failBefore === 'drop') {
      req.socket.destroy();
      return;
    }
    if (s.failBefore) return sendJson(res, rec, s.failBefore.status, { error: s.failBefore.error ?? 'fake failure' });

    loaded.add(model.name);
    const created = () => new Date().toISOString();
    const chunk = (content: string, extra: Record<string, unknown> = {}) =>
      kind === 'chat'
        ? { model: body.model, created_at: created(), message: { role: 'assistant', content, ...extra }, done: false }
        : { model: body.model, created_at: created(), response: content, done: false };
    const started = rec.startedAt;
    const promptEvalCount = s.promptEvalCount ?? Math.max(1, Math.ceil(JSON.stringify(body.messages ?? body.prompt ?? '').length / 4));
    const final = (text: string) => {
      const total = Date.now() - started;
      const evalMs = rec.firstTokenAt ? Date.now() - rec.firstTokenAt : 0;
      const base = {
        model: body.model,
        created_at: created(),
        done: true,
        done_reason: s.doneReason ?? 'stop',
        total_duration: total * 1e6,
        load_duration: 1_000_000,
        prompt_eval_count: promptEvalCount,
        prompt_eval_duration: (s.firstTokenDelayMs ?? 0) * 1e6,
        eval_count: tokens.length,
        eval_duration: Math.max(1, evalMs) * 1e6,
      };
      if (kind === 'generate') return { ...base, response: stream ? '' : text, context: [1, 2, 3] };
      return {
        ...base,
        message: {
          role: 'assistant',
          content: stream ? '' : text,
          ...(!stream && toolCalls ? { tool_calls: toolCalls.map((c) => ({ function: c })) } : {}),
        },
      };
    };

    if (!stream) {
      // Ollama computes the whole reply before it answers.
      if (s.hang === 'after') return;
      const wait = (s.tokenDelayMs ?? 0) * Math.max(0, tokens.length - 1);
      if (wait) await sleep(wait);
      if (gone()) return;
      if (s.failAfter) {
        if (s.failAfter.mode === 'drop') {
          req.socket.destroy();
          return;
        }
        return sendJson(res, rec, 500, { error: s.failAfter.error ?? 'fake failure after first token' });
      }
      rec.firstTokenAt = Date.now();
      rec.firstTokenPerfAt = performance.now();
      rec.tokensSent = tokens.length;
      rec.finished = true;
      return sendJson(res, rec, 200, final(tokens.join('')));
    }

    rec.status = 200;
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    // Resolves when the last line has reached the socket: a scripted drop must not swallow it.
    let flushed: Promise<void> = Promise.resolve();
    if (s.burst && !s.failAfter && !s.hang && !s.tokenDelayMs) {
      const lines = tokens.map((t) => `${JSON.stringify(chunk(t))}\n`);
      if (toolCalls && kind === 'chat') lines.push(`${JSON.stringify(chunk('', { tool_calls: toolCalls.map((c) => ({ function: c })) }))}\n`);
      rec.firstTokenAt = Date.now();
      rec.firstTokenPerfAt = performance.now();
      rec.tokensSent = tokens.length;
      rec.finished = true;
      res.end(`${lines.join('')}${JSON.stringify(final(tokens.join('')))}\n`);
      return;
    }
    for (let i = 0; i < tokens.length; i++) {
      if (i > 0 && s.tokenDelayMs) await sleep(s.tokenDelayMs);
      if (gone()) return;
      if (s.failAfter && i === s.failAfter.tokens) {
        if (s.failAfter.mode === 'drop') {
          await flushed;
          await sleep(5);
          req.socket.destroy();
          return;
        }
        res.end(`${JSON.stringify({ error: s.failAfter.error ?? 'fake failure after first token' })}\n`);
        rec.finished = true;
        return;
      }
      flushed = new Promise<void>((resolve) => res.write(`${JSON.stringify(chunk(tokens[i]!))}\n`, () => resolve()));
      rec.firstTokenAt ??= Date.now();
      rec.firstTokenPerfAt ??= performance.now();
      rec.tokensSent++;
      if (s.hang === 'after') return;
    }
    if (toolCalls && kind === 'chat') {
      res.write(`${JSON.stringify(chunk('', { tool_calls: toolCalls.map((c) => ({ function: c })) }))}\n`);
      rec.firstTokenAt ??= Date.now();
      rec.firstTokenPerfAt ??= performance.now();
    }
    rec.finished = true;
    res.end(`${JSON.stringify(final(tokens.join('')))}\n`);
  }

  function embed(res: ServerResponse, rec: RecordedRequest): void {
    const body = rec.body ?? {};
    const model = find(body.model);
    if (!body.model) return sendJson(res, rec, 400, { error: 'model is required' });
    if (!model) return notFound(res, rec, body.model);
    if (!model.capabilities?.includes('embedding')) {
      return sendJson(res, rec, 400, { error: `"${model.name}" does not support embeddings` });
    }
    const inputs = typeof body.input === 'string' ? [body.input] : Array.isArray(body.input) ? (body.input as unknown[]) : null;
    if (!inputs || inputs.some((i) => typeof i !== 'string')) return sendJson(res, rec, 400, { error: 'invalid input type' });
    loaded.add(model.name);
    const dims = model.dimensions ?? 384;
    rec.finished = true;
    sendJson(res, rec, 200, {
      model: body.model,
      embeddings: (inputs as string[]).map((t) => fakeEmbedding(t, dims)),
      total_duration: 1_000_000,
      load_duration: 100_000,
      prompt_eval_count: (inputs as string[]).reduce((n, t) => n + Math.ceil(t.length / 4), 0),
    });
  }

  function show(res: ServerResponse, rec: RecordedRequest): void {
    const name = rec.body?.model ?? rec.body?.name;
    const model = find(name);
    if (!model) return notFound(res, rec, name);
    const family = model.family ?? 'llama';
    const info: Record<string, unknown> = { 'general.architecture': family, 'general.parameter_count': 7_241_732_096 };
    if (model.contextLength !== null) info[`${family}.context_length`] = model.contextLength ?? 4096;
    if (model.dimensions) info[`${family}.embedding_length`] = model.dimensions;
    sendJson(res, rec, 200, {
      license: 'Apache License 2.0',
      modelfile: `FROM ${model.name}`,
      parameters: 'stop "[INST]"\nstop "[/INST]"',
      template: '[INST] {{ .Prompt }} [/INST]',
      details: details(model),
      model_info: info,
      capabilities: model.capabilities ?? ['completion'],
      modified_at: '2025-01-01T00:00:00Z',
    });
  }

  function listing(m: FakeModel) {
    return { name: m.name, model: m.name, size: m.size ?? 1_000_000, digest: digest(m.name), details: details(m) };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const rec: RecordedRequest = {
      seq: ++seq,
      method: req.method ?? 'GET',
      path: url.pathname,
      body: undefined,
      startedAt: Date.now(),
      aborted: false,
      finished: false,
      tokensSent: 0,
    };
    requests.push(rec);
    // The client went away before the answer ended: its socket closed, or it half-closed it (FIN). Ollama
    // (Go's net/http) cancels the request context as soon as it reads EOF; Node would only notice at
    // the next write, so the fake watches for the FIN itself.
    const gone = () => {
      if (rec.aborted || rec.finished) return;
      rec.aborted = true;
      rec.abortedAt = Date.now();
      if (rec.path === '/api/chat' || rec.path === '/api/generate') for (const w of abortWaiters.splice(0)) w(rec);
    };
    const socket = req.socket;
    socket.on('end', gone);
    res.on('close', () => {
      socket.off('end', gone);
      if (res.writableFinished) {
        rec.finished = true;
        return;
      }
      gone();
    });
    for (const w of requestWaiters.splice(0)) w();
    try {
      rec.body = req.method === 'POST' ? await readBody(req) : undefined;
    } catch {
      return sendJson(res, rec, 400, { error: 'invalid character in request body' });
    }
    if (failing) return sendJson(res, rec, failing.status, { error: failing.error ?? 'fake failure' });
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'POST /api/chat':
        return streamChat(req, res, rec, 'chat');
      case 'POST /api/generate':
        return streamChat(req, res, rec, 'generate');
      case 'POST /api/embed':
        return embed(res, rec);
      case 'POST /api/show':
        return show(res, rec);
      case 'GET /api/tags':
        return sendJson(res, rec, 200, { models: models.map(listing) });
      case 'GET /api/ps':
        return sendJson(res, rec, 200, {
          models: models
            .filter((m) => loaded.has(m.name))
            .map((m) => ({ ...listing(m), expires_at: new Date(Date.now() + 300_000).toISOString(), size_vram: m.size ?? 1_000_000 })),
        });
      case 'GET /api/version':
        return sendJson(res, rec, 200, { version });
      case 'GET /':
      case 'HEAD /':
        rec.status = 200;
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('Ollama is running');
        return;
      default:
        // Ollama (gin) answers unknown paths with a plain 404.
        rec.status = 404;
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('404 page not found');
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'fake ollama failed' }));
    });
  });
  server.keepAliveTimeout = 5_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  let port = opts.port ?? 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
  await listen();

  const chatPaths = new Set(['/api/chat', '/api/generate']);
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    requests,
    script(script) {
      defaultScript = script;
      queue.length = 0;
    },
    scriptNext(...scripts) {
      queue.push(...scripts);
    },
    setModels(next) {
      models = [...next];
    },
    setLoaded(names) {
      loaded = new Set(names.map(canonical));
    },
    failAll(error) {
      failing = error;
    },
    chats: () => requests.filter((r) => chatPaths.has(r.path)),
    aborted: () => requests.filter((r) => chatPaths.has(r.path) && r.aborted),
    waitForAbort(timeoutMs = 5_000, sinceSeq = 0) {
      const already = requests.find((r) => r.seq > sinceSeq && chatPaths.has(r.path) && r.aborted);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no chat request was aborted within ${timeoutMs} ms`)), timeoutMs);
        const waiter = (r: RecordedRequest) => {
          if (r.seq <= sinceSeq) {
            abortWaiters.push(waiter);
            return;
          }
          clearTimeout(t);
          resolve(r);
        };
        abortWaiters.push(waiter);
      });
    },
    lastSeq: () => seq,
    async waitForRequests(count, path, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = requests.filter((r) => path === undefined || r.path === path);
        if (got.length >= count) return got;
        if (Date.now() > deadline) throw new Error(`expected ${count} requests${path ? ` to ${path}` : ''}, saw ${got.length}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 20);
          requestWaiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    stop,
    start: listen,
    close: stop,
  };
}

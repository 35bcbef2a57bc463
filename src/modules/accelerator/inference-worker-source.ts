// The code of one inference worker thread. onnxruntime-node runs a session synchronously on the
// calling thread, so inferences run in worker threads to keep the event loop (HTTP, sockets) free.
// It is plain JavaScript given to `new Worker(…, { eval: true })` because a worker entry file would
// need a TypeScript loader in tests and a separate build step in dist; this one runs the same in both.
//
// Messages in: {id, kind: 'probe', provider, bytes} | {id, kind: 'run', path, mtimeMs, providers,
// intraOpThreads, feeds: {name: {type, dims, data}}, outputs?} | {id, kind: 'evict', path}.
// Messages out: {id, ok: true, ...} | {id, ok: false, error, notFound?}.
export const inferenceWorkerSource = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
// Probing a missing provider is expected here; its native error belongs in the report, not on stderr.
ort.env.logLevel = 'fatal';
// Sessions cached per model file; a changed file (mtime) opens a new one.
const sessions = new Map();

function describe(session) {
  const meta = (list, names) => names.map((name, i) => {
    const m = list && list[i];
    const info = { name };
    if (m && m.isTensor) { info.type = m.type; info.dims = m.shape; }
    return info;
  });
  return { inputs: meta(session.inputMetadata, session.inputNames), outputs: meta(session.outputMetadata, session.outputNames) };
}

async function open(path, mtimeMs, providers, intraOpThreads) {
  const cached = sessions.get(path);
  if (cached && cached.mtimeMs === mtimeMs) return cached;
  if (cached) { sessions.delete(path); await cached.session.release().catch(() => {}); }
  const failures = [];
  for (const provider of providers) {
    try {
      const options = { executionProviders: [provider], logSeverityLevel: 3, graphOptimizationLevel: 'all' };
      if (intraOpThreads > 0) options.intraOpNumThreads = intraOpThreads;
      const session = await ort.InferenceSession.create(path, options);
      const entry = { session, provider, mtimeMs, failures, ...describe(session) };
      sessions.set(path, entry);
      return entry;
    } catch (err) {
      failures.push({ provider, error: String(err && err.message || err).slice(0, 300) });
    }
  }
  const e = new Error('no execution provider could load the model: ' + failures.map((f) => f.provider + ': ' + f.error).join('; '));
  e.loadFailure = true;
  throw e;
}

parentPort.on('message', async (msg) => {
  try {
    if (msg.kind === 'probe') {
      const session = await ort.InferenceSession.create(msg.bytes, { executionProviders: [msg.provider], logSeverityLevel: 4 });
      await session.release();
      parentPort.postMessage({ id: msg.id, ok: true });
      return;
    }
    if (msg.kind === 'evict') {
      const cached = sessions.get(msg.path);
      sessions.delete(msg.path);
      if (cached) await cached.session.release().catch(() => {});
      parentPort.postMessage({ id: msg.id, ok: true });
      return;
    }
    const entry = await open(msg.path, msg.mtimeMs, msg.providers, msg.intraOpThreads);
    if (msg.kind === 'describe') {
      parentPort.postMessage({ id: msg.id, ok: true, provider: entry.provider, failures: entry.failures, inputs: entry.inputs, outputsInfo: entry.outputs, outputs: {}, latencyMs: 0 });
      entry.failures = [];
      return;
    }
    const feeds = {};
    for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    const started = performance.now();
    const result = msg.outputs ? await entry.session.run(feeds, msg.outputs) : await entry.session.run(feeds);
    const latencyMs = performance.now() - started;
    const outputs = {};
    const transfer = new Set();
    for (const [name, t] of Object.entries(result)) {
      outputs[name] = { type: t.type, dims: Array.from(t.dims), data: t.data };
      if (t.data && t.data.buffer instanceof ArrayBuffer) transfer.add(t.data.buffer);
    }
    parentPort.postMessage({ id: msg.id, ok: true, provider: entry.provider, failures: entry.failures, inputs: entry.inputs, outputsInfo: entry.outputs, outputs, latencyMs }, [...transfer]);
    entry.failures = [];
  } catch (err) {
    parentPort.postMessage({ id: msg.id, ok: false, error: String(err && err.message || err), loadFailure: Boolean(err && err.loadFailure) });
  }
});
`;

// An AutoBot for the documents tests: config, files, documents and the real embeddings module (with the
// accelerator and llm modules it depends on; its default provider is the built-in embedder).
import { randomUUID } from 'node:crypto';
import type { AnyModule } from '../../../../src/kernel/module/define-module.js';
import { runWithContext, type Actor } from '../../../../src/kernel/context/request-context.js';
import { configModule } from '../../../../src/modules/config/module.js';
import { configContract } from '../../../../src/modules/config/contract.js';
import { filesModule } from '../../../../src/modules/files/module.js';
import { documentsModule } from '../../../../src/modules/documents/module.js';
import { documentsContract, type DocumentView } from '../../../../src/modules/documents/contract.js';
import { embeddingsContract } from '../../../../src/modules/embeddings/contract.js';
import type { Port } from '../../../../src/kernel/contract/define.js';
import { embeddingsModule } from '../../../../src/modules/embeddings/module.js';
import { acceleratorModule } from '../../../../src/modules/accelerator/module.js';
import { llmModule } from '../../../../src/modules/llm/module.js';
import { browserModule } from '../../../../src/modules/browser/module.js';
import { adminActor } from '../../../support/test-auth.js';
import type { TestApp } from '../../../support/app.js';

/** The real embeddings module (built-in embedder by default) and what it depends on; browser reads pages added by URL. */
export function documentsCatalogue(): AnyModule[] {
  return [configModule, filesModule, documentsModule, embeddingsModule, acceleratorModule, llmModule, browserModule];
}

export const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);

/** Changes documents (and files) settings and gives the modules time to reload them. */
export async function setSettings(app: TestApp, changes: Record<string, Record<string, unknown>>): Promise<void> {
  await as(adminActor, () => app.runtime.port(configContract).updateSettings({ changes }));
  await new Promise((r) => setTimeout(r, 600));
}

/** The contract error a call ends with (a call that succeeds fails the test). */
export async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string; details?: unknown }> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err: err as { code: string; message: string; details?: unknown } }),
  );
  if (outcome.ok) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value)}`);
  return outcome.err;
}

const FINAL = ['indexed', 'failed', 'cancelled'];

export async function waitForStatus(
  docs: Port<typeof documentsContract>,
  actor: Actor,
  id: string,
  statuses: string[] = FINAL,
  timeoutMs = 20_000,
): Promise<DocumentView> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const d = await as(actor, () => docs.getDocument({ id }));
    if (statuses.includes(d.status)) return d;
    if (Date.now() > until) throw new Error(`document ${id} still ${d.status} (${d.stage}, ${d.progress}) after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** How many vectors the embeddings module holds for a document. */
export async function vectorCount(embeddings: Port<typeof embeddingsContract>, documentId: string): Promise<number> {
  const res = await as({ type: 'service', name: 'test' }, () =>
    embeddings.search({ collection: 'documents', query: 'anything at all', topK: 200, filter: { documentIds: [documentId] } }),
  );
  return res.items.length;
}

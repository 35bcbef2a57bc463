// A test AutoBot hosting what `embeddings` needs (config, health, llm, accelerator, embeddings), with
// the llm module pointed at a fake Ollama, and a way to change the embeddings settings and wait until
// the module runs with them.
import { randomUUID } from 'node:crypto';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext } from '../../../src/kernel/context/request-context.js';
import { acceleratorModule } from '../../../src/modules/accelerator/module.js';
import { configContract } from '../../../src/modules/config/contract.js';
import { configModule } from '../../../src/modules/config/module.js';
import { embeddingsContract } from '../../../src/modules/embeddings/contract.js';
import { embeddingsModule } from '../../../src/modules/embeddings/module.js';
import { healthModule } from '../../../src/modules/health/module.js';
import { llmModule } from '../../../src/modules/llm/module.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { adminActor } from '../../support/test-auth.js';

export const embeddingsCatalogue = [configModule, healthModule, llmModule, acceleratorModule, embeddingsModule];

export function startEmbeddingsApp(redisUrl: string, ollamaUrl: string, env: Record<string, string> = {}): Promise<TestApp> {
  return startTestApp({ redisUrl, catalogue: embeddingsCatalogue, env: { OLLAMA_URL: ollamaUrl, ...env } });
}

/** Changes embeddings settings through the config module and waits until `app` runs with them. */
export async function setEmbeddingsSettings(app: TestApp, changes: Record<string, unknown>): Promise<void> {
  const config = app.runtime.port(configContract) as Port<typeof configContract>;
  await runWithContext({ requestId: randomUUID(), actor: adminActor }, () => config.updateSettings({ changes: { embeddings: changes } }));
  const embeddings = app.runtime.port(embeddingsContract) as Port<typeof embeddingsContract>;
  const wanted = (s: Record<string, unknown>) => Object.entries(changes).every(([k, v]) => JSON.stringify(s[k]) === JSON.stringify(v));
  const deadline = Date.now() + 5000;
  for (;;) {
    // The module reloads on `config.settings.changed`; its collections report what it now uses.
    const { items } = await embeddings.listCollections({});
    const current = (await config.getModuleSettings({ module: 'embeddings' })).settings;
    if (wanted(current) && items.length > 0 && (await settledIn(embeddings, changes))) return;
    if (Date.now() > deadline) throw new Error('the embeddings module did not pick up its new settings');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function settledIn(embeddings: Port<typeof embeddingsContract>, changes: Record<string, unknown>): Promise<boolean> {
  const models = await embeddings.listModels({});
  const { items } = await embeddings.listCollections({});
  const provider = (c: string) => (c === 'documents' ? changes.documentsProvider : changes.factsProvider);
  for (const c of items) {
    const p = provider(c.collection);
    if (p !== undefined && models.items.find((m) => m.id === c.configuredModel)?.provider !== p) return false;
  }
  return true;
}

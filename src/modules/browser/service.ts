// The browser module's operations: who may do what (a signed-in user on their own sessions; one-shot
// reads also for services acting for a user), and the translation to the engine.
import { inject, injectable } from 'tsyringe';
import type { Download, Handlers } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext } from '../../kernel/context/request-context.js';
import type { SettingsHolder } from '../../kernel/module/settings-holder.js';
import { browserContract, browserSettings } from './contract.js';
import { BrowserEngine, type ContentFormat } from './browser-engine.js';
import { BrowserEngineToken, BrowserSettingsToken } from './tokens.js';

function user() {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  return actor;
}

function userId(): string {
  return user().id;
}

/** A one-shot read is fine for a user, and for another module acting on a user's behalf. */
function anyCaller(): void {
  if (!currentContext()?.actor) throw new ContractError('unauthenticated', 'sign in first');
}

@injectable()
export class BrowserService implements Handlers<typeof browserContract> {
  constructor(
    @inject(BrowserEngineToken) private readonly engine: BrowserEngine,
    @inject(BrowserSettingsToken) private readonly settings: SettingsHolder<typeof browserSettings>,
  ) {}

  async reloadSettings(): Promise<void> {
    await this.settings.reload();
    this.engine.applySettings();
  }

  createSession() {
    const actor = user();
    return this.engine.createSession(actor.id, actor.sessionId);
  }

  /** A logout ends what that sign-in opened; a password change, disabling or deletion ends everything. */
  async authSessionRevoked(userId: string, sessionId: string | null, reason: string): Promise<void> {
    await this.engine.closeForAuthSession(userId, reason === 'logout' || reason === 'reuse' ? sessionId : null);
  }

  async listSessions() {
    return { items: await this.engine.listSessions(userId()) };
  }

  async closeSession({ id }: { id: string }) {
    await this.engine.closeSession(userId(), id);
    return null;
  }

  navigate({ id, url }: { id: string; url: string }) {
    return this.engine.navigate(userId(), id, url);
  }

  act(input: { id: string; action: Parameters<BrowserEngine['act']>[2]['action']; selector?: string | undefined; value?: string | undefined }) {
    return this.engine.act(userId(), input.id, input);
  }

  async screenshot({ id, fullPage }: { id: string; fullPage?: boolean | undefined }): Promise<Download> {
    const png = await this.engine.screenshot(userId(), id, fullPage ?? false);
    return { contentType: 'image/png', size: png.length, disposition: 'inline', fileName: `${id}.png`, body: (async function* () { yield png; })() };
  }

  getContent({ id, format }: { id: string; format: ContentFormat }) {
    return this.engine.content(userId(), id, format);
  }

  fetchPage({ url }: { url: string }) {
    anyCaller();
    return this.engine.fetchPage(url);
  }
}

// What the browser module does, below its contract: sessions (one browser context and page each, owned
// by a user, closed when idle), navigation with refusals attributed to the guard, actions, screenshots,
// content, and one-shot page reads. Plain constructor arguments (no DI), so the security tests can build
// it with a stub resolver.
import { randomBytes } from 'node:crypto';
import type { BrowserContext, Page, Request, Response } from 'playwright';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { ContractError } from '../../kernel/contract/errors.js';
import { Chromium } from './chromium.js';
import type { browserSettings, BROWSER_ACTIONS, CONTENT_FORMATS } from './contract.js';
import { BLOCKED_HEADER, GuardProxy, UPSTREAM_ERROR_HEADER, type ProxyClient, type Refusal } from './guard-proxy.js';
import { pageMarkdown, readPage } from './page-reader.js';
import { SsrfGuard, systemResolver, type Resolver } from './ssrf-guard.js';

export type BrowserSettings = z.output<typeof browserSettings>;
export type BrowserAction = (typeof BROWSER_ACTIONS)[number];
export type ContentFormat = (typeof CONTENT_FORMATS)[number];

export interface EngineOptions {
  executablePath: string;
  settings: () => BrowserSettings;
  logger: Logger;
  resolver?: Resolver;
  /** Upstream connect timeout of the proxy. */
  connectTimeoutMs?: number;
}

interface Session {
  id: string;
  ownerId: string;
  /** The sign-in that opened it (when known): a logout of that sign-in closes it. */
  authSessionId: string | undefined;
  context: BrowserContext;
  page: Page;
  client: ProxyClient;
  createdAt: number;
  lastUsedAt: number;
  /** Operations on one page run one after another. */
  queue: Promise<unknown>;
  busy: number;
}

function truncate(s: string, max: number): { text: string; truncated: boolean } {
  return s.length > max ? { text: s.slice(0, max), truncated: true } : { text: s, truncated: false };
}

/** scheme://host:port of a URL (a refused tunnel knows no more than that). */
function originKey(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  } catch {
    return raw;
  }
}

function isPlaywrightTimeout(err: unknown): boolean {
  return (err as Error | undefined)?.name === 'TimeoutError';
}

/** A small counting semaphore for one-shot reads. */
class Gate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  async enter(limit: () => number): Promise<() => void> {
    while (this.running >= limit()) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    return () => {
      this.running--;
      this.waiting.shift()?.();
    };
  }
}

export class BrowserEngine {
  readonly guard: SsrfGuard;
  readonly proxy: GuardProxy;
  readonly chromium: Chromium;
  private readonly sessions = new Map<string, Session>();
  private readonly fetchGate = new Gate();
  private sweeper: NodeJS.Timeout | undefined;
  private stopped = true;
  private spare: Promise<{ context: BrowserContext; client: ProxyClient; page: Page }> | undefined;

  constructor(private readonly opts: EngineOptions) {
    this.guard = new SsrfGuard(opts.resolver ?? systemResolver);
    this.proxy = new GuardProxy(this.guard, opts.logger, opts.connectTimeoutMs);
    this.chromium = new Chromium(opts.executablePath, opts.logger);
    this.chromium.onDisconnect = () => {
      this.spare = undefined;
      for (const s of this.sessions.values()) this.proxy.unregister(s.client);
      this.sessions.clear();
    };
    this.applySettings();
  }

  private get settings(): BrowserSettings {
    return this.opts.settings();
  }

  /** Takes in changed settings (the allow-list above all). */
  applySettings(): void {
    this.guard.setAllowHosts(this.settings.allowHosts);
  }

  async start(): Promise<void> {
    await this.proxy.start();
    this.stopped = false;
    this.scheduleSweep();
  }

  /** Looks for idle sessions at half the idle timeout (at most every 5 s), following setting changes. */
  private scheduleSweep(): void {
    if (this.stopped) return;
    const every = Math.min(5000, Math.max(250, (this.settings.sessionIdleS * 1000) / 2));
    this.sweeper = setTimeout(() => {
      void this.closeIdle()
        .catch((err: unknown) => this.opts.logger.warn({ err: (err as Error).message }, 'closing idle browser sessions failed'))
        .finally(() => this.scheduleSweep());
    }, every);
    this.sweeper.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweeper) clearTimeout(this.sweeper);
    const spare = await this.spare?.catch(() => undefined);
    this.spare = undefined;
    if (spare) {
      this.proxy.unregister(spare.client);
      await spare.context.close().catch(() => undefined);
    }
    await Promise.all([...this.sessions.values()].map((s) => this.dispose(s)));
    await this.chromium.close();
    await this.proxy.stop();
  }

  health(): { status: 'ok' | 'degraded'; detail?: string } {
    if (!this.chromium.installed()) return { status: 'degraded', detail: `no Chromium at ${this.chromium.path}` };
    return { status: 'ok', detail: `${this.sessions.size} sessions, Chromium ${this.chromium.running() ? 'running' : 'starts on first use'}` };
  }

  private async openContext(): Promise<{ context: BrowserContext; client: ProxyClient }> {
    const client = this.proxy.register();
    try {
      const s = this.settings;
      const context = await this.chromium.newContext({
        proxy: { server: this.proxy.url, username: client.username, password: client.password },
        viewport: { width: s.viewportWidth, height: s.viewportHeight },
      });
      context.setDefaultNavigationTimeout(s.navigationTimeoutMs);
      context.setDefaultTimeout(s.actionTimeoutMs);
      return { context, client };
    } catch (err) {
      this.proxy.unregister(client);
      throw new ContractError('unavailable', `the browser cannot start: ${(err as Error).message.split('\n')[0]}`);
    }
  }

  // ---- sessions ----

  async createSession(ownerId: string, authSessionId?: string): Promise<{ id: string; createdAt: string; idleTimeoutS: number }> {
    const s = this.settings;
    const own = [...this.sessions.values()].filter((x) => x.ownerId === ownerId).length;
    if (own >= s.maxSessionsPerUser) {
      throw new ContractError('conflict', `you have ${own} open browser sessions, the limit is ${s.maxSessionsPerUser}: close one first`);
    }
    if (this.sessions.size >= s.maxSessions) throw new ContractError('unavailable', 'too many browser sessions are open right now; try again later');
    const { context, client } = await this.openContext();
    const page = await context.newPage();
    const now = Date.now();
    const session: Session = { id: `bs_${randomBytes(12).toString('base64url')}`, ownerId, authSessionId, context, page, client, createdAt: now, lastUsedAt: now, queue: Promise.resolve(), busy: 0 };
    this.sessions.set(session.id, session);
    return { id: session.id, createdAt: new Date(now).toISOString(), idleTimeoutS: s.sessionIdleS };
  }

  async listSessions(ownerId: string) {
    const own = [...this.sessions.values()].filter((s) => s.ownerId === ownerId);
    return Promise.all(
      own.map(async (s) => ({
        id: s.id,
        url: s.page.url(),
        title: await s.page.title().catch(() => ''),
        createdAt: new Date(s.createdAt).toISOString(),
        lastUsedAt: new Date(s.lastUsedAt).toISOString(),
      })),
    );
  }

  async closeSession(ownerId: string, id: string): Promise<void> {
    const s = this.sessions.get(id);
    if (!s || s.ownerId !== ownerId) throw new ContractError('not_found', `no browser session ${id}`);
    await this.dispose(s);
  }

  /** Closes what a sign-in opened (`authSessionId`), or everything the user has (null). */
  async closeForAuthSession(ownerId: string, authSessionId: string | null): Promise<number> {
    const doomed = [...this.sessions.values()].filter((s) => s.ownerId === ownerId && (authSessionId === null || s.authSessionId === authSessionId));
    await Promise.all(doomed.map((s) => this.dispose(s)));
    return doomed.length;
  }

  private async dispose(s: Session): Promise<void> {
    this.sessions.delete(s.id);
    this.proxy.unregister(s.client);
    await s.context.close().catch(() => undefined);
  }

  private async closeIdle(): Promise<void> {
    const limit = this.settings.sessionIdleS * 1000;
    const now = Date.now();
    for (const s of [...this.sessions.values()]) {
      if (s.busy === 0 && now - s.lastUsedAt > limit) {
        this.opts.logger.info({ sessionId: s.id, ownerId: s.ownerId }, 'browser session closed after being idle');
        await this.dispose(s);
      }
    }
  }

  /** Runs `fn` on the caller's session, after whatever runs on it already; another user's session is not found. */
  private withSession<T>(ownerId: string, id: string, fn: (s: Session) => Promise<T>): Promise<T> {
    const s = this.sessions.get(id);
    if (!s || s.ownerId !== ownerId) return Promise.reject(new ContractError('not_found', `no browser session ${id}`));
    s.busy++;
    s.lastUsedAt = Date.now();
    const run = s.queue.then(() => {
      if (!this.sessions.has(s.id)) throw new ContractError('not_found', `browser session ${id} was closed`);
      return fn(s);
    });
    s.queue = run.catch(() => undefined);
    return run.finally(() => {
      s.busy--;
      s.lastUsedAt = Date.now();
    });
  }

  // ---- navigation ----

  /** Refuses up front what the guard refuses (no connection is even tried), then loads the page. */
  private async goto(page: Page, client: ProxyClient, url: string): Promise<Response | null> {
    const verdict = await this.guard.checkUrl(url);
    if (!verdict.allowed) {
      if (verdict.kind === 'forbidden') throw new ContractError('forbidden', `refused by the SSRF guard: ${verdict.reason}`);
      if (verdict.kind === 'invalid') throw new ContractError('invalid_input', `url: ${verdict.reason}`, [{ path: 'url', message: verdict.reason }]);
      throw new ContractError('unavailable', verdict.reason);
    }
    const since = Date.now();
    // The main frame's requests of this navigation (the URL and each redirect): only a refusal of one of
    // them explains a failed navigation; a late sub-resource of the previous page does not.
    const chain = new Set<string>();
    const onRequest = (r: Request) => {
      if (r.isNavigationRequest() && r.frame() === page.mainFrame()) chain.add(originKey(r.url()));
    };
    page.on('request', onRequest);
    const ofChain = (list: Refusal[]) => list.find((r) => r.at >= since && chain.has(originKey(r.url)));
    let response: Response | null;
    try {
      response = await page.goto(url, { waitUntil: 'load' });
    } catch (err) {
      // A failed navigation can leave one of its hops still pending in Chromium, which would later
      // interrupt the session's next navigation: stop it, so the session is left on a settled page.
      await page.evaluate('window.stop()').catch(() => undefined);
      // An https redirect to a refused address ends in a failed tunnel rather than a 403 page.
      const refused = ofChain(client.refusals);
      if (refused) throw new ContractError('forbidden', `refused by the SSRF guard: ${refused.reason} (${refused.url})`);
      if (isPlaywrightTimeout(err)) throw new ContractError('timeout', `the page did not load within ${this.settings.navigationTimeoutMs} ms`);
      const failed = ofChain(client.failures);
      if (failed) throw new ContractError('unavailable', failed.reason);
      throw new ContractError('unavailable', `cannot load ${url}: ${(err as Error).message.split('\n')[0]?.replace(/^page\.goto: /, '')}`);
    } finally {
      page.off('request', onRequest);
    }
    const headers = response ? await response.allHeaders() : {};
    const blocked = headers[BLOCKED_HEADER];
    if (blocked !== undefined && response?.status() === 403) {
      throw new ContractError('forbidden', `refused by the SSRF guard: ${decodeURIComponent(blocked)} (${response.url()})`);
    }
    const upstream = headers[UPSTREAM_ERROR_HEADER];
    if (upstream !== undefined && response?.status() === 502) throw new ContractError('unavailable', decodeURIComponent(upstream));
    return response;
  }

  async navigate(ownerId: string, id: string, url: string): Promise<{ url: string; title: string; status: number | null }> {
    return this.withSession(ownerId, id, async (s) => {
      const response = await this.goto(s.page, s.client, url);
      return { url: s.page.url(), title: await s.page.title(), status: response?.status() ?? null };
    });
  }

  async act(ownerId: string, id: string, input: { action: BrowserAction; selector?: string | undefined; value?: string | undefined }): Promise<{ url: string; title: string }> {
    return this.withSession(ownerId, id, async (s) => {
      const { page } = s;
      const { action, selector, value } = input;
      try {
        switch (action) {
          case 'click':
            await page.click(selector!);
            break;
          case 'fill':
            await page.fill(selector!, value!);
            break;
          case 'type':
            await page.locator(selector!).first().pressSequentially(value!);
            break;
          case 'press':
            if (selector) await page.press(selector, value!);
            else await page.keyboard.press(value!);
            break;
          case 'select':
            await page.selectOption(selector!, value!);
            break;
          case 'hover':
            await page.hover(selector!);
            break;
          case 'wait_for':
            await page.waitForSelector(selector!, { state: 'visible' });
            break;
          case 'scroll':
            if (selector) await page.locator(selector).first().scrollIntoViewIfNeeded();
            else {
              const [a, b] = (value ?? '600').split(',').map(Number);
              await page.mouse.wheel(b === undefined ? 0 : a!, b === undefined ? a! : b);
            }
            break;
        }
        // A click may start a navigation; let it commit so the answer names the page the user is now on.
        await page.waitForLoadState('domcontentloaded', { timeout: this.settings.actionTimeoutMs }).catch(() => undefined);
      } catch (err) {
        if (err instanceof ContractError) throw err;
        const message = (err as Error).message.split('\n')[0] ?? '';
        if (isPlaywrightTimeout(err)) throw new ContractError('not_found', `no element matches ${JSON.stringify(selector)} (waited ${this.settings.actionTimeoutMs} ms)`);
        if (/Unknown key|is not a valid selector|Unexpected token|selector/i.test(message)) throw new ContractError('invalid_input', message.replace(/^[\w.]+: /, ''));
        throw new ContractError('conflict', `${action} failed: ${message.replace(/^[\w.]+: /, '')}`);
      }
      return { url: page.url(), title: await page.title().catch(() => '') };
    });
  }

  async screenshot(ownerId: string, id: string, fullPage: boolean): Promise<Buffer> {
    return this.withSession(ownerId, id, (s) => s.page.screenshot({ type: 'png', fullPage }));
  }

  async content(ownerId: string, id: string, format: ContentFormat) {
    return this.withSession(ownerId, id, async (s) => {
      const { page } = s;
      const raw =
        format === 'text'
          ? await page.evaluate<string>('document.body ? document.body.innerText : ""')
          : format === 'html'
            ? await page.content()
            : await pageMarkdown(await page.content(), page.url());
      const { text, truncated } = truncate(raw, this.settings.maxContentChars);
      return { url: page.url(), title: await page.title(), format, content: text, truncated };
    });
  }

  // ---- one-shot read ----

  /**
   * A fresh context and page for one read. Opening a page starts a renderer process (hundreds of ms), so
   * one is kept ready: every read still gets a context nobody used before (no cookies or storage shared
   * between reads or users), but it rarely waits for it.
   */
  private async takeFetchContext(): Promise<{ context: BrowserContext; client: ProxyClient; page: Page }> {
    const ready = this.spare;
    this.spare = undefined;
    const taken = (ready ? await ready.catch(() => undefined) : undefined) ?? (await this.openFetchContext());
    if (!this.stopped) {
      this.spare = this.openFetchContext();
      // A spare that fails is simply not used; the next read opens its own.
      this.spare.catch(() => undefined);
    }
    return taken;
  }

  private async openFetchContext(): Promise<{ context: BrowserContext; client: ProxyClient; page: Page }> {
    const { context, client } = await this.openContext();
    try {
      // Only what the text needs: images, fonts and media are never requested.
      await context.route('**/*', (route) =>
        ['image', 'media', 'font'].includes(route.request().resourceType()) ? route.abort('blockedbyclient') : route.continue(),
      );
      return { context, client, page: await context.newPage() };
    } catch (err) {
      this.proxy.unregister(client);
      await context.close().catch(() => undefined);
      throw err;
    }
  }

  /** Loads `url` in a throw-away context (no images, fonts or media) and reads it as Markdown. */
  async fetchPage(url: string): Promise<{ url: string; title: string; markdown: string; status: number; truncated: boolean }> {
    const leave = await this.fetchGate.enter(() => this.settings.maxConcurrentFetches);
    let opened: { context: BrowserContext; client: ProxyClient; page: Page } | undefined;
    try {
      opened = await this.takeFetchContext();
      const { context, client, page } = opened;
      const response = await this.goto(page, client, url);
      const status = response?.status() ?? 200;
      if (status >= 400) {
        throw new ContractError(status === 404 || status === 410 ? 'not_found' : 'unavailable', `${page.url()} answered ${status}`);
      }
      const read = await readPage(await page.content(), page.url(), await page.title());
      const { text, truncated } = truncate(read.markdown, this.settings.maxContentChars);
      return { url: page.url(), title: read.title, markdown: text, status, truncated };
    } finally {
      leave();
      if (opened) {
        this.proxy.unregister(opened.client);
        await opened.context.close().catch(() => undefined);
      }
    }
  }
}

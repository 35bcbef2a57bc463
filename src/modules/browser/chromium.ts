// One Chromium per process, the operating system's (never a downloaded one), launched on first use and
// again after a crash. Its default context has no way out (a dead proxy); every context AutoBot opens
// gets the guard proxy with its own credential, and loopback is not bypassed.
import { existsSync } from 'node:fs';
import type { Browser, BrowserContext } from 'playwright';
import type { Logger } from 'pino';

export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  // WebRTC would otherwise send UDP straight to any address a page names, past the proxy.
  '--force-webrtc-ip-handling-policy=disable_non_proxied_udp',
  '--webrtc-ip-handling-policy=disable_non_proxied_udp',
];

export interface ContextOptions {
  proxy: { server: string; username: string; password: string };
  viewport: { width: number; height: number };
}

export class Chromium {
  private launching: Promise<Browser> | undefined;
  private closed = false;
  /** Called when the browser goes away by itself (crash, killed): its contexts are gone. */
  onDisconnect: (() => void) | undefined;

  constructor(
    private readonly executablePath: string,
    private readonly logger: Logger,
  ) {}

  /** Whether the configured executable exists (health, and a clear error before launching). */
  installed(): boolean {
    return existsSync(this.executablePath);
  }

  get path(): string {
    return this.executablePath;
  }

  running(): boolean {
    return this.launching !== undefined;
  }

  private browser(): Promise<Browser> {
    if (this.closed) return Promise.reject(new Error('browser module is stopping'));
    this.launching ??= this.launch().catch((err: unknown) => {
      this.launching = undefined;
      throw err;
    });
    return this.launching;
  }

  private async launch(): Promise<Browser> {
    if (!this.installed()) throw new Error(`no Chromium at ${this.executablePath} (set AUTOBOT_CHROMIUM_PATH)`);
    // Loaded on first use: a process that never opens a page does not pay for Playwright.
    const { chromium } = await import('playwright');
    const started = Date.now();
    const browser = await chromium.launch({
      executablePath: this.executablePath,
      args: FLAGS,
      // Contexts bring their own proxy; anything outside them meets this one, which does not exist.
      proxy: { server: 'per-context' },
      timeout: 30_000,
    });
    this.logger.info({ executablePath: this.executablePath, ms: Date.now() - started, version: browser.version() }, 'Chromium started');
    browser.once('disconnected', () => {
      this.launching = undefined;
      if (!this.closed) {
        this.logger.warn('Chromium went away; it starts again on the next use');
        this.onDisconnect?.();
      }
    });
    return browser;
  }

  async newContext(opts: ContextOptions): Promise<BrowserContext> {
    const browser = await this.browser();
    return browser.newContext({
      // Playwright's default keeps loopback behind the proxy too (`<-loopback>`): nothing is bypassed.
      proxy: opts.proxy,
      viewport: opts.viewport,
      acceptDownloads: false,
      serviceWorkers: 'block',
      javaScriptEnabled: true,
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const launching = this.launching;
    this.launching = undefined;
    if (!launching) return;
    const browser = await launching.catch(() => undefined);
    await browser?.close().catch(() => undefined);
  }
}

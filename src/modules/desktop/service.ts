// The desktop module's operations, for admins only: the gateway checks the role on its routes, and the
// service checks it again because other modules and remote callers reach it without the gateway.
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Download, Handlers } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext } from '../../kernel/context/request-context.js';
import { ModuleLogger } from '../../kernel/module/tokens.js';
import type { SettingsHolder } from '../../kernel/module/settings-holder.js';
import { desktopContract, type desktopSettings } from './contract.js';
import { parseCombo } from './keys.js';
import { DesktopSettingsToken } from './tokens.js';
import { XConnection } from './x-display.js';

type ActInput = z.output<(typeof desktopContract)['operations']['act']['input']>;

const CONNECT_TIMEOUT_MS = 2000;
const BUTTONS = { left: 1, middle: 2, right: 3 } as const;

function admin(): void {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  if (!actor.roles.includes('admin')) throw new ContractError('forbidden', 'the desktop needs the admin role');
}

@injectable()
export class DesktopService implements Handlers<typeof desktopContract> {
  private connection: XConnection | undefined;
  private connecting: Promise<XConnection> | undefined;
  /** Input and screenshots go one after another: a click must not land between a move and its press. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    @inject(DesktopSettingsToken) readonly settings: SettingsHolder<typeof desktopSettings>,
    @inject(ModuleLogger) private readonly logger: Logger,
  ) {}

  /** The display to drive: the setting, else the process's DISPLAY. */
  displayName(): string | undefined {
    return this.settings.current().display || process.env.DISPLAY || undefined;
  }

  /** Drops the connection when the display setting changed. */
  settingsChanged(): void {
    if (this.connection && this.connection.name !== this.displayName()) {
      this.connection.close();
      this.connection = undefined;
    }
  }

  close(): void {
    this.connection?.close();
    this.connection = undefined;
  }

  private async connect(): Promise<XConnection> {
    const name = this.displayName();
    if (!name) throw new ContractError('unavailable', 'no X display: set DISPLAY for the AutoBot process or the desktop.display setting');
    if (this.connection?.alive && this.connection.name === name) return this.connection;
    this.connecting ??= XConnection.open(name, CONNECT_TIMEOUT_MS, () => {
      if (this.connection?.name === name) this.connection = undefined;
    })
      .then((c) => {
        this.connection?.close();
        this.connection = c;
        this.logger.info({ display: name, ...c.info() }, 'connected to the X display');
        return c;
      })
      .catch((err: unknown) => {
        throw new ContractError('unavailable', `X display ${name} is not reachable: ${(err as Error).message}`);
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async status() {
    admin();
    const display = this.displayName() ?? null;
    try {
      const c = await this.connect();
      return { available: true, display, ...c.info() };
    } catch (err) {
      return { available: false, display, reason: (err as Error).message };
    }
  }

  async screenshot(): Promise<Download> {
    admin();
    const c = await this.connect();
    const png = await this.serial(() => c.screenshotPng()).catch((err: unknown) => {
      throw err instanceof ContractError ? err : new ContractError('unavailable', `screenshot failed: ${(err as Error).message}`);
    });
    return { contentType: 'image/png', size: png.length, disposition: 'inline', fileName: 'desktop.png', body: (async function* () { yield png; })() };
  }

  async act(input: ActInput) {
    admin();
    const s = this.settings.current();
    if (input.text !== undefined && input.text.length > s.maxTextLength) {
      throw new ContractError('invalid_input', `text is longer than ${s.maxTextLength} characters`, [{ path: 'text', message: `at most ${s.maxTextLength} characters` }]);
    }
    const combo = input.action === 'key' ? parseCombo(input.key!) : undefined;
    if (combo && 'unknown' in combo) {
      throw new ContractError('invalid_input', `unknown key "${combo.unknown}"`, [{ path: 'key', message: `"${combo.unknown}" is not a key name (Return, Tab, ctrl+c, F5, a…)` }]);
    }
    const c = await this.connect();
    const { width, height } = c.info();
    if (input.x !== undefined && input.y !== undefined && (input.x >= width || input.y >= height)) {
      throw new ContractError('invalid_input', `(${input.x}, ${input.y}) is outside the ${width}x${height} screen`, [{ path: input.x >= width ? 'x' : 'y', message: 'outside the screen' }]);
    }
    return this.serial(async () => {
      if (input.x !== undefined && input.y !== undefined) c.move(input.x, input.y);
      switch (input.action) {
        case 'move':
          break;
        case 'click':
          c.button(BUTTONS[input.button], input.double ? 2 : 1);
          break;
        case 'type':
          await c.type(input.text!);
          break;
        case 'key':
          await c.chord((combo as { keysyms: number[] }).keysyms);
          break;
        case 'scroll': {
          const dy = input.dy ?? (input.dx === 0 ? 3 : 0);
          c.button(dy < 0 ? 4 : 5, Math.abs(dy));
          c.button(input.dx < 0 ? 6 : 7, Math.abs(input.dx));
          break;
        }
      }
      // Answer once the server has handled the input, so what the caller does next sees its effect.
      await c.sync();
      return { action: input.action, pointer: await c.pointer() };
    });
  }
}

// One connection to an X display over the X protocol (the pure-JavaScript `x11` client): the screen as
// a PNG (GetImage, converted with pngjs) and input through the XTEST extension, as a user's own
// keyboard and mouse would produce it.
// Both libraries load on the first use of a display: a process that never connects to one does not carry them.
import type { XClient, XDisplay, XTest } from 'x11';
import { keysymOfChar } from './keys.js';

const ZPIXMAP = 2;
const SHIFT_L = 0xffe1;

export interface ScreenInfo {
  width: number;
  height: number;
  depth: number;
}

function call<T>(fn: (cb: (err: Error | null, v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

/** Where a display's server listens, for a clear reason when it is not there. */
export class XConnection {
  private keymap: number[][] | undefined;
  private closed = false;

  private constructor(
    readonly name: string,
    private readonly display: XDisplay,
    private readonly test: XTest,
    private readonly onGone: () => void,
  ) {
    const client = display.client;
    client.on('event', (ev) => {
      // Someone (or we) changed the keyboard mapping: read it again before the next key.
      if (ev.name === 'MappingNotify') this.keymap = undefined;
    });
    const gone = () => {
      this.closed = true;
      this.onGone();
    };
    client.on('error', gone);
    client.on('end', gone);
    client.on('close', gone);
  }

  static async open(name: string, timeoutMs: number, onGone: () => void): Promise<XConnection> {
    const { default: x11 } = await import('x11');
    let client: (XClient & NodeJS.EventEmitter) | undefined;
    const display = await new Promise<XDisplay>((resolve, reject) => {
      const timer = setTimeout(() => {
        client?.terminate();
        reject(new Error(`no answer from display ${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      client = x11.createClient({ display: name }, (err, d) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(d);
      });
      client.on('error', (err?: Error) => {
        clearTimeout(timer);
        reject(err ?? new Error('connection failed'));
      });
    });
    try {
      const test = await call<XTest>((cb) => display.client.require('xtest', cb));
      return new XConnection(name, display, test, onGone);
    } catch (err) {
      display.client.terminate();
      throw new Error(`display ${name} has no XTEST extension (needed for input): ${(err as Error).message}`);
    }
  }

  get alive(): boolean {
    return !this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.display.client.terminate();
  }

  private get screen() {
    return this.display.screen[0]!;
  }

  info(): ScreenInfo {
    return { width: this.screen.pixel_width, height: this.screen.pixel_height, depth: this.screen.root_depth };
  }

  /** A round trip: every request sent before it has been handled when it answers. */
  async sync(): Promise<void> {
    await call((cb) => this.display.client.GetInputFocus(cb));
  }

  async pointer(): Promise<{ x: number; y: number }> {
    const p = await call<{ rootX: number; rootY: number }>((cb) => this.display.client.QueryPointer(this.screen.root, cb));
    return { x: p.rootX, y: p.rootY };
  }

  async screenshotPng(): Promise<Buffer> {
    const { width, height, depth } = this.info();
    const bpp = this.display.format[depth]?.bits_per_pixel;
    if (bpp !== 32) throw new Error(`unsupported pixel format: depth ${depth} at ${bpp ?? '?'} bits per pixel (24/32-bit displays are supported)`);
    const image = await call<{ data: Buffer }>((cb) => this.display.client.GetImage(ZPIXMAP, this.screen.root, 0, 0, width, height, 0xffffffff, cb));
    const { PNG } = await import('pngjs');
    const png = new PNG({ width, height, colorType: 2, inputColorType: 6 });
    const src = image.data;
    const dst = png.data;
    // ZPixmap at 32 bpp, least significant byte first: B, G, R, unused.
    for (let i = 0; i < width * height; i++) {
      const o = i * 4;
      dst[o] = src[o + 2]!;
      dst[o + 1] = src[o + 1]!;
      dst[o + 2] = src[o]!;
      dst[o + 3] = 255;
    }
    return PNG.sync.write(png, { colorType: 2 });
  }

  move(x: number, y: number): void {
    this.test.FakeInput(this.test.MotionNotify, 0, 0, this.screen.root, x, y);
  }

  button(button: number, count = 1): void {
    for (let i = 0; i < count; i++) {
      this.test.FakeInput(this.test.ButtonPress, button, 0, this.screen.root, 0, 0);
      this.test.FakeInput(this.test.ButtonRelease, button, 0, this.screen.root, 0, 0);
    }
  }

  private async keyboard(): Promise<number[][]> {
    if (!this.keymap) {
      const { min_keycode: min, max_keycode: max } = this.display;
      this.keymap = await call<number[][]>((cb) => this.display.client.GetKeyboardMapping(min, max - min + 1, cb));
    }
    return this.keymap;
  }

  /**
   * The keycode producing `keysym`, and whether Shift is needed. A keysym the keyboard does not have is
   * bound to a spare keycode (as xdotool does), so any character can be typed.
   */
  private async keycodeOf(keysym: number): Promise<{ keycode: number; shift: boolean }> {
    const rows = await this.keyboard();
    const min = this.display.min_keycode;
    for (let col = 0; col < 2; col++) {
      const idx = rows.findIndex((row) => row[col] === keysym);
      if (idx >= 0) return { keycode: min + idx, shift: col === 1 };
    }
    // Spare keycodes are those with no keysym at all; the last ones are least likely to be used.
    let spare = -1;
    for (let i = rows.length - 1; i >= 0; i--) {
      if (rows[i]!.every((k) => k === 0)) {
        spare = i;
        break;
      }
    }
    if (spare < 0) throw new Error('no spare keycode to bind the character to');
    const perKeycode = rows[spare]!.length;
    const syms = Array.from({ length: perKeycode }, (_, i) => (i < 2 ? keysym : 0));
    this.display.client.ChangeKeyboardMapping(min + spare, perKeycode, syms);
    rows[spare] = syms;
    await this.sync();
    return { keycode: min + spare, shift: false };
  }

  /** Presses the keys in order and releases them in reverse (a chord such as ctrl+shift+t). */
  async chord(keysyms: number[]): Promise<void> {
    const codes: number[] = [];
    for (const k of keysyms) {
      const { keycode, shift } = await this.keycodeOf(k);
      // In a chord, a key that needs Shift gets it (e.g. ctrl+A).
      if (shift && !codes.includes((await this.keycodeOf(SHIFT_L)).keycode)) codes.push((await this.keycodeOf(SHIFT_L)).keycode);
      codes.push(keycode);
    }
    for (const c of codes) this.test.FakeInput(this.test.KeyPress, c, 0, this.screen.root, 0, 0);
    for (const c of [...codes].reverse()) this.test.FakeInput(this.test.KeyRelease, c, 0, this.screen.root, 0, 0);
  }

  async type(text: string): Promise<void> {
    for (const ch of text) await this.chord([keysymOfChar(ch)]);
  }
}

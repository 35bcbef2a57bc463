// A real X server for the desktop tests (Xvfb on a display number it picks itself with -displayfd, so
// parallel test files never collide), and a real window on it made with the X protocol: filled with
// one colour, recording the keys and buttons that reach it.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import x11, { type XClient, type XDisplay, type XEvent } from 'x11';

export interface Xvfb {
  display: string;
  stop(): Promise<void>;
}

export async function startXvfb(size = '640x480x24'): Promise<Xvfb> {
  const child: ChildProcess = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', size, '-nolisten', 'tcp', '-br'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const number = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Xvfb did not start:\n${err}`)), 10_000);
    (child.stdio[3] as Readable).once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve(d.toString().trim());
    });
    child.once('exit', (code) => reject(new Error(`Xvfb exited with ${code}:\n${err}`)));
  });
  return {
    display: `:${number}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export interface KeyEvent {
  keycode: number;
  state: number;
}

export interface TestWindow {
  keys: KeyEvent[];
  buttons: { button: number; x: number; y: number }[];
  /** The characters the recorded key presses typed, read with the display's current keyboard map. */
  typed(): Promise<string>;
  close(): void;
}

function call<T>(fn: (cb: (err: Error | null, v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((e, v) => (e ? reject(e) : resolve(v))));
}

export async function openWindow(display: string, geometry: { x: number; y: number; width: number; height: number; rgb: number }): Promise<TestWindow> {
  const d = await new Promise<XDisplay>((resolve, reject) => {
    const c = x11.createClient({ display }, (e, dd) => (e ? reject(e) : resolve(dd)));
    c.on('error', (e?: Error) => reject(e));
  });
  const X: XClient = d.client;
  const root = d.screen[0]!.root;
  const wid = X.AllocID();
  X.CreateWindow(wid, root, geometry.x, geometry.y, geometry.width, geometry.height, 0, 0, 0, 0, {
    backgroundPixel: geometry.rgb,
    // Without a window manager, the keyboard follows the pointer (PointerRoot focus).
    eventMask: x11.eventMask.KeyPress! | x11.eventMask.ButtonPress! | x11.eventMask.Exposure!,
  });
  X.MapWindow(wid);
  const keys: KeyEvent[] = [];
  const buttons: TestWindow['buttons'] = [];
  X.on('event', (ev: XEvent & { buttons?: number; x?: number; y?: number }) => {
    if (ev.wid !== wid) return;
    if (ev.name === 'KeyPress') keys.push({ keycode: ev.keycode!, state: ev.buttons ?? 0 });
    if (ev.name === 'ButtonPress') buttons.push({ button: ev.keycode!, x: ev.x!, y: ev.y! });
  });
  await call((cb) => X.GetInputFocus(cb));
  return {
    keys,
    buttons,
    async typed() {
      const min = d.min_keycode;
      const rows = await call<number[][]>((cb) => X.GetKeyboardMapping(min, d.max_keycode - min + 1, cb));
      let out = '';
      for (const k of keys) {
        const row = rows[k.keycode - min] ?? [];
        const sym = (k.state & 1 ? row[1] || row[0] : row[0]) ?? 0;
        if (sym === 0xff0d) out += '\n';
        else if (sym >= 0x1000000) out += String.fromCodePoint(sym - 0x1000000);
        else if (sym >= 0x20 && sym <= 0xff) out += String.fromCharCode(sym);
        // Modifiers (Shift) produce no character.
      }
      return out;
    },
    close: () => X.terminate(),
  };
}

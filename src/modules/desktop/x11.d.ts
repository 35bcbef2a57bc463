// The `x11` package (pure JavaScript X protocol client) ships no types: the part of it this module uses.
declare module 'x11' {
  export interface XScreen {
    root: number;
    pixel_width: number;
    pixel_height: number;
    root_depth: number;
  }
  export interface XTest {
    KeyPress: number;
    KeyRelease: number;
    ButtonPress: number;
    ButtonRelease: number;
    MotionNotify: number;
    FakeInput(type: number, detail: number, time: number, window: number, x: number, y: number): void;
  }
  export interface XEvent {
    name?: string;
    type: number;
    keycode?: number;
    wid?: number;
  }
  export interface XClient {
    AllocID(): number;
    CreateWindow(wid: number, parent: number, x: number, y: number, w: number, h: number, border: number, depth: number, cls: number, visual: number, attrs: Record<string, number>): void;
    MapWindow(wid: number): void;
    DestroyWindow(wid: number): void;
    GetImage(format: number, drawable: number, x: number, y: number, w: number, h: number, planeMask: number, cb: (err: Error | null, image: { depth: number; data: Buffer }) => void): void;
    GetKeyboardMapping(first: number, count: number, cb: (err: Error | null, rows: number[][]) => void): void;
    ChangeKeyboardMapping(first: number, keysymsPerKeycode: number, keysyms: number[]): void;
    QueryPointer(wid: number, cb: (err: Error | null, p: { rootX: number; rootY: number; root: number; child: number }) => void): void;
    GetInputFocus(cb: (err: Error | null, f: unknown) => void): void;
    require(ext: 'xtest', cb: (err: Error | null, ext: XTest) => void): void;
    on(event: 'event', cb: (ev: XEvent) => void): void;
    on(event: 'error' | 'end' | 'close', cb: (err?: Error) => void): void;
    terminate(): void;
  }
  export interface XDisplay {
    client: XClient;
    screen: XScreen[];
    min_keycode: number;
    max_keycode: number;
    format: Record<number, { bits_per_pixel: number; scanline_pad: number }>;
  }
  export function createClient(opts: { display: string }, cb: (err: Error | null, display: XDisplay) => void): XClient & NodeJS.EventEmitter;
  export const eventMask: Record<string, number>;
  export const keySyms: Record<string, { code: number; description: string }>;
  const x11: { createClient: typeof createClient; eventMask: typeof eventMask; keySyms: typeof keySyms };
  export default x11;
}

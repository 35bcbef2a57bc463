// The desktop contract on both bindings, against a real X server (Xvfb) with a real window: the status
// says whether a display is reachable, the screenshot shows the window, typed keys and clicks reach it,
// and without a display every other operation answers 503. Admin only.
import { randomUUID } from 'node:crypto';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Download, Port } from '../../../src/kernel/contract/define.js';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import { configContract } from '../../../src/modules/config/contract.js';
import { desktopContract } from '../../../src/modules/desktop/contract.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, adminActor, USER_TOKEN, userActor } from '../../support/test-auth.js';
import { openWindow, startXvfb, type TestWindow, type Xvfb } from './xvfb.js';

const RED = 0xff0000;
const WIN = { x: 100, y: 80, width: 200, height: 150, rgb: RED };

let xvfb: Xvfb;
let redis: TestRedis;
let app: TestApp;
let win: TestWindow;
const savedDisplay = process.env.DISPLAY;

const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);

async function bytesOf(d: Download): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of d.body) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string; details?: unknown }> {
  try {
    await p;
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected a refusal');
}

function pixel(png: PNG, x: number, y: number): number {
  const o = (y * png.width + x) * 4;
  return (png.data[o]! << 16) | (png.data[o + 1]! << 8) | png.data[o + 2]!;
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  // The process's own DISPLAY must not leak in: the tests say which display the module drives.
  delete process.env.DISPLAY;
  xvfb = await startXvfb();
  redis = await startTestRedis();
  app = await startTestApp({ redisUrl: redis.url });
  win = await openWindow(xvfb.display, WIN);
}, 30_000);

afterAll(async () => {
  win?.close();
  await app?.stop();
  await redis?.stop();
  await xvfb?.stop();
  if (savedDisplay !== undefined) process.env.DISPLAY = savedDisplay;
});

describe.each(bindingKinds)('desktop contract (%s binding)', (kind) => {
  let desktop: Port<typeof desktopContract>;
  let config: Port<typeof configContract>;
  const admin = <T>(fn: () => Promise<T>) => as(adminActor, fn);

  async function useDisplay(display: string): Promise<void> {
    await admin(() => config.updateSettings({ changes: { desktop: { display } } }));
    await until(async () => (await admin(() => desktop.status({}))).display === (display || null), `the display setting ${JSON.stringify(display)}`);
  }

  beforeAll(() => {
    desktop = portFor(kind, app, desktopContract);
    config = portFor(kind, app, configContract);
  });

  it('without a display: status says so with a reason, and every other operation answers 503 unavailable', async () => {
    await useDisplay('');
    const status = await admin(() => desktop.status({}));
    expect(status).toMatchObject({ available: false, display: null });
    expect(status.reason).toMatch(/DISPLAY/);
    for (const call of [() => desktop.screenshot({}) as Promise<unknown>, () => desktop.act({ action: 'move', x: 1, y: 1 })]) {
      const err = await refusal(admin(call));
      expect(err.code).toBe('unavailable');
      expect(err.message).toMatch(/no X display/);
    }
  });

  it('with a display nobody listens on: unavailable, naming the display', async () => {
    await useDisplay(':987');
    const status = await admin(() => desktop.status({}));
    expect(status).toMatchObject({ available: false, display: ':987' });
    expect(status.reason).toMatch(/:987/);
    expect((await refusal(admin(() => desktop.screenshot({}))))).toMatchObject({ code: 'unavailable' });
  });

  it('reports the display and its size', async () => {
    await useDisplay(xvfb.display);
    expect(await admin(() => desktop.status({}))).toEqual({ available: true, display: xvfb.display, width: 640, height: 480, depth: 24 });
  });

  it('takes a PNG screenshot that shows the window', async () => {
    const shot = await admin(() => desktop.screenshot({}));
    expect(shot.contentType).toBe('image/png');
    const png = PNG.sync.read(await bytesOf(shot));
    expect([png.width, png.height]).toEqual([640, 480]);
    expect(pixel(png, WIN.x + 10, WIN.y + 10)).toBe(RED);
    expect(pixel(png, WIN.x + WIN.width - 1, WIN.y + WIN.height - 1)).toBe(RED);
    // Outside the window: the black root of `Xvfb -br`.
    expect(pixel(png, WIN.x - 5, WIN.y - 5)).toBe(0x000000);
    expect(pixel(png, WIN.x + WIN.width + 5, WIN.y + 10)).toBe(0x000000);
  });

  it('moves the pointer, and typed text (with shifted and unmapped characters) reaches the window under it', async () => {
    const moved = await admin(() => desktop.act({ action: 'move', x: WIN.x + 50, y: WIN.y + 50 }));
    expect(moved).toEqual({ action: 'move', pointer: { x: WIN.x + 50, y: WIN.y + 50 } });
    win.keys.length = 0;
    const text = `Hello, World! ${kind} é→`;
    await admin(() => desktop.act({ action: 'type', text }));
    await admin(() => desktop.act({ action: 'key', key: 'Return' }));
    expect(await win.typed()).toBe(`${text}\n`);
  });

  it('presses key chords', async () => {
    win.keys.length = 0;
    await admin(() => desktop.act({ action: 'key', key: 'shift+a' }));
    expect(await win.typed()).toBe('A');
  });

  it('clicks and scrolls where it is told', async () => {
    win.buttons.length = 0;
    await admin(() => desktop.act({ action: 'click', x: WIN.x + 20, y: WIN.y + 30, button: 'right' }));
    await admin(() => desktop.act({ action: 'scroll', dy: -2 }));
    await admin(() => desktop.act({ action: 'click', x: WIN.x + 5, y: WIN.y + 6, double: true }));
    expect(win.buttons).toEqual([
      { button: 3, x: 20, y: 30 },
      { button: 4, x: 20, y: 30 },
      { button: 4, x: 20, y: 30 },
      { button: 1, x: 5, y: 6 },
      { button: 1, x: 5, y: 6 },
    ]);
  });

  it('refuses bad input naming the field', async () => {
    const bad = [
      [{ action: 'key', key: 'NoSuchKey' }, 'key'],
      [{ action: 'move', x: 5000, y: 10 }, 'x'],
      [{ action: 'move', x: 5 }, 'y'],
      [{ action: 'type' }, 'text'],
      [{ action: 'fly' }, 'action'],
    ] as const;
    for (const [input, field] of bad) {
      const err = await refusal(admin(() => desktop.act(input as never)));
      expect(err.code, JSON.stringify(input)).toBe('invalid_input');
      expect(JSON.stringify(err.details), JSON.stringify(input)).toContain(field);
    }
  });

  it('is for admins only', async () => {
    for (const call of [() => desktop.status({}) as Promise<unknown>, () => desktop.screenshot({}), () => desktop.act({ action: 'move', x: 1, y: 1 })]) {
      expect((await refusal(as(userActor, call))).code).toBe('forbidden');
      expect((await refusal(call())).code).toBe('unauthenticated');
    }
  });
});

describe('desktop over REST', () => {
  it('answers the screenshot as image/png, the status as JSON, and refuses non-admins', async () => {
    const shot = await fetch(`${app.url}/api/v1/desktop/screenshot`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(shot.status).toBe(200);
    expect(shot.headers.get('content-type')).toBe('image/png');
    const png = PNG.sync.read(Buffer.from(await shot.arrayBuffer()));
    expect(pixel(png, WIN.x + 1, WIN.y + 1)).toBe(RED);
    const status = await fetch(`${app.url}/api/v1/desktop/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(await status.json()).toMatchObject({ available: true });
    const act = await fetch(`${app.url}/api/v1/desktop/actions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'move', x: 3, y: 4 }),
    });
    expect(await act.json()).toEqual({ action: 'move', pointer: { x: 3, y: 4 } });
    const user = await fetch(`${app.url}/api/v1/desktop/screenshot`, { headers: { authorization: `Bearer ${USER_TOKEN}` } });
    expect(user.status).toBe(403);
  });
});

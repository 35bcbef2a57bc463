// Drives the desktop of the machine AutoBot runs on (admin only): whether an X display is reachable,
// a PNG of the screen, and mouse and keyboard input on it. Without a display everything but the status
// answers 503 unavailable.
import { z } from 'zod';
import { defineContract, downloadOperation, operation } from '../../kernel/contract/index.js';

export const DESKTOP_ACTIONS = ['move', 'click', 'type', 'key', 'scroll'] as const;

const coord = z.coerce.number().int().min(0).max(32_767);

export const desktopSettings = z.object({
  display: z
    .string()
    .trim()
    .max(200)
    .regex(/^([A-Za-z0-9.-]*|\/[\w./-]+):\d{1,5}(\.\d{1,3})?$|^$/, 'an X display name such as :0 or :99.0')
    .default('')
    .describe('X display to drive; empty: the DISPLAY environment variable of the process'),
  maxTextLength: z.number().int().min(1).max(100_000).default(5000).describe('Longest text one type action may type'),
});

export const desktopContract = defineContract({
  id: 'desktop',
  summary: 'X11 desktop of the host (admin): status, PNG screenshots, mouse and keyboard input through XTEST.',
  operations: {
    status: operation({
      input: z.object({}),
      output: z.object({
        available: z.boolean(),
        display: z.string().nullable(),
        width: z.number().int().optional(),
        height: z.number().int().optional(),
        depth: z.number().int().optional(),
        reason: z.string().optional(),
      }),
      idempotent: true,
      timeoutMs: 5000,
    }),
    screenshot: downloadOperation({ input: z.object({}), idempotent: true, timeoutMs: 15_000, mediaTypes: ['image/png'], summary: 'PNG of the whole screen' }),
    act: operation({
      input: z
        .object({
          action: z.enum(DESKTOP_ACTIONS),
          x: coord.optional(),
          y: coord.optional(),
          text: z.string().min(1).optional(),
          key: z.string().min(1).max(100).optional(),
          button: z.enum(['left', 'middle', 'right']).default('left'),
          double: z.boolean().default(false),
          /** Scroll steps (wheel clicks): positive down / right. */
          dx: z.number().int().min(-100).max(100).default(0),
          dy: z.number().int().min(-100).max(100).optional(),
        })
        .superRefine((v, ctx) => {
          if ((v.x === undefined) !== (v.y === undefined)) ctx.addIssue({ code: 'custom', path: [v.x === undefined ? 'x' : 'y'], message: 'give x and y together' });
          if (v.action === 'move' && v.x === undefined) ctx.addIssue({ code: 'custom', path: ['x'], message: 'move needs x and y' });
          if (v.action === 'type' && v.text === undefined) ctx.addIssue({ code: 'custom', path: ['text'], message: 'type needs text' });
          if (v.action === 'key' && v.key === undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: 'key needs a key, such as Return or ctrl+c' });
        }),
      output: z.object({ action: z.enum(DESKTOP_ACTIONS), pointer: z.object({ x: z.number().int(), y: z.number().int() }) }),
      timeoutMs: 30_000,
      summary: 'move | click | type | key | scroll; x and y place the pointer first',
    }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'unavailable'],
  settings: desktopSettings,
  routes: [
    { method: 'GET', path: '/desktop/status', operation: 'status', auth: 'admin' },
    { method: 'GET', path: '/desktop/screenshot', operation: 'screenshot', auth: 'admin' },
    { method: 'POST', path: '/desktop/actions', operation: 'act', auth: 'admin' },
  ],
});

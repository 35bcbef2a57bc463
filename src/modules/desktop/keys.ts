// Key names and characters to X keysyms: what `key` ("ctrl+shift+t", "Return", "F5") and `text` mean.
import { createRequire } from 'node:module';
import type X11 from 'x11';

// Required on the first key looked up (synchronously, as key combinations are parsed before any I/O), so
// a process that never types on a display does not load the X client.
const require = createRequire(import.meta.url);
let x11Module: typeof X11 | undefined;
const x11 = (): typeof X11 => (x11Module ??= require('x11') as typeof X11);

const ALIASES: Record<string, string> = {
  enter: 'Return',
  return: 'Return',
  esc: 'Escape',
  escape: 'Escape',
  tab: 'Tab',
  backspace: 'BackSpace',
  delete: 'Delete',
  del: 'Delete',
  insert: 'Insert',
  space: 'space',
  up: 'Up',
  down: 'Down',
  left: 'Left',
  right: 'Right',
  home: 'Home',
  end: 'End',
  pageup: 'Prior',
  pagedown: 'Next',
  ctrl: 'Control_L',
  control: 'Control_L',
  shift: 'Shift_L',
  alt: 'Alt_L',
  meta: 'Super_L',
  super: 'Super_L',
  win: 'Super_L',
  cmd: 'Super_L',
  menu: 'Menu',
  capslock: 'Caps_Lock',
  printscreen: 'Print',
};

let byLowerName: Map<string, number> | undefined;

function table(): Map<string, number> {
  if (!byLowerName) {
    byLowerName = new Map();
    for (const [name, def] of Object.entries(x11().keySyms)) {
      const short = name.replace(/^XK_/, '');
      if (!byLowerName.has(short.toLowerCase())) byLowerName.set(short.toLowerCase(), def.code);
    }
  }
  return byLowerName;
}

/** The keysym of one character (Latin-1 directly, the rest through the Unicode keysym range). */
export function keysymOfChar(ch: string): number {
  if (ch === '\n' || ch === '\r') return 0xff0d;
  if (ch === '\t') return 0xff09;
  if (ch === '\b') return 0xff08;
  const cp = ch.codePointAt(0)!;
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  return 0x0100_0000 + cp;
}

/** The keysym a key name stands for, or undefined. Exact names first (`a` and `A` differ), then any case. */
export function keysymOfName(name: string): number | undefined {
  const alias = ALIASES[name.toLowerCase()];
  const exact = x11().keySyms[`XK_${alias ?? name}`];
  if (exact) return exact.code;
  if ([...name].length === 1) return keysymOfChar(name);
  return table().get(name.toLowerCase());
}

/** "ctrl+shift+t" → keysyms in press order; undefined names the part that is no key. */
export function parseCombo(combo: string): { keysyms: number[] } | { unknown: string } {
  // A lone "+" is the plus key; "ctrl++" is ctrl and plus.
  const parts = combo === '+' ? ['+'] : combo.replace(/\+\+$/, '+plus').split('+').filter((p) => p.length > 0);
  const keysyms: number[] = [];
  for (const part of parts) {
    const k = keysymOfName(part.trim() || part);
    if (k === undefined) return { unknown: part };
    keysyms.push(k);
  }
  if (keysyms.length === 0) return { unknown: combo };
  return { keysyms };
}

// Reads and drives web pages for the assistant: per-user Chromium sessions (navigate, act, screenshot,
// content) and a one-shot `fetchPage` that other modules reuse (URL ingestion, tools in chat). Every
// connection Chromium makes passes the module's SSRF guard; admins allow-list hosts in `browser.allowHosts`.
import { z } from 'zod';
import { defineContract, downloadOperation, operation } from '../../kernel/contract/index.js';

export const BROWSER_ACTIONS = ['click', 'fill', 'type', 'press', 'select', 'hover', 'scroll', 'wait_for'] as const;
export const CONTENT_FORMATS = ['text', 'markdown', 'html'] as const;

const sessionId = z.string().regex(/^bs_[A-Za-z0-9_-]{8,64}$/, 'a browser session id (bs_…)');
const url = z.string().trim().min(1).max(4096);

const ipv4 = z.ipv4();
const ipv6 = z.ipv6();
const cidr = z.union([z.cidrv4(), z.cidrv6()]);
const hostName = /^(\*\.)?(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/;
const portOk = (p: string) => Number(p) >= 1 && Number(p) <= 65_535;

/** host name (optionally *.suffix), host:port, [ipv6]:port, IP address or CIDR range. */
function isAllowEntry(e: string): boolean {
  if (cidr.safeParse(e).success || ipv4.safeParse(e).success || ipv6.safeParse(e).success) return true;
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(e);
  if (bracketed) return ipv6.safeParse(bracketed[1]).success && portOk(bracketed[2]!);
  const withPort = /^([^:]+):(\d{1,5})$/.exec(e);
  const host = withPort ? withPort[1]! : e;
  if (withPort && !portOk(withPort[2]!)) return false;
  return ipv4.safeParse(host).success || hostName.test(host);
}

const allowEntry = z
  .string()
  .trim()
  .toLowerCase()
  .max(300)
  .refine(isAllowEntry, 'a host name (*.example.lan), host:port, [ipv6]:port, IP address or CIDR range');

export const browserSettings = z.object({
  allowHosts: z
    .array(allowEntry)
    .max(500)
    .default([])
    .describe('Hosts Chromium may reach although their addresses are private: host names (*.example.lan), host:port, IP addresses or CIDR ranges'),
  maxSessionsPerUser: z.number().int().min(1).max(50).default(3).describe('Open browser sessions per user'),
  maxSessions: z.number().int().min(1).max(500).default(20).describe('Open browser sessions in this process, all users together'),
  sessionIdleS: z.number().int().min(1).max(86_400).default(300).describe('A session unused this long is closed'),
  navigationTimeoutMs: z.number().int().min(1000).max(120_000).default(30_000).describe('Longest wait for a page to load'),
  actionTimeoutMs: z.number().int().min(100).max(60_000).default(5000).describe('Longest wait for an element an action names'),
  maxContentChars: z.number().int().min(1000).max(20_000_000).default(2_000_000).describe('Longest content or Markdown answered'),
  maxConcurrentFetches: z.number().int().min(1).max(32).default(4).describe('One-shot page reads running at once in this process'),
  viewportWidth: z.number().int().min(320).max(3840).default(1280),
  viewportHeight: z.number().int().min(240).max(2160).default(800),
});

const pageState = z.object({ url: z.string(), title: z.string() });

export const browserContract = defineContract({
  id: 'browser',
  summary: 'Chromium sessions per user (navigate, actions, screenshot, content) and one-shot page reads as Markdown, behind an SSRF guard.',
  operations: {
    createSession: operation({
      input: z.object({}),
      output: z.object({ id: z.string(), createdAt: z.string(), idleTimeoutS: z.number().int() }),
      timeoutMs: 30_000,
      summary: 'Opens a browser session (its own cookies and storage) for the caller',
    }),
    listSessions: operation({
      input: z.object({}),
      output: z.object({ items: z.array(z.object({ id: z.string(), url: z.string(), title: z.string(), createdAt: z.string(), lastUsedAt: z.string() })) }),
      idempotent: true,
      summary: "The caller's open sessions",
    }),
    closeSession: operation({ input: z.object({ id: sessionId }), output: z.null(), timeoutMs: 15_000 }),
    navigate: operation({
      input: z.object({ id: sessionId, url }),
      output: pageState.extend({ status: z.number().int().nullable() }),
      timeoutMs: 125_000,
      summary: 'Loads a URL in the session; refused (403) when the guard refuses it or any redirect on the way',
    }),
    act: operation({
      input: z
        .object({
          id: sessionId,
          action: z.enum(BROWSER_ACTIONS),
          selector: z.string().min(1).max(2000).optional(),
          value: z.string().max(100_000).optional(),
        })
        .superRefine((v, ctx) => {
          const needsSelector = ['click', 'fill', 'type', 'select', 'hover', 'wait_for'].includes(v.action);
          const needsValue = ['fill', 'type', 'press', 'select'].includes(v.action);
          if (needsSelector && !v.selector) ctx.addIssue({ code: 'custom', path: ['selector'], message: `${v.action} needs a selector` });
          if (needsValue && v.value === undefined) ctx.addIssue({ code: 'custom', path: ['value'], message: `${v.action} needs a value` });
          if (v.action === 'scroll' && !v.selector && v.value !== undefined && !/^-?\d{1,6}(,-?\d{1,6})?$/.test(v.value)) {
            ctx.addIssue({ code: 'custom', path: ['value'], message: 'scroll takes "dy" or "dx,dy" in pixels' });
          }
        }),
      output: pageState,
      timeoutMs: 125_000,
      summary: 'click | fill | type | press | select | hover | scroll | wait_for on the current page',
    }),
    screenshot: downloadOperation({
      input: z.object({ id: sessionId, fullPage: z.union([z.boolean(), z.stringbool()]).optional() }),
      idempotent: true,
      timeoutMs: 30_000,
      mediaTypes: ['image/png'],
      summary: 'PNG of the viewport (or of the whole page with fullPage=true)',
    }),
    getContent: operation({
      input: z.object({ id: sessionId, format: z.enum(CONTENT_FORMATS).default('text') }),
      output: pageState.extend({ format: z.enum(CONTENT_FORMATS), content: z.string(), truncated: z.boolean() }),
      idempotent: true,
      timeoutMs: 30_000,
    }),
    fetchPage: operation({
      input: z.object({ url }),
      output: z.object({ url: z.string(), title: z.string(), markdown: z.string(), status: z.number().int(), truncated: z.boolean() }),
      idempotent: true,
      timeoutMs: 125_000,
      summary: 'Loads a page in a throw-away context and reads its main text as Markdown (Readability + Turndown)',
    }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'not_found', 'conflict', 'timeout', 'unavailable'],
  settings: browserSettings,
  routes: [
    { method: 'POST', path: '/browser/sessions', operation: 'createSession', auth: 'user', status: 201, rateLimit: 'expensive' },
    { method: 'GET', path: '/browser/sessions', operation: 'listSessions', auth: 'user' },
    { method: 'DELETE', path: '/browser/sessions/:id', operation: 'closeSession', auth: 'user', status: 204 },
    { method: 'POST', path: '/browser/sessions/:id/navigate', operation: 'navigate', auth: 'user' },
    { method: 'POST', path: '/browser/sessions/:id/actions', operation: 'act', auth: 'user' },
    { method: 'GET', path: '/browser/sessions/:id/screenshot', operation: 'screenshot', auth: 'user' },
    { method: 'GET', path: '/browser/sessions/:id/content', operation: 'getContent', auth: 'user' },
    { method: 'POST', path: '/browser/fetch', operation: 'fetchPage', auth: 'user', rateLimit: 'expensive' },
  ],
});

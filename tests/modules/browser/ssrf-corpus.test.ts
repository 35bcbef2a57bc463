// The SSRF corpus, counted: every spelling of a forbidden address, every redirect chain, every kind of
// sub-resource and a rebinding DNS name, driven through real Chromium and the module's guard proxy. The
// forbidden server counts TCP connections, and the proxy reports every upstream connection it opens:
// neither may ever show a forbidden address.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserEngine, type BrowserSettings } from '../../../src/modules/browser/browser-engine.js';
import { browserSettings } from '../../../src/modules/browser/contract.js';
import type { UpstreamConnection } from '../../../src/modules/browser/guard-proxy.js';
import type { ResolvedAddress } from '../../../src/modules/browser/ssrf-guard.js';
import { createLogger } from '../../../src/kernel/log/logger.js';
import { startForbiddenServer, startSite, type CountingServer, type SiteServer } from './web-fixtures.js';

// A global unicast address (judged public) that is unreachable from the test machines: the rebinding
// name's first answer. Any connection to it fails; what matters is that it is the only one tried.
const PUBLIC_V6 = '2001:4860:4860::8888';

let forbidden: CountingServer;
let site: SiteServer;
let engine: BrowserEngine;
let session: string;
const settings: BrowserSettings = browserSettings.parse({});
const upstream: UpstreamConnection[] = [];
const calls = new Map<string, number>();
/** How many times a rebinding name answers the public address before it turns to loopback. */
const publicAnswers: Record<string, number> = { 'rebind.test': 1, 'flip.test': 2 };

/** A DNS stand-in: the rebinding names answer a public address first and loopback afterwards. */
async function resolver(host: string): Promise<ResolvedAddress[]> {
  let answer: ResolvedAddress[];
  const n = calls.get(host) ?? 0;
  calls.set(host, n + 1);
  if (host in publicAnswers) answer = n < publicAnswers[host]! ? [{ address: PUBLIC_V6, family: 6 }] : [{ address: '127.0.0.1', family: 4 }];
  else if (host === 'both.test') answer = [{ address: PUBLIC_V6, family: 6 }, { address: '127.0.0.1', family: 4 }];
  else if (host === 'mapped.test') answer = [{ address: '::ffff:127.0.0.1', family: 6 }];
  else if (host === 'private.test') answer = [{ address: '10.0.0.7', family: 4 }];
  else throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  return answer;
}

const OWNER = 'u-ssrf';

async function refusalOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected a refusal');
}

beforeAll(async () => {
  forbidden = await startForbiddenServer();
  site = await startSite(forbidden.port);
  settings.allowHosts = [`127.0.0.1:${site.port}`];
  settings.navigationTimeoutMs = 8000;
  engine = new BrowserEngine({ executablePath: '/usr/bin/chromium', logger: createLogger('silent'), settings: () => settings, resolver, connectTimeoutMs: 1500 });
  engine.applySettings();
  engine.proxy.upstreamListeners.add((c) => upstream.push(c));
  await engine.start();
  session = (await engine.createSession(OWNER)).id;
}, 30_000);

afterAll(async () => {
  await engine?.stop();
  await site?.close();
  await forbidden?.close();
});

/** Every upstream connection went to the allowed site or to the public address. */
function onlyAllowedUpstream(): void {
  for (const c of upstream) {
    const ok = (c.address === '127.0.0.1' && c.port === site.port) || c.address === PUBLIC_V6;
    expect(ok, `upstream connection to ${c.address}:${c.port} (${c.host})`).toBe(true);
  }
}

describe('SSRF corpus', () => {
  it('reaches the allow-listed test site (the corpus below is refused for its addresses, not for being local)', async () => {
    const r = await engine.navigate(OWNER, session, `${site.url}/article`);
    expect(r).toMatchObject({ status: 200, title: 'Reading with AutoBot' });
  });

  const F = () => forbidden.port;
  const direct: [string, () => string][] = [
    ['loopback', () => `http://127.0.0.1:${F()}/`],
    ['localhost', () => `http://localhost:${F()}/`],
    ['a localhost subdomain', () => `http://admin.localhost:${F()}/`],
    ['decimal', () => `http://2130706433:${F()}/`],
    ['hex', () => `http://0x7f000001:${F()}/`],
    ['dotted hex', () => `http://0x7f.0x0.0x0.0x1:${F()}/`],
    ['octal', () => `http://0177.0.0.01:${F()}/`],
    ['short form', () => `http://127.1:${F()}/`],
    ['other loopback', () => `http://127.0.0.2:${F()}/`],
    ['IPv6 loopback', () => `http://[::1]:${F()}/`],
    ['IPv4-mapped IPv6', () => `http://[::ffff:127.0.0.1]:${F()}/`],
    ['IPv4-mapped IPv6, hex', () => `http://[::ffff:7f00:1]:${F()}/`],
    ['IPv4-compatible IPv6', () => `http://[::127.0.0.1]:${F()}/`],
    ['unspecified', () => `http://0.0.0.0:${F()}/`],
    ['unspecified IPv6', () => `http://[::]:${F()}/`],
    ['https to loopback', () => `https://127.0.0.1:${F()}/`],
    ['a name resolving to loopback (IPv4-mapped)', () => `http://mapped.test:${F()}/`],
    ['a name with a public and a loopback address', () => `http://both.test:${F()}/`],
    ['private', () => 'http://10.0.0.1/'],
    ['private 192.168', () => 'http://192.168.1.1/'],
    ['private 172.16', () => 'http://172.16.0.1/'],
    ['a name resolving to a private address', () => 'http://private.test/'],
    ['link-local', () => 'http://169.254.10.1/'],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/'],
    ['cloud metadata IPv6', () => 'http://[fd00:ec2::254]/'],
    ['carrier-grade NAT', () => 'http://100.64.0.1/'],
    ['IPv6 unique-local', () => 'http://[fd12:3456::1]/'],
    ['IPv6 link-local', () => 'http://[fe80::1]/'],
    ['NAT64 of loopback', () => 'http://[64:ff9b::7f00:1]/'],
    ['6to4 of loopback', () => 'http://[2002:7f00:1::]/'],
    ['multicast', () => 'http://224.0.0.1/'],
    ['broadcast', () => 'http://255.255.255.255/'],
    ['file scheme', () => 'file:///etc/passwd'],
    ['ftp scheme', () => 'ftp://127.0.0.1/'],
    ['data scheme', () => 'data:text/html,<h1>hi</h1>'],
    ['javascript scheme', () => 'javascript:alert(1)'],
    ['chrome scheme', () => 'chrome://version'],
    ['view-source scheme', () => `view-source:http://127.0.0.1:${F()}/`],
  ];

  it.each(direct)('refuses %s with 403 forbidden and no connection', async (_name, url) => {
    const err = await refusalOf(engine.navigate(OWNER, session, url()));
    expect(err.code).toBe('forbidden');
    expect(err.message).toMatch(/SSRF guard/);
    expect(forbidden.connections()).toBe(0);
    onlyAllowedUpstream();
  });

  const redirects: [string, () => string][] = [
    ['a redirect to loopback', () => `${site.url}/redirect?to=${encodeURIComponent(`http://127.0.0.1:${F()}/`)}`],
    ['a redirect to a decimal spelling', () => `${site.url}/redirect?to=${encodeURIComponent(`http://2130706433:${F()}/`)}`],
    ['a redirect to https on loopback', () => `${site.url}/redirect?to=${encodeURIComponent(`https://127.0.0.1:${F()}/`)}`],
    ['a redirect to localhost', () => `${site.url}/redirect?to=${encodeURIComponent(`http://localhost:${F()}/`)}`],
    ['a redirect to metadata', () => `${site.url}/redirect?to=${encodeURIComponent('http://169.254.169.254/latest/')}`],
    [
      'a chain of three redirects ending on loopback',
      () =>
        `${site.url}/redirect?to=${encodeURIComponent(`/redirect?to=${encodeURIComponent(`/redirect?to=${encodeURIComponent(`http://[::1]:${F()}/`)}`)}`)}`,
    ],
  ];

  it.each(redirects)('refuses %s', async (_name, url) => {
    const before = site.requests.length;
    const err = await refusalOf(engine.navigate(OWNER, session, url()));
    expect(err.code).toBe('forbidden');
    // The chain was followed on the allowed site up to the forbidden hop, which was never made.
    expect(site.requests.length).toBeGreaterThan(before);
    expect(forbidden.connections()).toBe(0);
    onlyAllowedUpstream();
  });

  it('loads a page whose images, styles, scripts, frames, fetches, websockets and beacons point at loopback, and none of them connects', async () => {
    const r = await engine.navigate(OWNER, session, `${site.url}/hostile`);
    expect(r).toMatchObject({ status: 200, title: 'Hostile' });
    // Give the page's scripts time to try everything.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(forbidden.connections()).toBe(0);
    onlyAllowedUpstream();
  });

  it('refuses a link the user clicks to a forbidden address', async () => {
    await engine.navigate(OWNER, session, `${site.url}/form`);
    await engine.act(OWNER, session, { action: 'click', selector: '#evil' });
    expect(forbidden.connections()).toBe(0);
    const content = await engine.content(OWNER, session, 'text');
    expect(content.content).toMatch(/Refused by AutoBot's SSRF guard/);
  });

  it('holds against DNS rebinding between the check and the connection', async () => {
    // rebind.test answers public to the first question (the navigation's up-front check) and loopback
    // afterwards: the proxy asks again for the connection it is about to open, and refuses that answer.
    const err = await refusalOf(engine.navigate(OWNER, session, `http://rebind.test:${F()}/`));
    expect(err.code).toBe('forbidden');
    expect(upstream.filter((c) => c.host === 'rebind.test')).toEqual([]);
    expect(forbidden.connections()).toBe(0);
  });

  it('connects to exactly the address it judged, never to a later answer', async () => {
    // flip.test answers public twice (the up-front check and the proxy's check) and loopback afterwards:
    // the connection goes to the judged public address (unreachable from here), not to a fresh lookup.
    const first = await refusalOf(engine.navigate(OWNER, session, `http://flip.test:${F()}/`));
    expect(first.code).toBe('unavailable');
    const tried = upstream.filter((c) => c.host === 'flip.test');
    expect(tried.length).toBeGreaterThan(0);
    expect(new Set(tried.map((c) => c.address))).toEqual(new Set([PUBLIC_V6]));
    // Now it answers loopback: refused.
    const second = await refusalOf(engine.navigate(OWNER, session, `http://flip.test:${F()}/again`));
    expect(second.code).toBe('forbidden');
    expect(forbidden.connections()).toBe(0);
    onlyAllowedUpstream();
  });

  it('reads an allowed page through fetchPage but refuses a forbidden one the same way', async () => {
    const ok = await engine.fetchPage(`${site.url}/article`);
    expect(ok.title).toBe('Reading with AutoBot');
    expect(ok.markdown).toContain(`Paragraph 1 of the article: AutoBot reads pages as Markdown, with [a relative link](${site.url}/link-0) and **bold words**`);
    const err = await refusalOf(engine.fetchPage(`${site.url}/redirect?to=${encodeURIComponent(`http://0x7f000001:${F()}/`)}`));
    expect(err.code).toBe('forbidden');
    expect(forbidden.connections()).toBe(0);
  });

  it('counts: the forbidden server never saw a connection', () => {
    expect(forbidden.connections()).toBe(0);
    expect(upstream.length).toBeGreaterThan(0);
  });
});

// The guard's judgement alone (no browser): classification of addresses, the allow-list's shapes, and
// what an allow-list can never open.
import { describe, expect, it } from 'vitest';
import { allowEntryProblem, SsrfGuard, type ResolvedAddress } from '../../../src/modules/browser/ssrf-guard.js';
import { browserSettings } from '../../../src/modules/browser/contract.js';

const dns: Record<string, string[]> = {
  'public.example': ['93.184.215.14'],
  'intranet.lan': ['10.1.2.3'],
  'wiki.corp.lan': ['10.9.9.9'],
  'mixed.example': ['93.184.215.14', '192.168.0.1'],
  'meta.lan': ['169.254.169.254'],
};
const resolver = async (host: string): Promise<ResolvedAddress[]> => {
  const a = dns[host];
  if (!a) throw Object.assign(new Error('no such host'), { code: 'ENOTFOUND' });
  return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

function guard(allow: string[] = []): SsrfGuard {
  const g = new SsrfGuard(resolver);
  g.setAllowHosts(allow);
  return g;
}

describe('SSRF guard', () => {
  it('lets public addresses through and names the address to connect to', async () => {
    expect(await guard().check('public.example', 443)).toEqual({ allowed: true, address: '93.184.215.14', family: 4, host: 'public.example', port: 443 });
    expect((await guard().check('2606:4700::1111', 80)).allowed).toBe(true);
  });

  it('refuses a name when any of its addresses is forbidden, and says which', async () => {
    const v = await guard().check('mixed.example', 80);
    expect(v).toMatchObject({ allowed: false, kind: 'forbidden' });
    expect(v.allowed === false && v.reason).toMatch(/192\.168\.0\.1.*private/);
  });

  it('reports names that do not resolve as unresolvable, not forbidden', async () => {
    expect(await guard().check('nowhere.example', 80)).toMatchObject({ allowed: false, kind: 'unresolvable' });
  });

  it('allow-lists by host name, wildcard, host:port, IP and CIDR', async () => {
    expect((await guard(['intranet.lan']).check('intranet.lan', 8080)).allowed).toBe(true);
    expect((await guard(['*.corp.lan']).check('wiki.corp.lan', 80)).allowed).toBe(true);
    expect((await guard(['*.corp.lan']).check('corp.lan', 80)).allowed).toBe(false);
    expect((await guard(['127.0.0.1:8080']).check('127.0.0.1', 8080)).allowed).toBe(true);
    // Another port of an allow-listed host:port stays refused.
    expect((await guard(['127.0.0.1:8080']).check('127.0.0.1', 8081)).allowed).toBe(false);
    expect((await guard(['10.0.0.0/8']).check('intranet.lan', 80)).allowed).toBe(true);
    expect((await guard(['10.0.0.0/8']).check('192.168.1.1', 80)).allowed).toBe(false);
    expect((await guard(['[::1]:3000']).check('[::1]', 3000)).allowed).toBe(true);
    // An allowed IPv4 address is the same address in its IPv4-mapped IPv6 spelling.
    expect((await guard(['127.0.0.1']).check('::ffff:127.0.0.1', 80))).toMatchObject({ allowed: true, address: '127.0.0.1' });
  });

  it('never opens cloud metadata, whatever the allow-list says', async () => {
    for (const allow of [['169.254.0.0/16'], ['meta.lan'], ['169.254.169.254']]) {
      expect((await guard(allow).check('meta.lan', 80)).allowed, allow.join()).toBe(false);
      expect((await guard(allow).check('169.254.169.254', 80)).allowed, allow.join()).toBe(false);
    }
    expect((await guard(['fd00::/8']).check('fd00:ec2::254', 80)).allowed).toBe(false);
  });

  it('accepts only http and https URLs', async () => {
    for (const url of ['file:///etc/passwd', 'gopher://x/', 'ws://public.example/', 'data:,x']) {
      expect(await guard().checkUrl(url), url).toMatchObject({ allowed: false, kind: 'forbidden' });
    }
    expect(await guard().checkUrl('no scheme')).toMatchObject({ allowed: false, kind: 'invalid' });
    expect((await guard().checkUrl('https://public.example/x')).allowed).toBe(true);
  });

  it('validates allow-list entries in the settings schema', () => {
    const ok = ['intranet.lan', '*.corp.lan', 'host:8080', '10.0.0.5', '10.0.0.0/8', 'fd00::/8', '[fd00::5]:443', '::1', 'LOCALHOST:3000'];
    expect(browserSettings.parse({ allowHosts: ok }).allowHosts).toContain('localhost:3000');
    for (const entry of ok) expect(allowEntryProblem(entry.toLowerCase()), entry).toBeUndefined();
    for (const bad of ['http://x/', 'a b', 'host:99999', '10.0.0.0/33', '*', 'x:y:z']) {
      expect(browserSettings.safeParse({ allowHosts: [bad] }).success, bad).toBe(false);
    }
  });
});

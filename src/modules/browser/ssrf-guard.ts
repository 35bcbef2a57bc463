// The project's one SSRF guard. It decides whether AutoBot may open a connection to a host and port:
// the name is resolved once, every address it resolves to is judged, and the caller connects to the
// address that was judged (never to the name again), so DNS rebinding cannot slip a second answer in.
// Only global unicast addresses pass, unless an admin allow-listed the host (`browser.allowHosts`);
// cloud metadata endpoints never pass.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Ip = ipaddr.IPv4 | ipaddr.IPv6;

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to all its addresses. Injectable, so tests can play a rebinding DNS server. */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (host) => {
  const all = await lookup(host, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export type GuardVerdict =
  | { allowed: true; address: string; family: 4 | 6; host: string; port: number }
  | { allowed: false; reason: string; kind: 'forbidden' | 'unresolvable' | 'invalid' };

type AllowRule =
  | { kind: 'name'; name: string; wildcard: boolean; port?: number }
  | { kind: 'ip'; ip: Ip; port?: number }
  | { kind: 'cidr'; range: [Ip, number] };

// Metadata services of the big clouds. Never reachable, even when an allow-listed range covers them:
// they hand out credentials to whoever asks from inside the machine.
const METADATA = ['169.254.169.254', '169.254.170.2', 'fd00:ec2::254', '100.100.100.200', '192.0.0.192'].map((a) => ipaddr.parse(a));

const ALLOWED_SCHEMES = new Set(['http:', 'https:']);

/** Parses one `browser.allowHosts` entry; undefined when it is none of the accepted shapes. */
export function parseAllowEntry(raw: string): AllowRule | undefined {
  const entry = raw.trim().toLowerCase();
  if (!entry) return undefined;
  if (entry.includes('/')) {
    if (!ipaddr.isValidCIDR(entry)) return undefined;
    const [ip, bits] = ipaddr.parseCIDR(entry);
    return { kind: 'cidr', range: [ip, bits] };
  }
  let host = entry;
  let port: number | undefined;
  const bracketed = /^\[([0-9a-f:.]+)\](?::(\d{1,5}))?$/.exec(entry);
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2]) port = Number(bracketed[2]);
  } else if (entry.split(':').length === 2) {
    const [h, p] = entry.split(':') as [string, string];
    if (!/^\d{1,5}$/.test(p)) return undefined;
    host = h;
    port = Number(p);
  }
  if (port !== undefined && (port < 1 || port > 65_535)) return undefined;
  if (isIP(host)) return { kind: 'ip', ip: ipaddr.process(host), ...(port !== undefined ? { port } : {}) };
  const wildcard = host.startsWith('*.');
  const name = (wildcard ? host.slice(2) : host).replace(/\.$/, '');
  if (!/^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(name)) return undefined;
  return { kind: 'name', name, wildcard, ...(port !== undefined ? { port } : {}) };
}

/** Why an entry of `browser.allowHosts` is refused, or undefined when it is fine (for the settings schema). */
export function allowEntryProblem(raw: string): string | undefined {
  return parseAllowEntry(raw) ? undefined : `"${raw}" is not a host name, host:port, IP address or CIDR range`;
}

function sameIp(a: Ip, b: Ip): boolean {
  return a.kind() === b.kind() && a.toNormalizedString() === b.toNormalizedString();
}

function inRange(ip: Ip, range: [Ip, number]): boolean {
  return ip.kind() === range[0].kind() && ip.match(range);
}

/** Why an address may not be reached (undefined: a global unicast address). */
export function addressProblem(ip: Ip): string | undefined {
  const range = ip.range();
  if (range !== 'unicast') return range;
  if (ip.kind() === 'ipv6') {
    // ::a.b.c.d (IPv4-compatible, deprecated) still names an IPv4 address that some stacks reach.
    const parts = (ip as ipaddr.IPv6).parts;
    if (parts.slice(0, 6).every((p) => p === 0)) return 'ipv4Compatible';
  }
  return undefined;
}

export class SsrfGuard {
  private rules: AllowRule[] = [];

  constructor(private readonly resolver: Resolver = systemResolver) {}

  /** Replaces the allow-list (entries already validated by the settings schema; bad ones are skipped). */
  setAllowHosts(entries: readonly string[]): void {
    this.rules = entries.map(parseAllowEntry).filter((r): r is AllowRule => r !== undefined);
  }

  /** A URL's scheme and host, before any connection: what a navigation is refused for up front. */
  async checkUrl(raw: string): Promise<GuardVerdict> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return { allowed: false, kind: 'invalid', reason: 'not a valid absolute URL' };
    }
    if (!ALLOWED_SCHEMES.has(url.protocol)) return { allowed: false, kind: 'forbidden', reason: `the ${url.protocol} scheme is not allowed (http and https only)` };
    const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    return this.check(url.hostname, port);
  }

  /**
   * Resolves `host` once and judges every address it resolves to; on success the caller must connect to
   * `address`, the one judged. A name that resolves to any forbidden address is refused as a whole.
   */
  async check(rawHost: string, port: number): Promise<GuardVerdict> {
    const host = rawHost.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();
    if (!host) return { allowed: false, kind: 'forbidden', reason: 'no host' };
    const nameAllowed = !isIP(host) && this.rules.some((r) => r.kind === 'name' && (r.port === undefined || r.port === port) && nameMatches(r, host));
    let addresses: ResolvedAddress[];
    if (isIP(host)) {
      addresses = [{ address: host, family: isIP(host) === 6 ? 6 : 4 }];
    } else if (host === 'localhost' || host.endsWith('.localhost')) {
      // RFC 6761: always loopback, whatever a resolver says.
      addresses = [{ address: '127.0.0.1', family: 4 }];
    } else {
      try {
        addresses = await this.resolver(host);
      } catch (err) {
        return { allowed: false, kind: 'unresolvable', reason: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
      }
      if (addresses.length === 0) return { allowed: false, kind: 'unresolvable', reason: `${host} has no address` };
    }
    for (const a of addresses) {
      if (!ipaddr.isValid(a.address)) return { allowed: false, kind: 'forbidden', reason: `${host} resolved to a malformed address` };
      // IPv4-mapped IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it is.
      const ip = ipaddr.process(a.address);
      const shown = ip.toString();
      if (METADATA.some((m) => sameIp(m, ip))) return { allowed: false, kind: 'forbidden', reason: `${shown} is a cloud metadata address` };
      if (nameAllowed || this.addressAllowed(ip, port)) continue;
      const problem = addressProblem(ip);
      if (problem) {
        const via = shown === host ? '' : ` (${host})`;
        return { allowed: false, kind: 'forbidden', reason: `${shown}${via} is a ${problem} address` };
      }
    }
    const first = addresses[0]!;
    const connectTo = ipaddr.process(first.address).toString();
    return { allowed: true, address: connectTo, family: isIP(connectTo) === 6 ? 6 : 4, host, port };
  }

  private addressAllowed(ip: Ip, port: number): boolean {
    return this.rules.some((r) =>
      r.kind === 'cidr' ? inRange(ip, r.range) : r.kind === 'ip' ? sameIp(r.ip, ip) && (r.port === undefined || r.port === port) : false,
    );
  }
}

function nameMatches(rule: Extract<AllowRule, { kind: 'name' }>, host: string): boolean {
  return rule.wildcard ? host.endsWith(`.${rule.name}`) : host === rule.name;
}

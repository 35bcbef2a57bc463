import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../../src/kernel/config/app-config.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('configuration', () => {
  it('has working defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      PORT: 8001,
      HOST: '127.0.0.1',
      AUTOBOT_DATA_DIR: './data',
      OLLAMA_URL: ['http://127.0.0.1:11434'],
      AUTOBOT_MODULES: 'all',
      AUTOBOT_REMOTE_MODULES: {},
      AUTOBOT_CORS_ORIGINS: [],
      LOG_LEVEL: 'info',
    });
    expect(c.REDIS_URL).toBeUndefined();
  });

  it('parses lists and module maps', () => {
    const c = loadConfig({
      OLLAMA_URL: 'http://a:11434, http://b:11434',
      AUTOBOT_MODULES: 'config,health',
      AUTOBOT_REMOTE_MODULES: 'auth=http://10.0.0.5:8001',
      AUTOBOT_INTERNAL_TOKEN: 'x'.repeat(20),
      AUTOBOT_CORS_ORIGINS: 'http://localhost:5173',
    });
    expect(c.OLLAMA_URL).toEqual(['http://a:11434', 'http://b:11434']);
    expect(c.AUTOBOT_MODULES).toEqual(['config', 'health']);
    expect(c.AUTOBOT_REMOTE_MODULES).toEqual({ auth: 'http://10.0.0.5:8001' });
  });

  it('names the variable of every bad value', () => {
    expect(problems({ PORT: 'eighty' })[0]).toMatch(/^PORT: /);
    expect(problems({ PORT: '70000' })[0]).toMatch(/^PORT: /);
    expect(problems({ REDIS_URL: 'localhost:6379' })[0]).toMatch(/^REDIS_URL: .*redis:\/\//);
    expect(problems({ OLLAMA_URL: 'ftp://x' })[0]).toMatch(/^OLLAMA_URL/);
    expect(problems({ LOG_LEVEL: 'loud' })[0]).toMatch(/^LOG_LEVEL: /);
    expect(problems({ AUTOBOT_REMOTE_MODULES: 'config', AUTOBOT_INTERNAL_TOKEN: 'x'.repeat(20) })[0]).toMatch(/^AUTOBOT_REMOTE_MODULES: /);
    expect(problems({ AUTOBOT_RATE_LIMITS: '{nope' })[0]).toMatch(/^AUTOBOT_RATE_LIMITS: must be JSON/);
  });

  it('requires the internal token once a module is served or reached over HTTP', () => {
    expect(problems({ AUTOBOT_MODULES: 'config' })).toEqual([expect.stringMatching(/^AUTOBOT_INTERNAL_TOKEN: is required/)]);
    expect(problems({ AUTOBOT_MODULES: 'config', AUTOBOT_INTERNAL_TOKEN: 'short' })[0]).toMatch(/^AUTOBOT_INTERNAL_TOKEN: must be at least 16/);
  });

  it('refuses a module both hosted here and named remote, naming it', () => {
    const token = { AUTOBOT_INTERNAL_TOKEN: 'x'.repeat(20) };
    expect(problems({ ...token, AUTOBOT_MODULES: 'config,health', AUTOBOT_REMOTE_MODULES: 'config=http://10.0.0.5:8001' })).toEqual([
      expect.stringMatching(/^AUTOBOT_REMOTE_MODULES: names "config", which AUTOBOT_MODULES hosts here too/),
    ]);
    // "all" means all the others: no conflict.
    expect(problems({ ...token, AUTOBOT_REMOTE_MODULES: 'config=http://10.0.0.5:8001' })).toEqual([]);
  });

  it('reads a JSON config file, the environment winning', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'abc-')), 'autobot.json');
    writeFileSync(file, JSON.stringify({ PORT: 9000, HOST: '0.0.0.0', AUTOBOT_RATE_LIMITS: { auth: { points: 5, durationS: 60 } } }));
    const c = loadConfig({ AUTOBOT_CONFIG_FILE: file, HOST: '127.0.0.2' });
    expect(c.PORT).toBe(9000);
    expect(c.HOST).toBe('127.0.0.2');
    expect(c.AUTOBOT_RATE_LIMITS).toEqual({ auth: { points: 5, durationS: 60 } });
    expect(problems({ AUTOBOT_CONFIG_FILE: '/no/such/file.json' })[0]).toMatch(/^AUTOBOT_CONFIG_FILE: cannot read/);
  });
});

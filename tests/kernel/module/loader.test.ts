import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inject, injectable } from 'tsyringe';
import { defineContract, operation, type Handlers, type Port } from '../../../src/kernel/contract/index.js';
import { defineModule, orderModules, type AnyModule } from '../../../src/kernel/module/define-module.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { startTestApp } from '../../support/app.js';

const contractOf = (id: string) =>
  defineContract({ id, summary: id, operations: { ping: operation({ input: z.object({}), output: z.object({ from: z.string() }) }) } });

const a = contractOf('alpha');
const b = contractOf('beta');
const c = contractOf('gamma');

function moduleOf(contract: ReturnType<typeof contractOf>, deps: ReturnType<typeof contractOf>[], impl: new (...args: never[]) => object): AnyModule {
  return defineModule({
    contract,
    dependencies: deps,
    redisDb: 13,
    register: (container) => container.registerSingleton(impl as never),
    implementation: impl as never,
  }) as unknown as AnyModule;
}

class Plain {
  ping() {
    return { from: 'plain' };
  }
}

describe('orderModules', () => {
  it('starts each module after what it depends on', () => {
    const mods = [moduleOf(a, [b], Plain), moduleOf(b, [c], Plain), moduleOf(c, [], Plain)];
    expect(orderModules(mods).map((m) => m.contract.id)).toEqual(['gamma', 'beta', 'alpha']);
  });

  it('refuses a cycle, naming the modules in it', () => {
    const mods = [moduleOf(a, [b], Plain), moduleOf(b, [c], Plain), moduleOf(c, [a], Plain)];
    expect(() => orderModules(mods)).toThrow(/dependency cycle between modules: alpha → beta → gamma → alpha/);
  });

  it('refuses a dependency that is not a known module, naming both', () => {
    expect(() => orderModules([moduleOf(a, [b], Plain)])).toThrow('module "alpha" depends on "beta", which is not a known module');
  });

  it('does not order by a dependency hosted elsewhere', () => {
    const all = [moduleOf(a, [b], Plain), moduleOf(b, [], Plain)];
    expect(orderModules([all[0]!], all).map((m) => m.contract.id)).toEqual(['alpha']);
  });
});

describe('module containers', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterAll(async () => redis.stop());

  @injectable()
  class CallsBeta implements Handlers<typeof a> {
    constructor(@inject(b.token) private readonly beta: Port<typeof b>) {}
    async ping() {
      return { from: `alpha via ${(await this.beta.ping({})).from}` };
    }
  }

  @injectable()
  class Sneaky implements Handlers<typeof c> {
    // Reaches for a port it did not declare.
    constructor(@inject(a.token) private readonly alpha: Port<typeof a>) {}
    async ping() {
      return this.alpha.ping({});
    }
  }

  it('hands a module the ports it declared, through the local binding', async () => {
    const app = await startTestApp({ redisUrl: redis.url, catalogue: [moduleOf(a, [b], CallsBeta), moduleOf(b, [], Plain)] });
    try {
      expect(await app.runtime.port(a).ping({})).toEqual({ from: 'alpha via plain' });
    } finally {
      await app.stop();
    }
  });

  it('refuses to build a module that resolves a port it did not declare', async () => {
    await expect(
      startTestApp({ redisUrl: redis.url, catalogue: [moduleOf(a, [], Plain), moduleOf(c, [], Sneaky)] }),
    ).rejects.toThrow(/autobot\.port\.alpha|Attempted to resolve unregistered dependency token/);
  });

  it('refuses to start when AUTOBOT_MODULES names an unknown module', async () => {
    await expect(startTestApp({ redisUrl: redis.url, env: { AUTOBOT_MODULES: 'config,nosuch' } })).rejects.toThrow(
      /AUTOBOT_MODULES names unknown module\(s\): nosuch/,
    );
  });
});

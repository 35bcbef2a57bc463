// The module boundaries of ARCHITECTURE.md §9 are a build failure, not a convention. This runs the real
// `.dependency-cruiser.js` through the real CLI (what `npm run lint:deps` runs) twice: on a fixture tree
// that breaks every rule once (and also holds the imports the rules must allow), and on the real src/.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const configFile = path.join(repoRoot, '.dependency-cruiser.js');
const depcruiseBin = path.join(repoRoot, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

interface Violation {
  rule: { name: string; severity: string };
  from: string;
  to: string;
}
interface CruiseJson {
  summary: { error: number; totalCruised: number; violations: Violation[] };
  modules: { source: string; dependencies: { resolved: string; dependencyTypes: string[] }[] }[];
}

/** Runs depcruise on `src` of `cwd` with the JSON reporter (which always exits 0), for the details. */
function depcruiseJson(cwd: string): Promise<{ result: CruiseJson; stderr: string }> {
  return runDepcruise(cwd, ['--output-type', 'json']).then(({ stdout, stderr, exitCode }) => {
    try {
      return { result: JSON.parse(stdout) as CruiseJson, stderr };
    } catch {
      throw new Error(`depcruise printed no JSON (exit ${exitCode}): ${stderr}`);
    }
  });
}

/** Runs depcruise exactly as `npm run lint:deps` does; that exit code is what fails the build. */
function runDepcruise(cwd: string, extra: string[] = []): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [depcruiseBin, 'src', '--config', configFile, ...extra],
      { cwd, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        // A non-zero exit is data here (the number of errors), not a failure to run.
        const exitCode = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ exitCode, stdout, stderr });
      },
    );
  });
}

// Every file imports with `.js` specifiers as NodeNext requires; if depcruise stopped mapping them to the
// `.ts` files, the expected violations below would vanish (or turn into no-unresolvable ones).
const fixture: Record<string, string> = {
  'src/kernel/contract/index.ts': `export const kit = 'contract kit';\n`,
  'src/kernel/registry.ts': `import { alphaService } from '../modules/alpha/service.js';\nexport const registry = [alphaService];\n`,
  'src/kernel/http.ts': `import { gatewayError } from '../gateway/errors.js';\nexport const http = gatewayError;\n`,

  'src/modules/beta/contract.ts':
    `import { z } from 'zod';\nimport { kit } from '../../kernel/contract/index.js';\n` +
    `export const betaContract = { kit, input: z.object({ id: z.string() }) };\n`,
  'src/modules/beta/store.ts': `export const betaStore = new Map<string, string>();\n`,
  'src/modules/beta/module.ts': `import { betaStore } from './store.js';\nexport const betaModule = { betaStore };\n`,
  'src/modules/beta/edge.ts': `import { gatewayError } from '../../gateway/errors.js';\nexport const edge = gatewayError;\n`,
  'src/modules/beta/peek.ts':
    `import type { AlphaRecord } from '../alpha/store.js';\nexport const peek = (r: AlphaRecord): string => r.id;\n`,

  'src/modules/alpha/store.ts': `export interface AlphaRecord { id: string }\nexport const alphaStore = new Map<string, AlphaRecord>();\n`,
  'src/modules/alpha/contract.ts':
    `import { z } from 'zod';\nimport { kit } from '../../kernel/contract/index.js';\n` +
    `import { betaContract } from '../beta/contract.js';\nimport { alphaStore } from './store.js';\n` +
    `export const alphaContract = { kit, betaContract, alphaStore, input: z.string() };\n`,
  'src/modules/alpha/service.ts':
    `import { alphaStore } from './store.js';\nimport { betaContract } from '../beta/contract.js';\n` +
    `import { betaStore } from '../beta/store.js';\nexport const alphaService = { alphaStore, betaContract, betaStore };\n`,

  'src/modules/gamma/ping.ts': `import { pong } from './pong.js';\nexport const ping = (): unknown => pong;\n`,
  'src/modules/gamma/pong.ts': `import { ping } from './ping.js';\nexport const pong = (): unknown => ping;\n`,
  'src/modules/gamma/lost.ts': `import { nothing } from './missing.js';\nexport const lost = nothing;\n`,

  'src/gateway/errors.ts': `export const gatewayError = 'error envelope';\n`,
  'src/gateway/routes.ts':
    `import { kit } from '../kernel/contract/index.js';\nimport { betaContract } from '../modules/beta/contract.js';\n` +
    `import { betaStore } from '../modules/beta/store.js';\nexport const routes = { kit, betaContract, betaStore };\n`,

  'src/app/compose.ts':
    `import { betaModule } from '../modules/beta/module.js';\nimport { alphaContract } from '../modules/alpha/contract.js';\n` +
    `import { alphaService } from '../modules/alpha/service.js';\nexport const app = { betaModule, alphaContract, alphaService };\n`,
  'src/main.ts': `import { app } from './app/compose.js';\nexport const main = app;\n`,
};

// Exactly these, and nothing else: the allowed imports in the fixture must not be reported either.
const expected = [
  'composition-root-only-module-entries src/app/compose.ts -> src/modules/alpha/service.ts',
  'contract-only-kit-zod-contracts src/modules/alpha/contract.ts -> src/modules/alpha/store.ts',
  'gateway-only-contracts-and-kernel src/gateway/routes.ts -> src/modules/beta/store.ts',
  'kernel-knows-no-module src/kernel/http.ts -> src/gateway/errors.ts',
  'kernel-knows-no-module src/kernel/registry.ts -> src/modules/alpha/service.ts',
  'module-not-to-edge src/modules/beta/edge.ts -> src/gateway/errors.ts',
  'module-only-through-contract src/modules/alpha/service.ts -> src/modules/beta/store.ts',
  'module-only-through-contract src/modules/beta/peek.ts -> src/modules/alpha/store.ts',
  // depcruise reports a cycle once, at the edge where it first meets it.
  'no-circular src/modules/gamma/ping.ts -> src/modules/gamma/pong.ts',
  'no-unresolvable src/modules/gamma/lost.ts -> ./missing.js',
].sort();

describe('module boundaries (dependency-cruiser)', () => {
  // Inside the repository (under the git-ignored, dot-named `.tmp/` that tsc and vitest skip) so that
  // `zod` resolves from the repository's node_modules and the fixture's tsconfig can extend the real one.
  const tmpParent = path.join(repoRoot, 'tests/architecture/.tmp');
  let root: string;
  let fixtureRun: Awaited<ReturnType<typeof depcruiseJson>>;

  beforeAll(async () => {
    mkdirSync(tmpParent, { recursive: true });
    root = mkdtempSync(path.join(tmpParent, 'boundaries-'));
    const extendsPath = path.relative(root, path.join(repoRoot, 'tsconfig.json'));
    writeFileSync(path.join(root, 'tsconfig.json'), JSON.stringify({ extends: extendsPath, include: ['src'] }));
    for (const [file, text] of Object.entries(fixture)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), text);
    }
    fixtureRun = await depcruiseJson(root);
  });

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    try {
      rmdirSync(tmpParent);
    } catch {
      // not empty (another run's leftovers) or already gone: nothing to tidy
    }
  });

  it('reports a deliberate violation of every rule, by rule name, and nothing that is allowed', () => {
    const found = fixtureRun.result.summary.violations.map((v) => `${v.rule.name} ${v.from} -> ${v.to}`).sort();
    expect(found).toEqual(expected);
    expect(fixtureRun.result.summary.violations.every((v) => v.rule.severity === 'error')).toBe(true);
    expect(fixtureRun.result.summary.error).toBe(expected.length);
  });

  it('fails `npm run lint:deps` (non-zero exit) when a boundary is crossed', async () => {
    const { exitCode, stdout } = await runDepcruise(root);
    expect(exitCode).toBe(expected.length);
    expect(stdout).toContain('module-only-through-contract');
  });

  it('catches a crossing made with `import type` alone', () => {
    const peek = fixtureRun.result.modules.find((m) => m.source === 'src/modules/beta/peek.ts');
    const dep = peek?.dependencies.find((d) => d.resolved === 'src/modules/alpha/store.ts');
    expect(dep?.dependencyTypes).toContain('type-only');
  });

  it('passes on the real src/ with zero errors', async () => {
    const [{ result, stderr }, plain] = await Promise.all([depcruiseJson(repoRoot), runDepcruise(repoRoot)]);
    const report = result.summary.violations.map((v) => `${v.rule.name} ${v.from} -> ${v.to}`);
    expect(report, stderr).toEqual([]);
    expect(result.summary.error).toBe(0);
    expect(plain.exitCode, plain.stdout).toBe(0);
    // Guards against a vacuous pass (for example, an include pattern that matches nothing).
    expect(result.summary.totalCruised).toBeGreaterThan(0);
  });
});

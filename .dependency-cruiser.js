// Module boundaries that the build enforces (ARCHITECTURE.md §9). `npm run lint:deps` fails on any
// `error` below; tests/architecture/boundaries.test.ts proves each rule catches a deliberate violation.
//
// The package is `"type": "module"`, and dependency-cruiser loads a `.js` config with `import()`, so this
// file is an ES module with a default export (the tool's own contract; our "no default exports" rule is
// for our source code).
//
// Paths in the rules are relative to the directory depcruise runs in (the repository root), with `/`.

/** A module's public door: `src/modules/<m>/contract.ts`. */
const CONTRACT = '^src/modules/[^/]+/contract\\.ts$';
/** Composition root: wires modules into the kernel; the only code allowed to see a module's `module.ts`. */
const COMPOSITION_ROOT = '^src/(main\\.ts$|app/)';

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'module-only-through-contract',
      comment:
        "A module reaches another module only through that module's contract.ts; everything else in a " +
        'module folder is private (ARCHITECTURE.md §3). Within its own folder a module may import anything.',
      severity: 'error',
      from: { path: '^src/modules/([^/]+)/' },
      to: {
        path: '^src/modules/[^/]+/',
        pathNot: ['^src/modules/$1/', CONTRACT],
      },
    },
    {
      name: 'module-not-to-edge',
      comment: 'Arrows only point down: a module never imports the gateway or the composition root.',
      severity: 'error',
      from: { path: '^src/modules/' },
      to: { path: ['^src/gateway/', COMPOSITION_ROOT] },
    },
    {
      name: 'kernel-knows-no-module',
      comment:
        'The kernel is generic: it imports no module, no gateway file and not the composition root. ' +
        'Modules are handed to it at start-up (by src/app), never imported by it.',
      severity: 'error',
      from: { path: '^src/kernel/' },
      to: { path: ['^src/modules/', '^src/gateway/', COMPOSITION_ROOT] },
    },
    {
      name: 'gateway-only-contracts-and-kernel',
      comment:
        'The gateway is generic edge code: it calls ports, so from src/ it may import only contracts and ' +
        'the kernel (npm packages such as express and socket.io are fine).',
      severity: 'error',
      from: { path: '^src/gateway/' },
      to: {
        path: '^src/',
        pathNot: ['^src/gateway/', '^src/kernel/', CONTRACT],
      },
    },
    {
      name: 'contract-only-kit-zod-contracts',
      comment:
        "A contract is data that crosses wires and process boundaries: it imports only the kernel's " +
        'contract kit (src/kernel/contract/**), zod and other contracts; never an implementation, never ' +
        'node built-ins or other packages.',
      severity: 'error',
      from: { path: CONTRACT },
      to: {
        pathNot: ['^src/kernel/contract/', CONTRACT, '(^|/)node_modules/zod/'],
      },
    },
    {
      name: 'composition-root-only-module-entries',
      comment:
        'The documented exception: src/main.ts and src/app/** wire modules into the kernel, so they may ' +
        "import a module's module.ts (and its contract.ts), but still none of its other private files.",
      severity: 'error',
      from: { path: COMPOSITION_ROOT },
      to: {
        path: '^src/modules/[^/]+/',
        pathNot: '^src/modules/[^/]+/(contract|module)\\.ts$',
      },
    },
    {
      name: 'no-circular',
      comment: 'No cycles anywhere in src/, type-only ones included: they blur which side owns what.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-unresolvable',
      comment:
        'An import depcruise cannot resolve is an import no rule above can judge, so a resolution ' +
        'problem (for example `./x.js` not mapped to `x.ts`) would let violations through silently.',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Without this, `import type` and other compile-time-only imports vanish before analysis and a
    // type-only boundary crossing would pass.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    // NodeNext makes us write `./x.js` for `x.ts`. dependency-cruiser 17 retries a `.js`/`.mjs`/`.cjs`
    // specifier that does not exist on disk with `.ts`/`.mts`/`.cts` (as tsc does); enhanced-resolve's
    // own `extensionAlias` is not an accepted option here. The `no-unresolvable` rule above and the
    // architecture test make sure this mapping keeps working.
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.d.ts', '.js', '.mjs', '.cjs', '.json'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    moduleSystems: ['es6', 'cjs'],
    skipAnalysisNotInRules: true,
  },
};

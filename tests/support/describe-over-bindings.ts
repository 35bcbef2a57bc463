// Runs one contract test table against both bindings of a port (ARCHITECTURE.md §4): the local binding
// in process, and the HTTP binding talking over loopback to an RPC server that hosts the same handlers.
// It works at the level of a contract and its handlers (no runtime, no Redis), so a module's contract
// suite can follow the same pattern with its real handlers (for a whole running app, see bindings.ts):
//
//   describeOverBindings('chats contract', chatsContract, async () => ({ handlers, fixture }), (subject) => {
//     it('creates a chat', async () => { const { port } = subject(); … });
//   });
//
// Every test gets fresh handlers (and, for `http`, a fresh server), so tests cannot leak state into
// each other through a recorder or a half-read stream.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import express, { type Express } from 'express';
import { afterEach, beforeEach, describe } from 'vitest';
import type { AnyContract, Handlers, HealthReport, Port } from '../../src/kernel/contract/define.js';
import { createLogger, type Logger } from '../../src/kernel/log/logger.js';
import { createHttpBinding, type BreakerState, type HttpBindingOptions } from '../../src/kernel/transport/http-binding.js';
import { createLocalBinding } from '../../src/kernel/transport/local-binding.js';
import { createRpcHandler, isRpcRequest, type HostedPort } from '../../src/kernel/transport/rpc-server.js';

export type BindingKind = 'local' | 'http';
export const BINDING_KINDS: readonly BindingKind[] = ['local', 'http'];

export function silentLogger(): Logger {
  return createLogger('silent');
}

export interface RpcHost {
  /** Base URL for `resolveUrl` (`http://127.0.0.1:<port>`). */
  readonly url: string;
  readonly internalToken: string;
  readonly app: Express;
  readonly server: http.Server;
  /** Requests that reached the HTTP server at all (before authentication or routing). */
  readonly requests: () => number;
  close(): Promise<void>;
}

export interface RpcHostOptions {
  /** `null`: the server has no token configured and must refuse everything. */
  internalToken?: string | null;
  logger?: Logger;
  /** Installed before the RPC router: fault injection (drop answers, close connections). */
  before?: (app: Express) => void;
}

/** An express app serving the given ports on /rpc, listening on 127.0.0.1 on a free port. */
export async function startRpcHost(hosted: HostedPort[], opts: RpcHostOptions = {}): Promise<RpcHost> {
  const internalToken = opts.internalToken === undefined ? randomBytes(16).toString('hex') : opts.internalToken;
  const app = express();
  let requests = 0;
  app.use((_req, _res, next) => {
    requests++;
    next();
  });
  opts.before?.(app);
  const rpc = createRpcHandler({
    internalToken: internalToken ?? undefined,
    hosted: (id) => hosted.find((h) => h.contract.id === id),
    logger: opts.logger ?? silentLogger(),
  });
  // Behind express here, so that tests can put middleware in front of it (`before`).
  app.use((req, res, next) => (isRpcRequest(req.url) ? rpc(req, res) : next()));
  const server = await new Promise<http.Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    internalToken: internalToken ?? '',
    app,
    server,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // The HTTP binding keeps connections alive; without this, close() waits for them to idle out.
        server.closeAllConnections();
      }),
  };
}

export interface BindingSetup<C extends AnyContract, F> {
  handlers: Handlers<C>;
  /** Whatever the tests need besides the port: recorders, stores, fakes. */
  fixture: F;
  health?: () => Promise<HealthReport> | HealthReport;
  teardown?: () => Promise<void> | void;
}

export interface BindingSubject<C extends AnyContract, F> {
  readonly kind: BindingKind;
  readonly port: Port<C>;
  readonly fixture: F;
  /** Only for `http`: the server hosting the handlers. */
  readonly host?: RpcHost;
  /** Only for `http`: the client's circuit breaker. */
  readonly breaker?: () => BreakerState;
}

export interface BindOptions {
  /** Extra options of the HTTP binding (retries, breaker). */
  http?: Partial<Omit<HttpBindingOptions, 'resolveUrl' | 'internalToken'>>;
  logger?: Logger;
}

export interface DescribeOverBindingsOptions extends BindOptions {
  kinds?: readonly BindingKind[];
}

/** Builds one binding of `contract` over `setup`'s handlers; the caller closes it. */
export async function bindPort<C extends AnyContract, F>(
  kind: BindingKind,
  contract: C,
  setup: BindingSetup<C, F>,
  opts: BindOptions = {},
): Promise<BindingSubject<C, F> & { close(): Promise<void> }> {
  const logger = opts.logger ?? silentLogger();
  // The server side of the HTTP binding is the local binding, exactly as in a process hosting the module.
  const local = createLocalBinding(contract, setup.handlers, { logger, ...(setup.health ? { health: setup.health } : {}) });
  if (kind === 'local') {
    return { kind, port: local, fixture: setup.fixture, close: async () => undefined };
  }
  const host = await startRpcHost([{ contract, port: local as unknown as Record<string, unknown> }], { logger });
  const remote = createHttpBinding(contract, { resolveUrl: () => host.url, internalToken: host.internalToken, ...opts.http });
  return { kind, port: remote, fixture: setup.fixture, host, breaker: remote.$breaker, close: () => host.close() };
}

export function describeOverBindings<C extends AnyContract, F>(
  title: string,
  contract: C,
  setup: () => Promise<BindingSetup<C, F>> | BindingSetup<C, F>,
  suite: (subject: () => BindingSubject<C, F>) => void,
  opts: DescribeOverBindingsOptions = {},
): void {
  for (const kind of opts.kinds ?? BINDING_KINDS) {
    describe(`${title} [${kind} binding]`, () => {
      let current: (BindingSubject<C, F> & { close(): Promise<void> }) | undefined;
      let teardown: BindingSetup<C, F>['teardown'];
      beforeEach(async () => {
        const s = await setup();
        teardown = s.teardown;
        current = await bindPort(kind, contract, s, opts);
      });
      afterEach(async () => {
        await current?.close();
        await teardown?.();
        current = undefined;
      });
      suite(() => {
        if (!current) throw new Error('binding used outside a test');
        return current;
      });
    });
  }
}

// Runs a module's contract suite against both bindings: the local one (in process) and the HTTP one
// (a generated client calling the RPC server of a running AutoBot over loopback).
import type { AnyContract, Port } from '../../src/kernel/contract/define.js';
import { createHttpBinding } from '../../src/kernel/transport/http-binding.js';
import type { TestApp } from './app.js';
import { INTERNAL_TOKEN } from './app.js';

export type BindingKind = 'local' | 'http';
export const bindingKinds: BindingKind[] = ['local', 'http'];

export function portFor<C extends AnyContract>(kind: BindingKind, app: TestApp, contract: C): Port<C> {
  if (kind === 'local') return app.runtime.port(contract);
  return createHttpBinding(contract, { resolveUrl: () => app.url, internalToken: INTERNAL_TOKEN }) as unknown as Port<C>;
}

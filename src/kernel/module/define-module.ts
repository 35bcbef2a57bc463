// The module kit. A module is a contract plus how to build its implementation in a private container
// that holds the kernel's facilities and the ports of the modules it declared, nothing else.
import type { DependencyContainer, InjectionToken } from 'tsyringe';
import type { AnyContract, Handlers, HealthReport } from '../contract/define.js';
import type { AnySagaDefinition } from '../sagas/saga-definition.js';

export interface ModuleDefinition<C extends AnyContract = AnyContract> {
  readonly contract: C;
  /** Modules it calls, named by their contracts; their ports (local or remote) are all it can resolve. */
  readonly dependencies: readonly AnyContract[];
  /** Logical Redis database of its data (ARCHITECTURE.md §5). */
  readonly redisDb: number;
  /** Event types it subscribes to. Declared as data so every process creates the durable subscription,
   * and events published while the module is down (or not yet started) wait for it. */
  readonly subscribes: readonly string[];
  /** Sagas it orchestrates. Registered in every process, so any process can resume one after a crash. */
  readonly sagas: readonly AnySagaDefinition[];
  /** Registers the module's classes in its container. */
  readonly register: (container: DependencyContainer) => void;
  /** The token (usually the service class) resolving to the handlers of every operation. */
  readonly implementation: InjectionToken<Handlers<C>>;
  readonly start?: (container: DependencyContainer) => Promise<void> | void;
  readonly stop?: (container: DependencyContainer) => Promise<void> | void;
  readonly health?: (container: DependencyContainer) => Promise<HealthReport> | HealthReport;
}

export function defineModule<C extends AnyContract>(
  def: Omit<ModuleDefinition<C>, 'subscribes' | 'dependencies' | 'sagas'> & {
    dependencies?: readonly AnyContract[];
    subscribes?: readonly string[];
    sagas?: readonly AnySagaDefinition[];
  },
): ModuleDefinition<C> {
  return { ...def, dependencies: def.dependencies ?? [], subscribes: def.subscribes ?? [], sagas: def.sagas ?? [] };
}

export type AnyModule = ModuleDefinition<AnyContract>;

/**
 * Orders modules so that each starts after what it depends on. Refuses a cycle or a dependency
 * missing from the catalogue, naming the modules involved.
 */
export function orderModules<M extends AnyModule>(modules: readonly M[], catalogue: readonly AnyModule[] = modules): M[] {
  const known = new Set(catalogue.map((m) => m.contract.id));
  const byId = new Map(modules.map((m) => [m.contract.id, m]));
  if (byId.size !== modules.length) throw new Error('a module is listed twice');
  for (const m of modules) {
    for (const d of m.dependencies) {
      if (!known.has(d.id)) throw new Error(`module "${m.contract.id}" depends on "${d.id}", which is not a known module`);
    }
  }
  const ordered: M[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (m: M, trail: string[]) => {
    const id = m.contract.id;
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(id)), id];
      throw new Error(`dependency cycle between modules: ${cycle.join(' → ')}`);
    }
    state.set(id, 'visiting');
    // A dependency hosted elsewhere is reached through its HTTP binding and imposes no start order here.
    for (const d of m.dependencies) {
      const dep = byId.get(d.id);
      if (dep) visit(dep, [...trail, id]);
    }
    state.set(id, 'done');
    ordered.push(m);
  };
  for (const m of modules) visit(m, []);
  return ordered;
}

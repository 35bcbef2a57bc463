// One prom-client registry per application instance (not the global one), so that several instances
// in one test process keep separate counts.
import { Registry, Histogram, Counter, collectDefaultMetrics } from 'prom-client';

export type Binding = 'local' | 'remote';

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly operationDuration: Histogram<'module' | 'operation' | 'binding' | 'outcome'>;
  readonly eventDeliveries: Counter<'module' | 'event' | 'outcome'>;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    // The event-loop lag monitor samples every 10 ms by default: 100 wake-ups a second of an idle
    // process. Every 100 ms still measures lag well enough for a dashboard.
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    this.httpDuration = new Histogram({
      name: 'autobot_http_request_duration_seconds',
      help: 'HTTP requests through the gateway, by route template',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.operationDuration = new Histogram({
      name: 'autobot_operation_duration_seconds',
      help: 'Module operation calls, by binding (local or remote) and outcome (ok or an error code)',
      labelNames: ['module', 'operation', 'binding', 'outcome'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers: [this.registry],
    });
    this.eventDeliveries = new Counter({
      name: 'autobot_event_deliveries_total',
      help: 'Event deliveries to subscribing modules, by outcome (ok, retry, dead)',
      labelNames: ['module', 'event', 'outcome'],
      registers: [this.registry],
    });
  }

  private readonly httpChildren = new Map<string, { observe(v: number): void }>();

  /** Records one HTTP request; label children are cached here, as hashing labels costs more than observing. */
  observeHttp(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`;
    let child = this.httpChildren.get(key);
    if (!child) {
      child = this.httpDuration.labels(method, route, String(status));
      this.httpChildren.set(key, child);
    }
    child.observe(seconds);
  }

  /** A timer for one operation call; label children are cached by prom-client. */
  timeOperation(module: string, operation: string, binding: Binding): (outcome: string) => void {
    const start = process.hrtime.bigint();
    return (outcome) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      this.operationDuration.labels(module, operation, binding, outcome).observe(seconds);
    };
  }
}

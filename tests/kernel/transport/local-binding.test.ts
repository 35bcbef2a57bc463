// The local binding behaves like a remote call (ARCHITECTURE.md §4): the shared behaviour table, plus
// what only the in-process side owns (wiring checks, logging of unknown failures, metrics).
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { runWithContext } from '../../../src/kernel/context/request-context.js';
import { Metrics } from '../../../src/kernel/metrics/metrics.js';
import { createLocalBinding } from '../../../src/kernel/transport/local-binding.js';
import { errorOf, probeBehaviour } from './probe-behaviour.js';
import { probeContract, probeHandlers, ProbeRecorder, type ProbeContract } from './probe-contract.js';
import type { Handlers } from '../../../src/kernel/contract/define.js';

probeBehaviour(['local']);

function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('local binding, in-process specifics', () => {
  it('refuses to bind a contract with an operation that has no handler', () => {
    const { count: _dropped, ...partial } = probeHandlers(new ProbeRecorder());
    expect(() => createLocalBinding(probeContract, partial as Handlers<ProbeContract>)).toThrow(/no handler for operation "count"/);
  });

  it('logs an unknown failure with its cause for the operator, while the caller only sees internal', async () => {
    const { logger, lines } = capturedLogger();
    const port = createLocalBinding(probeContract, probeHandlers(new ProbeRecorder()), { logger });
    const err = await errorOf(runWithContext({ requestId: 'req-log' }, () => port.crash({})));
    expect(err.message).not.toContain('hunter2');
    const entry = lines.find((l) => l.msg === 'operation failed');
    expect(entry).toMatchObject({ module: 'probe', operation: 'crash', level: 50 });
    expect(JSON.stringify(entry)).toContain('hunter2');
  });

  it('logs which fields an answer outside the contract got wrong', async () => {
    const { logger, lines } = capturedLogger();
    const port = createLocalBinding(probeContract, probeHandlers(new ProbeRecorder()), { logger });
    await errorOf(port.broken({}));
    const entry = lines.find((l) => l.msg === 'output violates contract');
    expect(entry?.issues).toEqual([expect.objectContaining({ path: 'count' })]);
  });

  it('reports down when the health probe throws', async () => {
    const port = createLocalBinding(probeContract, probeHandlers(new ProbeRecorder()), {
      health: () => {
        throw new Error('redis gone');
      },
    });
    await expect(port.$health()).resolves.toEqual({ status: 'down', detail: 'redis gone' });
  });

  it('records each call in the operation metrics with its outcome', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const port = createLocalBinding(probeContract, probeHandlers(new ProbeRecorder()), { metrics });
    await port.echo({ text: 'a' });
    await errorOf(port.find({ id: 'x' }));
    const text = await metrics.registry.getSingleMetricAsString('autobot_operation_duration_seconds');
    expect(text).toMatch(/_count\{module="probe",operation="echo",binding="local",outcome="ok"\} 1/);
    expect(text).toMatch(/_count\{module="probe",operation="find",binding="local",outcome="not_found"\} 1/);
  });
});

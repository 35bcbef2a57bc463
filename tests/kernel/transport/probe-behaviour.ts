// The one behaviour table of a port, run against the local binding (local-binding.test.ts) and the HTTP
// binding (http-binding.test.ts). If a row passes on one and fails on the other, a module would behave
// differently once lifted into its own process: that is the bug these rows exist to catch.
import { expect, it, vi } from 'vitest';
import { withContext } from '../../../src/kernel/context/request-context.js';
import { isContractError, type ContractError } from '../../../src/kernel/contract/errors.js';
import { describeOverBindings, type BindingKind } from '../../support/describe-over-bindings.js';
import { probeContract, probeHandlers, ProbeRecorder, STREAM_IDLE_TIMEOUT_MS } from './probe-contract.js';

/** The contract error a call fails with (and a failed assertion when it does not fail). */
export async function errorOf(work: Promise<unknown> | (() => Promise<unknown>)): Promise<ContractError> {
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (err) {
    if (isContractError(err)) return err;
    throw new Error(`expected a contract error, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected the call to fail, it succeeded');
}

/** Reads a stream to its end or its error, keeping the chunks that came before the error. */
export async function collect<T>(source: AsyncIterable<T>): Promise<{ items: T[]; error?: ContractError }> {
  const items: T[] = [];
  try {
    for await (const item of source) items.push(item);
    return { items };
  } catch (err) {
    if (!isContractError(err)) throw new Error(`stream failed with a non-contract error: ${String(err)}`, { cause: err });
    return { items, error: err };
  }
}

export function probeBehaviour(kinds: readonly BindingKind[]): void {
  describeOverBindings(
    'probe contract',
    probeContract,
    () => {
      const rec = new ProbeRecorder();
      return { handlers: probeHandlers(rec), fixture: rec, health: () => ({ status: 'degraded', detail: 'probe is tired' }) };
    },
    (subject) => {
      it('answers with the handler output, defaults of the input schema applied', async () => {
        const { port } = subject();
        await expect(port.echo({ text: 'ab', repeat: 2 })).resolves.toEqual({ text: 'abab' });
        await expect(port.echo({ text: 'x' })).resolves.toEqual({ text: 'x' });
      });

      it('refuses bad input with invalid_input naming the field, and never calls the handler', async () => {
        const { port, fixture } = subject();
        const tooMany = await errorOf(port.echo({ text: 'a', repeat: 9 }));
        expect(tooMany.code).toBe('invalid_input');
        expect(tooMany.message).toContain('repeat');
        expect(tooMany.details).toEqual([expect.objectContaining({ path: 'repeat' })]);

        const missing = await errorOf(port.echo({} as { text: string }));
        expect(missing.code).toBe('invalid_input');
        expect(missing.details).toEqual([expect.objectContaining({ path: 'text' })]);
        expect(fixture.calls.echo).toBeUndefined();
      });

      it('passes a contract error (not_found) through with its code and message, not retryable', async () => {
        const { port, fixture } = subject();
        const err = await errorOf(port.find({ id: '42' }));
        expect(err.code).toBe('not_found');
        expect(err.message).toBe('no probe 42');
        expect(err.retryable).toBe(false);
        // An answer is not a failure of the transport: even an idempotent call is not repeated.
        expect(fixture.calls.find).toBe(1);
      });

      it('turns a plain thrown Error into internal without leaking its message', async () => {
        const { port } = subject();
        const err = await errorOf(port.crash({}));
        expect(err.code).toBe('internal');
        expect(err.message).not.toContain('hunter2');
      });

      it('turns an answer outside the output schema into internal', async () => {
        const { port, fixture } = subject();
        const err = await errorOf(port.broken({}));
        expect(err.code).toBe('internal');
        expect(fixture.calls.broken).toBe(1);
      });

      it('times out at the operation deadline and aborts the handler through its signal', async () => {
        const { port, fixture } = subject();
        const err = await errorOf(port.slow({ ms: 60_000 }));
        expect(err.code).toBe('timeout');
        expect(err.retryable).toBe(true);
        await vi.waitFor(() => expect(fixture.aborted).toBe(1));
      });

      it('gives the handler the tighter deadline of the caller context', async () => {
        const { port, fixture } = subject();
        const deadline = Date.now() + 5_000; // tighter than whoami's default 10 s
        const seen = await withContext({ deadline }, () => port.whoami({}));
        expect(seen.deadline).toBe(deadline);
        expect(fixture.contexts[0]?.deadline).toBe(deadline);
      });

      it("uses the operation's own timeout when the caller context allows longer", async () => {
        const { port } = subject();
        const before = Date.now();
        const seen = await withContext({ deadline: before + 3_600_000 }, () => port.whoami({}));
        const after = Date.now();
        expect(seen.deadline).toBeGreaterThanOrEqual(before + 10_000);
        expect(seen.deadline).toBeLessThanOrEqual(after + 10_000);
      });

      it('a tight caller deadline times a slow call out and aborts the handler', async () => {
        const { port, fixture } = subject();
        const err = await errorOf(withContext({ deadline: Date.now() + 100 }, () => port.slow({ ms: 60_000 })));
        expect(err.code).toBe('timeout');
        await vi.waitFor(() => expect(fixture.aborted).toBe(1));
      });

      it('fails with timeout, without calling the handler, when the deadline has already passed', async () => {
        const { port, fixture } = subject();
        const err = await errorOf(withContext({ deadline: Date.now() - 1 }, () => port.echo({ text: 'late' })));
        expect(err.code).toBe('timeout');
        expect(fixture.calls.echo).toBeUndefined();
      });

      it('carries request id, actor and idempotency key into the handler context', async () => {
        const { port } = subject();
        const actor = { type: 'user' as const, id: 'u-1', username: 'ann', roles: ['admin'] };
        const seen = await withContext({ requestId: 'req-123', actor, idempotencyKey: 'saga-9:save' }, () => port.whoami({}));
        expect(seen).toMatchObject({ requestId: 'req-123', actor, idempotencyKey: 'saga-9:save' });

        const service = { type: 'service' as const, name: 'saga-orchestrator' };
        await expect(withContext({ requestId: 'req-456', actor: service }, () => port.whoami({}))).resolves.toMatchObject({
          requestId: 'req-456',
          actor: service,
        });
      });

      it('reports the module health', async () => {
        const { port } = subject();
        await expect(port.$health()).resolves.toEqual({ status: 'degraded', detail: 'probe is tired' });
      });

      it('streams every chunk, then ends and closes the producer', async () => {
        const { port, fixture } = subject();
        const { items, error } = await collect(port.count({ n: 5 }));
        expect(error).toBeUndefined();
        expect(items).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
        await vi.waitFor(() => expect(fixture.producersClosed).toBe(1));
      });

      it('refuses bad stream input with invalid_input before anything is produced', async () => {
        const { port, fixture } = subject();
        const { items, error } = await collect(port.count({ n: -1 }));
        expect(items).toEqual([]);
        expect(error?.code).toBe('invalid_input');
        expect(error?.details).toEqual([expect.objectContaining({ path: 'n' })]);
        expect(fixture.calls.count).toBeUndefined();
      });

      it('delivers the chunks before a mid-stream contract error, then the error with its code', async () => {
        const { port } = subject();
        const { items, error } = await collect(port.count({ n: 5, failAt: 2 }));
        expect(items).toEqual([{ i: 0 }, { i: 1 }]);
        expect(error?.code).toBe('conflict');
        expect(error?.message).toBe('conflict at 2');
      });

      it('turns a plain Error mid-stream into internal', async () => {
        const { port } = subject();
        const { items, error } = await collect(port.count({ n: 5, crashAt: 2 }));
        expect(items).toEqual([{ i: 0 }, { i: 1 }]);
        expect(error?.code).toBe('internal');
        expect(error?.message).not.toContain('exploded');
      });

      it('validates every chunk: one outside the chunk schema ends the stream with internal', async () => {
        const { port } = subject();
        const { items, error } = await collect(port.count({ n: 5, badAt: 2 }));
        expect(items).toEqual([{ i: 0 }, { i: 1 }]);
        expect(error?.code).toBe('internal');
      });

      it('times out a stream that stops producing, and aborts and closes the producer', async () => {
        const { port, fixture } = subject();
        const { items, error } = await collect(port.count({ n: 5, stallAt: 1 }));
        expect(items).toEqual([{ i: 0 }]);
        expect(error?.code).toBe('timeout');
        await vi.waitFor(() => expect(fixture.aborted).toBe(1));
        await vi.waitFor(() => expect(fixture.producersClosed).toBe(1));
      });

      it('lets a stream outlast its idle timeout as long as chunks keep coming', async () => {
        const { port } = subject();
        // About twice the idle timeout in total, with gaps far below it: only the gaps are bounded.
        const gapMs = 40;
        const n = Math.ceil((2 * STREAM_IDLE_TIMEOUT_MS) / gapMs);
        const { items, error } = await collect(port.count({ n, gapMs }));
        expect(error).toBeUndefined();
        expect(items).toHaveLength(n);
      });

      it('closes the producer when the consumer stops reading early', async () => {
        const { port, fixture } = subject();
        const seen: number[] = [];
        for await (const { i } of port.count({ n: 100_000, gapMs: 2 })) {
          seen.push(i);
          if (i === 2) break;
        }
        expect(seen).toEqual([0, 1, 2]);
        await vi.waitFor(() => expect(fixture.producersClosed).toBe(1));
        const producedAtClose = fixture.produced;
        await new Promise((r) => setTimeout(r, 50));
        expect(fixture.produced).toBe(producedAtClose);
        expect(fixture.produced).toBeLessThan(100_000);
      });
    },
    { kinds },
  );
}

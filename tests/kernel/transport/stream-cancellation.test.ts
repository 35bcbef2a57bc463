// Stopping a call reaches the producer at once, on both bindings: a consumer's return() while a chunk
// is still awaited, or the caller's signal (the request context's `signal`) aborting. Over HTTP the
// client closes the request and the RPC server aborts the handler's signal when it sees the connection
// close. Before this, a stop was only noticed at the producer's next chunk or at the idle timeout
// (STREAM_IDLE_TIMEOUT_MS), which is what every "before the idle timeout" below rules out.
import { afterEach, describe, expect, it } from 'vitest';
import { withContext } from '../../../src/kernel/context/request-context.js';
import { isContractError } from '../../../src/kernel/contract/errors.js';
import { bindPort, BINDING_KINDS, type BindingKind } from '../../support/describe-over-bindings.js';
import { probeContract, probeHandlers, ProbeRecorder, SLOW_TIMEOUT_MS, STREAM_IDLE_TIMEOUT_MS } from './probe-contract.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function bound(kind: BindingKind) {
  const rec = new ProbeRecorder();
  const subject = await bindPort(kind, probeContract, { handlers: probeHandlers(rec), fixture: rec });
  cleanups.push(() => subject.close());
  return { rec, port: subject.port };
}

/** Resolves with the milliseconds until `cond` holds (polling), or rejects after `ms`. */
async function within(ms: number, cond: () => boolean): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return Date.now() - start;
}

for (const kind of BINDING_KINDS) {
  describe(`stream cancellation [${kind} binding]`, () => {
    it('return() while the next chunk is awaited stops the producer at once and ends the stream', async () => {
      const { rec, port } = await bound(kind);
      const it = port.count({ n: 10, stallAt: 2 })[Symbol.asyncIterator]();
      expect((await it.next()).value).toEqual({ i: 0 });
      expect((await it.next()).value).toEqual({ i: 1 });
      const pending = it.next(); // the producer stalls here until its signal aborts
      await new Promise((r) => setTimeout(r, 20));
      const stoppedAt = Date.now();
      await expect(it.return!()).resolves.toEqual({ done: true, value: undefined });
      await expect(pending).resolves.toEqual({ done: true, value: undefined });
      const waited = await within(STREAM_IDLE_TIMEOUT_MS - 50, () => rec.aborted === 1);
      expect(Date.now() - stoppedAt).toBeLessThan(STREAM_IDLE_TIMEOUT_MS);
      expect(waited).toBeLessThan(STREAM_IDLE_TIMEOUT_MS);
      expect(rec.produced).toBe(2);
      await within(1_000, () => rec.producersClosed === 1);
      // Iterating a stopped stream answers done, not an error.
      await expect(it.next()).resolves.toEqual({ done: true, value: undefined });
    });

    it('a stop after the stream was read (break on the last chunk, or a late abort) is harmless', async () => {
      // Over HTTP this once destroyed a finished response with an error nobody listened to: an uncaught
      // exception that vitest reports (and that kills a server process).
      const { port } = await bound(kind);
      const got: unknown[] = [];
      for (let round = 0; round < 3; round++) {
        const early = new AbortController();
        await withContext({ signal: early.signal }, async () => {
          for await (const c of port.count({ n: 3 })) {
            got.push(c);
            if ((c as { i: number }).i === 2) break;
          }
        });
        early.abort();
        const late = new AbortController();
        await withContext({ signal: late.signal }, async () => {
          for await (const c of port.count({ n: 3 })) got.push(c);
        });
        late.abort();
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(got).toHaveLength(18);
      // The binding still works after all that.
      const again: unknown[] = [];
      for await (const c of port.count({ n: 2 })) again.push(c);
      expect(again).toEqual([{ i: 0 }, { i: 1 }]);
    });

    it("the caller's signal aborting fails the pending chunk and stops the producer at once", async () => {
      const { rec, port } = await bound(kind);
      const ac = new AbortController();
      const it = withContext({ signal: ac.signal }, () => {
        const i = port.count({ n: 10, stallAt: 1 })[Symbol.asyncIterator]();
        return { i, first: i.next() };
      });
      expect((await it.first).value).toEqual({ i: 0 });
      const pending = it.i.next();
      await new Promise((r) => setTimeout(r, 20));
      ac.abort();
      const err: unknown = await pending.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isContractError(err) && err.details).toEqual({ cancelled: true });
      await within(STREAM_IDLE_TIMEOUT_MS - 50, () => rec.aborted === 1);
    });

    it('a stream already aborted before it starts runs nothing remote-side and fails as cancelled', async () => {
      const { rec, port } = await bound(kind);
      const ac = new AbortController();
      ac.abort();
      const it = withContext({ signal: ac.signal }, () => port.count({ n: 3 })[Symbol.asyncIterator]());
      const err: unknown = await withContext({ signal: ac.signal }, () => it.next()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isContractError(err) && err.details).toEqual({ cancelled: true });
      expect(rec.produced).toBe(0);
    });

    it("a unary call's handler sees its signal abort when the caller's signal aborts", async () => {
      const { rec, port } = await bound(kind);
      const ac = new AbortController();
      const call = withContext({ signal: ac.signal }, () => port.slow({ ms: SLOW_TIMEOUT_MS * 10 }));
      const settled = call.then(
        (v) => ({ v }),
        (e: unknown) => ({ e }),
      );
      await within(1_000, () => rec.calls.slow === 1);
      ac.abort();
      // The handler notices long before the operation's own timeout would have aborted it.
      const waited = await within(SLOW_TIMEOUT_MS - 50, () => rec.aborted === 1);
      expect(waited).toBeLessThan(SLOW_TIMEOUT_MS);
      await settled;
    });
  });
}

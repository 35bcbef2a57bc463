// The terminal module's contract over the local and the HTTP binding, on a real AutoBot (real Redis,
// real BullMQ for approval expiry, real processes): commands run without a shell, the security corpora
// (metacharacters never interpreted, workspace escapes refused), the approval flows, timeouts that kill
// the whole process group, capped output, the environment, the audit trail and owner scoping.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import { configModule } from '../../../src/modules/config/module.js';
import { configContract } from '../../../src/modules/config/contract.js';
import { healthModule } from '../../../src/modules/health/module.js';
import { terminalContract } from '../../../src/modules/terminal/contract.js';
import { terminalModule } from '../../../src/modules/terminal/module.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { adminActor, userActor } from '../../support/test-auth.js';

type UserActor = Extract<Actor, { type: 'user' }>;
type Execution = Awaited<ReturnType<Port<typeof terminalContract>['execute']>>;

const alice = userActor as UserActor;
const admin = adminActor as UserActor;
const bob: UserActor = { type: 'user', id: 'u-bob', username: 'bob', roles: ['user'] };
const carol: UserActor = { type: 'user', id: 'u-carol', username: 'carol', roles: ['user'] };
const TTL_S = 3;
const MAX_OUTPUT = 4096;
const SECRET = `secret-${randomUUID()}`;

async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string; details?: unknown }> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err: err as { code: string; message: string; details?: unknown } }),
  );
  if (outcome.ok) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value)}`);
  return outcome.err;
}

const fields = (err: { details?: unknown }) => ((err.details ?? []) as { path: string }[]).map((d) => d.path);

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.each(bindingKinds)('terminal contract (%s binding)', (kind) => {
  let redis: TestRedis;
  let app: TestApp;
  let terminal: Port<typeof terminalContract>;
  const as = <T>(actor: Actor, fn: () => Promise<T>, idempotencyKey?: string): Promise<T> =>
    runWithContext({ requestId: randomUUID(), actor, ...(idempotencyKey ? { idempotencyKey } : {}) }, fn);
  const run = (actor: UserActor, command: string, extra: { cwd?: string; timeoutMs?: number; approvalId?: string } = {}) =>
    as(actor, () => terminal.execute({ command, ...extra }));
  const workspaceOf = (actor: UserActor) => path.join(app.dataDir, 'terminal', 'workspaces', actor.id);
  const finished = (actor: UserActor, id: string) =>
    until(`execution ${id} to finish`, async () => {
      const e = await as(actor, () => terminal.getExecution({ id }));
      return e.status === 'running' || e.status === 'pending_approval' ? undefined : e;
    });

  beforeAll(async () => {
    process.env.AUTOBOT_TEST_SECRET = SECRET;
    redis = await startTestRedis();
    app = await startTestApp({ redisUrl: redis.url, catalogue: [configModule, healthModule, terminalModule] });
    terminal = portFor(kind, app, terminalContract);
    const config = portFor(kind, app, configContract);
    await as(admin, () =>
      config.updateSettings({ changes: { terminal: { approvalTtlS: TTL_S, maxOutputBytes: MAX_OUTPUT, policy: { user: 'safe', admin: 'high' } } } }),
    );
    // The module reloads its settings on config.settings.changed: wait until the admin policy shows.
    await until('settings to apply', async () =>
      (await as(admin, () => terminal.classify({ command: 'sh -c true' }))).needsApproval ? undefined : true,
    );
  });
  afterAll(async () => {
    delete process.env.AUTOBOT_TEST_SECRET;
    await app?.stop();
    await redis?.stop();
  });

  describe('running without a shell', () => {
    it('runs a safe command in the caller workspace and answers its output', async () => {
      const e = await run(alice, 'echo hello   world');
      expect(e).toMatchObject({ command: 'echo hello   world', cwd: '.', risk: 'safe', status: 'completed', exitCode: 0, stdout: 'hello world\n', truncated: false });
      expect(e.durationMs).toBeGreaterThanOrEqual(0);
      const pwd = await run(alice, 'pwd');
      expect(pwd.stdout!.trim()).toBe(workspaceOf(alice));
      expect(await as(alice, () => terminal.getExecution({ id: e.id }))).toEqual(e);
    });

    it('composes pipelines itself', async () => {
      const e = await run(alice, "printf 'b\\na\\nc\\n' | sort | head -n 2");
      expect(e).toMatchObject({ status: 'completed', stdout: 'a\nb\n' });
    });

    it('reports a failing command and a program that does not exist', async () => {
      expect(await run(alice, 'ls no-such-file')).toMatchObject({ status: 'failed', exitCode: 2 });
      const cd = await run(alice, 'cd /tmp');
      expect(cd).toMatchObject({ status: 'failed', exitCode: 127 });
      expect(cd.stderr).toMatch(/command not found.*without a shell/);
    });

    it('names the field of a bad input', async () => {
      for (const [input, field] of [
        [{ command: '' }, 'command'],
        [{ command: 'echo a; echo b' }, 'command'],
        [{ command: 'echo a > out' }, 'command'],
        [{ command: 'echo ok', timeoutMs: 10 }, 'timeoutMs'],
        [{ command: 'echo ok', timeoutMs: 400_000 }, 'timeoutMs'],
      ] as const) {
        const err = await refusal(as(alice, () => terminal.execute(input as { command: string })));
        expect(err.code).toBe('invalid_input');
        expect(fields(err)).toEqual([field]);
      }
    });

    it('never interprets shell metacharacters: a corpus of injection attempts', async () => {
      const ws = workspaceOf(alice);
      // Each entry either reaches printf literally (one argument per line), or is refused outright, or
      // (a real pipe into a program above the policy) is held for approval without running.
      const corpus: [string, string[] | 'refused' | 'held'][] = [
        ['printf "%s\\n" "a; touch pwned-1"', ['a; touch pwned-1']],
        ['printf "%s\\n" a; touch pwned-2', 'refused'],
        ['printf "%s\\n" a && touch pwned-3', 'refused'],
        ['printf "%s\\n" a || touch pwned-4', 'refused'],
        ['printf "%s\\n" a | touch pwned-5', 'held'],
        ['printf "%s\\n" $(touch pwned-6)', 'refused'],
        ['printf "%s\\n" "$(touch pwned-7)"', ['$(touch pwned-7)']],
        ["printf '%s\\n' '$(touch pwned-8)'", ['$(touch pwned-8)']],
        ['printf "%s\\n" `touch pwned-9`', ['`touch', 'pwned-9`']],
        ['printf "%s\\n" "`touch pwned-10`"', ['`touch pwned-10`']],
        ['printf "%s\\n" a\ntouch pwned-11', 'refused'],
        ['printf "%s\\n" "a\ntouch pwned-12"', ['a', 'touch pwned-12']],
        ['printf "%s\\n" a\\\ntouch pwned-13', 'refused'],
        ['printf "%s\\n" a & touch pwned-14', 'refused'],
        ['printf "%s\\n" a > pwned-15', 'refused'],
        ['printf "%s\\n" a >> pwned-16', 'refused'],
        ['printf "%s\\n" a 2> pwned-17', 'refused'],
        ['printf "%s\\n" <(touch pwned-18)', 'refused'],
        ['printf "%s\\n" $HOME ${HOME} "$HOME" $PATH', ['$HOME', '${HOME}', '$HOME', '$PATH']],
        ['printf "%s\\n" ~ ~/x ~root', ['~', '~/x', '~root']],
        ['printf "%s\\n" * ?.txt [a-z]*', ['*', '?.txt', '[a-z]*']],
        ['printf "%s\\n" {a,b} {1..3}', ['{a,b}', '{1..3}']],
        ['printf "%s\\n" a#b # touch pwned-19', ['a#b', '#', 'touch', 'pwned-19']],
        ['printf "%s\\n" -- --help -rf', ['--', '--help', '-rf']],
        ['printf "%s\\n" "--output=/etc/x" "-o/etc/x"', ['--output=/etc/x', '-o/etc/x']],
        ['printf "%s\\n" \\; \\| \\& \\> \\$x', [';', '|', '&', '>', '$x']],
        ["printf '%s\\n' 'it'\"'\"'s'", ["it's"]],
        ['printf "%s\\n" $\'\\x41\'', ["$\\x41"]],
        ['printf "%s\\n" "$((1+1))" "$IFS"', ['$((1+1))', '$IFS']],
        ['printf "%s\\n" !! !$', ['!!', '!$']],
      ];
      let literal = 0;
      let refused = 0;
      for (const [command, expected] of corpus) {
        if (expected === 'held') {
          // A pipe into touch is a real pipeline: touch is moderate, so the user's 'safe' policy holds it.
          const e = await run(alice, command);
          expect(e.status, command).toBe('pending_approval');
          refused++;
          continue;
        }
        if (expected === 'refused') {
          const err = await refusal(run(alice, command));
          expect(err.code, command).toBe('invalid_input');
          expect(fields(err), command).toEqual(['command']);
          refused++;
          continue;
        }
        const e = await run(alice, command);
        expect({ command, status: e.status, reason: e.reason, lines: e.stdout?.split('\n').slice(0, -1) }).toEqual({ command, status: 'completed', reason: e.reason, lines: expected });
        literal++;
      }
      expect(literal + refused).toBe(corpus.length);
      expect(corpus.length).toBeGreaterThanOrEqual(30);
      // Nothing in the corpus created a file.
      expect(readdirSync(ws).filter((f) => f.startsWith('pwned'))).toEqual([]);
    });

    it('gives commands an environment without AutoBot secrets', async () => {
      expect(process.env.AUTOBOT_TEST_SECRET).toBe(SECRET);
      const e = await run(alice, 'printenv');
      const names = e.stdout!.trim().split('\n').map((l) => l.split('=')[0]).sort();
      expect(names).toEqual(['HOME', 'LANG', 'LC_ALL', 'PATH', 'PWD', 'TERM', 'TMPDIR']);
      expect(e.stdout).not.toContain(SECRET);
      expect(e.stdout).toContain(`HOME=${workspaceOf(alice)}`);
    });

    it('caps output and says so', async () => {
      const e = await run(alice, 'seq 1 100000');
      expect(e).toMatchObject({ status: 'completed', exitCode: 0, truncated: true });
      expect(Buffer.byteLength(e.stdout!)).toBe(MAX_OUTPUT);
      expect(e.stdout!.startsWith('1\n2\n3\n')).toBe(true);
    });

    it('kills the whole process group on timeout', async () => {
      // The admin's policy is 'high' here, so a shell runs without approval; it leaves a background child.
      const e = await run(admin, "sh -c 'sleep 300 & echo $! > bg.pid; wait'", { timeoutMs: 1000 });
      expect(e).toMatchObject({ status: 'timed_out', signal: 'SIGKILL' });
      const pid = Number(readFileSync(path.join(workspaceOf(admin), 'bg.pid'), 'utf8'));
      expect(pid).toBeGreaterThan(0);
      await until('the background child to be gone', async () => {
        try {
          process.kill(pid, 0);
          return undefined;
        } catch {
          return true;
        }
      }, 3000);
    });

    it('runs a command once per idempotency key (a resumed saga step)', async () => {
      const key = `saga-${randomUUID()}:tool`;
      const first = await as(admin, () => terminal.execute({ command: 'mkdir once-only' }), key);
      const second = await as(admin, () => terminal.execute({ command: 'mkdir once-only' }), key);
      expect(first.status).toBe('completed');
      // mkdir of an existing directory fails: the same answer proves it did not run again.
      expect(second).toEqual(first);
      const third = await as(admin, () => terminal.execute({ command: 'mkdir once-only' }));
      expect(third.status).toBe('failed');
    });
  });

  describe('workspace', () => {
    it('refuses escapes: a corpus of paths leading out of the workspace', async () => {
      const ws = workspaceOf(bob);
      await run(bob, 'pwd'); // creates the workspace
      symlinkSync('/etc', path.join(ws, 'etc-link'));
      mkdirSync(path.join(ws, 'sub'));
      const outside = path.join(app.dataDir, `outside-${randomUUID()}`);
      const reads = ['cat /etc/hostname', 'cat ../../../../etc/hostname', 'cat etc-link/hostname', 'ls ..', `ls ${app.dataDir}`, 'head sub/../../u-user/bg.pid', 'grep -r root /etc/passwd', 'cat -- /etc/hostname', 'grep -f/etc/passwd x'];
      const writes = [`touch ${outside}`, `mkdir ../escape-${randomUUID()}`, 'touch etc-link/pwned', `cp sub ${outside}`, `curl -o ${outside} http://127.0.0.1:1/`, `curl --output=${outside} http://127.0.0.1:1/`, `tee ${outside}`, `sort -o ${outside} x`, 'touch -- ../escape', `curl -so ${outside} http://127.0.0.1:1/`];
      for (const command of reads) {
        const e = await run(bob, command);
        // Reading outside is high: it waits for the user's decision instead of running.
        expect({ command, risk: e.risk, status: e.status }).toEqual({ command, risk: 'high', status: 'pending_approval' });
        expect(e.reason).toMatch(/outside the workspace/);
        expect(e.stdout).toBeUndefined();
      }
      for (const command of writes) {
        const e = await run(bob, command);
        expect({ command, risk: e.risk, status: e.status }).toEqual({ command, risk: 'forbidden', status: 'denied' });
        expect(e.reason).toMatch(/writes outside the workspace/);
      }
      for (const cwd of ['..', '../u-user', '/etc', 'etc-link', path.dirname(ws)]) {
        const err = await refusal(run(bob, 'ls', { cwd }));
        expect({ cwd, code: err.code, fields: fields(err) }).toEqual({ cwd, code: 'forbidden', fields: ['cwd'] });
      }
      expect(reads.length + writes.length + 5).toBeGreaterThanOrEqual(20);
      expect(existsSync(outside)).toBe(false);
      // Inside: a working directory of its own, relative paths judged from it.
      expect(await run(bob, 'cat ../etc-link/hostname', { cwd: 'sub' })).toMatchObject({ risk: 'high', status: 'pending_approval' });
      expect(await run(bob, 'pwd', { cwd: 'sub' })).toMatchObject({ cwd: 'sub', stdout: `${ws}/sub\n` });
      expect(fields(await refusal(run(bob, 'ls', { cwd: 'missing' })))).toEqual(['cwd']);
    });
  });

  describe('approvals', () => {
    it('holds a command above the policy, lists it, and runs it once the owner approves', async () => {
      const held = await run(carol, 'mkdir approved-dir');
      expect(held).toMatchObject({ risk: 'moderate', status: 'pending_approval' });
      expect(held.approvalId).toBeTruthy();
      expect(existsSync(path.join(workspaceOf(carol), 'approved-dir'))).toBe(false);
      const { items } = await as(carol, () => terminal.listApprovals({}));
      expect(items.map((a) => a.id)).toContain(held.approvalId);
      expect(items.find((a) => a.id === held.approvalId)).toMatchObject({ command: 'mkdir approved-dir', risk: 'moderate', status: 'pending', needsAdmin: false, executionId: held.id });

      // Not another user's to see or decide.
      expect((await refusal(as(bob, () => terminal.getApproval({ id: held.approvalId! })))).code).toBe('not_found');
      expect((await refusal(as(bob, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: true })))).code).toBe('not_found');
      expect((await refusal(as(bob, () => terminal.getExecution({ id: held.id })))).code).toBe('not_found');

      const decided = await as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: true }));
      expect(decided.approval).toMatchObject({ status: 'approved', decidedBy: carol.id });
      const done = await finished(carol, held.id);
      expect(done).toMatchObject({ status: 'completed', exitCode: 0, approvalId: held.approvalId });
      expect(existsSync(path.join(workspaceOf(carol), 'approved-dir'))).toBe(true);
      // Decided once: a second decision is a conflict, and it no longer waits.
      expect((await refusal(as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: false })))).code).toBe('conflict');
      expect((await as(carol, () => terminal.listApprovals({}))).items.map((a) => a.id)).not.toContain(held.approvalId);
    });

    it('denies: the command never runs', async () => {
      const held = await run(carol, 'mkdir denied-dir');
      const decided = await as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: false }));
      expect(decided.approval.status).toBe('denied');
      expect(decided.execution).toMatchObject({ id: held.id, status: 'denied' });
      expect(await as(carol, () => terminal.getExecution({ id: held.id }))).toMatchObject({ status: 'denied' });
      expect(existsSync(path.join(workspaceOf(carol), 'denied-dir'))).toBe(false);
    });

    it('needs an admin for a critical command; admins see those waiting for them', async () => {
      await run(carol, 'pwd'); // the workspace exists from the first command on
      writeFileSync(path.join(workspaceOf(carol), 'in.bin'), 'payload');
      const held = await run(carol, 'dd if=in.bin of=out.bin');
      expect(held).toMatchObject({ risk: 'critical', status: 'pending_approval' });
      const own = await as(carol, () => terminal.getApproval({ id: held.approvalId! }));
      expect(own.needsAdmin).toBe(true);
      expect((await refusal(as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: true })))).code).toBe('forbidden');
      // Another plain user sees nothing of it; an admin finds it in the list.
      expect((await as(bob, () => terminal.listApprovals({}))).items.map((a) => a.id)).not.toContain(held.approvalId);
      const adminList = await as(admin, () => terminal.listApprovals({}));
      expect(adminList.items.find((a) => a.id === held.approvalId)).toMatchObject({ ownerId: carol.id, ownerName: 'carol', risk: 'critical' });
      await as(admin, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: true }));
      expect(await finished(carol, held.id)).toMatchObject({ status: 'completed' });
      expect(readFileSync(path.join(workspaceOf(carol), 'out.bin'), 'utf8')).toBe('payload');
      // The owner may still withdraw a critical request of their own.
      const withdrawn = await run(carol, 'dd if=in.bin of=again.bin');
      const denied = await as(carol, () => terminal.decideApproval({ approvalId: withdrawn.approvalId!, approve: false }));
      expect(denied.execution).toMatchObject({ status: 'denied' });
      expect(existsSync(path.join(workspaceOf(carol), 'again.bin'))).toBe(false);
    });

    it('takes exactly one of two racing decisions, and runs the command once', async () => {
      const held = await run(carol, 'mkdir raced');
      const outcomes = await Promise.allSettled([
        as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: true })),
        as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: true })),
        as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: false })),
      ]);
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const o of outcomes) if (o.status === 'rejected') expect((o.reason as { code: string }).code).toBe('conflict');
      const status = (won[0] as PromiseFulfilledResult<{ approval: { status: string } }>).value.approval.status;
      const done = await finished(carol, held.id);
      expect(done.status).toBe(status === 'approved' ? 'completed' : 'denied');
    });

    it('never runs a forbidden command, whoever asks', async () => {
      for (const actor of [carol, admin]) {
        const e = await run(actor, 'rm -rf /');
        expect(e).toMatchObject({ risk: 'forbidden', status: 'denied' });
        expect(e.approvalId).toBeUndefined();
      }
    });

    it('expires an undecided approval: denied, and the owner can no longer approve it', async () => {
      const held = await run(carol, 'mkdir late-dir');
      const expired = await until(
        'the approval to expire',
        async () => {
          // Read without touching the approval: the delayed job must expire it by itself.
          const e = await as(carol, () => terminal.getExecution({ id: held.id }));
          return e.status === 'denied' ? e : undefined;
        },
        (TTL_S + 5) * 1000,
      );
      expect(expired.reason).toMatch(/expired/);
      expect((await as(carol, () => terminal.getApproval({ id: held.approvalId! }))).status).toBe('expired');
      expect((await refusal(as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: true })))).code).toBe('conflict');
      expect(existsSync(path.join(workspaceOf(carol), 'late-dir'))).toBe(false);
    });

    it('remembers an approval for the same command of the same user', async () => {
      const held = await run(carol, 'mkdir -p remembered');
      await as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: true, remember: true }));
      await finished(carol, held.id);
      const again = await run(carol, 'mkdir -p remembered');
      expect(again).toMatchObject({ status: 'completed', risk: 'moderate' });
      expect(again.approvalId).toBeUndefined();
      expect((await as(carol, () => terminal.classify({ command: 'mkdir -p remembered' }))).needsApproval).toBe(false);
      // Only that command, only that user.
      expect((await run(carol, 'mkdir -p other')).status).toBe('pending_approval');
      expect((await run(bob, 'mkdir -p remembered')).status).toBe('pending_approval');
    });

    it('gates any module action: requestApproval, then one execution with the approval', async () => {
      const req = await as(carol, () => terminal.requestApproval({ command: 'touch tool-file' }));
      expect(req).toMatchObject({ decision: 'pending', risk: 'moderate' });
      // Not before the decision.
      expect((await refusal(run(carol, 'touch tool-file', { approvalId: req.approvalId! }))).code).toBe('conflict');
      await as(carol, () => terminal.decideApproval({ approvalId: req.approvalId!, approve: true }));
      expect((await refusal(run(carol, 'touch other-file', { approvalId: req.approvalId! }))).code).toBe('conflict');
      const ran = await run(carol, 'touch tool-file', { approvalId: req.approvalId! });
      expect(ran).toMatchObject({ status: 'completed', approvalId: req.approvalId });
      expect((await refusal(run(carol, 'touch tool-file', { approvalId: req.approvalId! }))).message).toMatch(/used already/);
      expect((await as(carol, () => terminal.getApproval({ id: req.approvalId! }))).usedAt).toBeTruthy();

      // Within the policy: allowed at once; forbidden: refused; actions classified by their module.
      expect(await as(carol, () => terminal.requestApproval({ command: 'ls' }))).toMatchObject({ decision: 'allowed', risk: 'safe' });
      expect(await as(carol, () => terminal.requestApproval({ command: 'touch ../x' }))).toMatchObject({ decision: 'refused', risk: 'forbidden' });
      const action = await as(carol, () => terminal.requestApproval({ action: 'fetch https://example.com', risk: 'high', reason: 'reads a web page' }));
      expect(action).toMatchObject({ decision: 'pending', risk: 'high' });
      // One approval per idempotency key (a resumed tool call asks again).
      const key = `saga-${randomUUID()}:generate:call-1`;
      const a1 = await as(carol, () => terminal.requestApproval({ command: 'mkdir k' }), key);
      const a2 = await as(carol, () => terminal.requestApproval({ command: 'mkdir k' }), key);
      expect(a2.approvalId).toBe(a1.approvalId);
      const bad = await refusal(as(carol, () => terminal.requestApproval({ action: 'x' })));
      expect(bad.code).toBe('invalid_input');
    });

    it('binds an idempotency key only to an approval it created, and answers a repeated execute with what the first one ran', async () => {
      // Within the policy: nothing is bound, so the same key asks again later (a resumed tool call).
      const key = `saga-${randomUUID()}:generate:call-2`;
      expect(await as(carol, () => terminal.requestApproval({ command: 'ls' }), key)).toMatchObject({ decision: 'allowed' });
      expect(await as(carol, () => terminal.requestApproval({ command: 'ls' }), key)).toMatchObject({ decision: 'allowed' });
      // Approved, run once under a key; the same call again (the approval now spent) answers that execution.
      const runKey = `saga-${randomUUID()}:generate:call-3`;
      const req = await as(carol, () => terminal.requestApproval({ command: 'tee -a once.txt' }), runKey);
      await as(carol, () => terminal.decideApproval({ approvalId: req.approvalId!, approve: true }));
      expect(await as(carol, () => terminal.requestApproval({ command: 'tee -a once.txt' }), runKey)).toMatchObject({ decision: 'allowed', approvalId: req.approvalId });
      const first = await as(carol, () => terminal.execute({ command: 'tee -a once.txt', approvalId: req.approvalId! }), runKey);
      const again = await as(carol, () => terminal.execute({ command: 'tee -a once.txt', approvalId: req.approvalId! }), runKey);
      expect(first.status).toBe('completed');
      expect(again).toEqual(first);
    });

    it('reads a workspace file for the tool loop, capped, and refuses paths leading outside', async () => {
      const ws = workspaceOf(carol);
      writeFileSync(path.join(ws, 'notes.md'), 'line one\nline two\n');
      writeFileSync(path.join(ws, 'big.txt'), 'x'.repeat(MAX_OUTPUT + 100));
      writeFileSync(path.join(ws, 'blob.bin'), Buffer.from([1, 0, 2]));
      symlinkSync('/etc/hostname', path.join(ws, 'host-link'));
      expect(await as(carol, () => terminal.readWorkspaceFile({ path: 'notes.md' }))).toEqual({ path: 'notes.md', size: 18, content: 'line one\nline two\n', truncated: false, binary: false });
      const big = await as(carol, () => terminal.readWorkspaceFile({ path: './big.txt' }));
      expect(big).toMatchObject({ path: 'big.txt', size: MAX_OUTPUT + 100, truncated: true });
      expect(big.content).toHaveLength(MAX_OUTPUT);
      expect((await as(carol, () => terminal.readWorkspaceFile({ path: 'notes.md', maxBytes: 4 }))).content).toBe('line');
      expect(await as(carol, () => terminal.readWorkspaceFile({ path: 'blob.bin' }))).toMatchObject({ binary: true, content: '' });
      for (const escape of ['../other/x', '/etc/passwd', 'host-link', `../${bob.id}/notes.md`]) {
        expect((await refusal(as(carol, () => terminal.readWorkspaceFile({ path: escape })))).code, escape).toBe('forbidden');
      }
      expect((await refusal(as(carol, () => terminal.readWorkspaceFile({ path: 'missing.txt' })))).code).toBe('not_found');
      expect((await refusal(as(carol, () => terminal.readWorkspaceFile({ path: '.' })))).code).toBe('invalid_input');
      // Another user's workspace holds no such file for them.
      expect((await refusal(as(bob, () => terminal.readWorkspaceFile({ path: 'notes.md' })))).code).toBe('not_found');
    });
  });

  describe('audit', () => {
    it('records executions and decisions for admins, newest first, paged', async () => {
      const held = await run(carol, 'mkdir audited');
      await as(admin, () => terminal.listAudit({ limit: 1 })); // admins may read
      await as(carol, () => terminal.decideApproval({ approvalId: held.approvalId!, approve: true }));
      await finished(carol, held.id);
      expect((await refusal(as(carol, () => terminal.listAudit({ limit: 10 })))).code).toBe('forbidden');

      // Approvals left undecided by earlier tests expire meanwhile and are audited too: look by ids.
      const recent = await as(admin, () => terminal.listAudit({ limit: 50 }));
      const mine = recent.items.filter((i) => i.executionId === held.id);
      expect(mine.map((i) => [i.kind, i.decision])).toEqual([
        ['execution', 'approved'],
        ['decision', 'approved'],
        ['execution', 'pending_approval'],
      ]);
      expect(mine[0]).toMatchObject({ actorId: carol.id, ownerId: carol.id, command: 'mkdir audited', risk: 'moderate', approver: carol.id, status: 'completed', exitCode: 0 });
      expect(mine[0]!.durationMs).toBeGreaterThanOrEqual(0);
      expect(mine[1]).toMatchObject({ actorId: carol.id, approver: carol.id, approvalId: held.approvalId });
      expect(mine[2]).toMatchObject({ actorId: carol.id, status: 'pending_approval', approvalId: held.approvalId });
      expect(recent.items.map((i) => i.at)).toEqual([...recent.items.map((i) => i.at)].sort().reverse());

      // Pages follow each other without overlap.
      const first = await as(admin, () => terminal.listAudit({ limit: 3 }));
      expect(first.items).toHaveLength(3);
      const second = await as(admin, () => terminal.listAudit({ limit: 3, cursor: first.nextCursor! }));
      expect(second.items).toHaveLength(3);
      expect(second.items.some((i) => first.items.some((f) => f.id === i.id))).toBe(false);

      // Refusals are audited too.
      await run(carol, 'rm -rf /');
      const latest = await as(admin, () => terminal.listAudit({ limit: 10 }));
      expect(latest.items.find((i) => i.command === 'rm -rf /' && i.ownerId === carol.id)).toMatchObject({ risk: 'forbidden', decision: 'refused', status: 'denied' });
      expect(fields(await refusal(as(admin, () => terminal.listAudit({ limit: 1, cursor: 'nope' }))))).toEqual(['cursor']);
    });
  });
});

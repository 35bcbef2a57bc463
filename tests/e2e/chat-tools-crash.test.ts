// The tool loop survives kill -9: the model asks to run a command that appends a line to a file in the
// user's workspace; the user approves it, it runs, and halfway through the model's next round the
// process is killed (SIGKILL). A new process resumes the turn from the saga's journal and the tool
// loop's own journal: the command is not run again (the file has one line, the audit one execution),
// its result reaches the model in the resumed round, and the final answer keeps the tool call with it.
// Also: a call parked on its approval when the process dies waits on the same approval after it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { chatProcesses } from '../support/chat-processes.js';
import { ADMIN_TOKEN, userActor } from '../support/test-auth.js';
import { until } from '../modules/messages/chat-app.js';

const COMMAND = 'echo ran | tee -a log.txt';
const processes = chatProcesses();
const start = () => processes.start();
const call = processes.call.bind(processes);

interface Msg {
  id: string;
  role: string;
  status: string;
  content: string;
  toolCalls?: { id: string; tool: string; status: string; result?: { exitCode?: number; stdout?: string; executionId?: string } }[];
}

describe('tool loop after kill -9', () => {
  it('resumes the loop: the command ran exactly once and its result is in the final answer', async () => {
    const log = path.join(processes.dataDir, 'terminal', 'workspaces', (userActor as { id: string }).id, 'log.txt');
    processes.fake.scriptNext(
      { tokens: ['Appending.'], toolCalls: [{ name: 'run_command', arguments: { command: COMMAND } }] },
      // The next round starts and never ends: the process dies in the middle of it.
      { tokens: ['Half'], hang: 'after' },
      { tokens: ['All', ' done.'] },
    );
    const first = await start();
    const chat = (await call<{ id: string }>(first, 'POST', '/chats', { title: 'tools crash' })).body;
    const sent = await call<{ assistantMessageId: string; turnId: string }>(first, 'POST', '/messages', { chatId: chat.id, content: 'append a line to log.txt' });
    expect(sent.status).toBe(202);

    // `tee` writes a file: above a user's policy (safe), so it waits for the owner's approval.
    const approval = await until('the approval', async () => (await call<{ items: { id: string; command: string; risk: string }[] }>(first, 'GET', '/terminal/approvals')).body.items[0]);
    expect(approval).toMatchObject({ command: COMMAND, risk: 'moderate' });
    expect((await call(first, 'POST', `/terminal/approvals/${approval.id}`, { approve: true })).status).toBe(200);
    // The command ran and the model is answering the next round (it had the result): its text is saved.
    await until('the second round under way', async () =>
      (await call<{ items: Msg[] }>(first, 'GET', `/messages/${chat.id}`)).body.items.some((m) => m.content === 'Appending.\n\nHalf'),
    );
    expect(readFileSync(log, 'utf8')).toBe('ran\n');
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await start();
    const transcript = async () => (await call<{ items: Msg[] }>(second, 'GET', `/messages/${chat.id}`)).body.items;
    const answer = await until(
      'the answer final',
      async () => {
        const a = (await transcript()).find((m) => m.id === sent.body.assistantMessageId);
        return a && a.status !== 'streaming' ? a : undefined;
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${second.output().slice(-3000)}`);
    });
    // The round cut short by the crash is dropped: the answer goes on from the last journaled round.
    expect(answer).toMatchObject({ status: 'complete', content: 'Appending.\n\nAll done.' });
    expect(answer.toolCalls).toHaveLength(1);
    expect(answer.toolCalls![0]).toMatchObject({ id: 'call_1_1', tool: 'run_command', status: 'completed', result: { exitCode: 0, stdout: 'ran\n' } });
    // Exactly once: one line, one execution of it in the audit trail.
    expect(readFileSync(log, 'utf8')).toBe('ran\n');
    const audit = (await call<{ items: { kind: string; command: string; executionId?: string }[] }>(second, 'GET', '/terminal/audit?limit=200', undefined, ADMIN_TOKEN)).body.items;
    const runs = audit.filter((e) => e.kind === 'execution' && e.command === COMMAND);
    expect(runs.map((e) => e.executionId)).toEqual([answer.toolCalls![0]!.result!.executionId]);
    // The resumed round was asked once, with the journaled result as the tool message.
    const chats = processes.fake.chats();
    expect(chats).toHaveLength(3);
    const resumed = chats[2]!.body!.messages as { role: string; content: string; tool_name?: string }[];
    expect(resumed.at(-1)).toMatchObject({ role: 'tool', tool_name: 'run_command' });
    expect(JSON.parse(resumed.at(-1)!.content)).toMatchObject({ status: 'completed', exitCode: 0, stdout: 'ran\n' });
    // The chat takes the next message.
    processes.fake.script({ tokens: ['still', ' here'] });
    const next = await call<{ assistantMessageId: string }>(second, 'POST', '/messages', { chatId: chat.id, content: 'there?' });
    expect(next.status).toBe(202);
    await until('next answer', async () => (await transcript()).find((m) => m.id === next.body.assistantMessageId && m.status === 'complete'));
  }, 90_000);

  it('resumes a call that was waiting for its approval: the approval given after the restart runs it once', async () => {
    const command = 'echo parked | tee -a parked.txt';
    const file = path.join(processes.dataDir, 'terminal', 'workspaces', (userActor as { id: string }).id, 'parked.txt');
    processes.fake.script({});
    processes.fake.scriptNext({ tokens: [], toolCalls: [{ name: 'run_command', arguments: { command } }] }, { tokens: ['Parked', ' and', ' done.'] });
    const before = processes.fake.chats().length;
    const first = await start();
    const chat = (await call<{ id: string }>(first, 'POST', '/chats', { title: 'parked' })).body;
    const sent = await call<{ assistantMessageId: string }>(first, 'POST', '/messages', { chatId: chat.id, content: 'park it' });
    const approval = await until('the approval', async () => (await call<{ items: { id: string; command: string }[] }>(first, 'GET', '/terminal/approvals')).body.items.find((a) => a.command === command));
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await start();
    // The resumed loop waits on the same approval (one per call key), not a new one.
    await until('the loop resumed', async () => {
      const items = (await call<{ items: { id: string }[] }>(second, 'GET', '/terminal/approvals')).body.items;
      return items.length === 1 && items[0]!.id === approval.id;
    });
    expect((await call(second, 'POST', `/terminal/approvals/${approval.id}`, { approve: true })).status).toBe(200);
    const answer = await until(
      'the answer final',
      async () => (await call<{ items: Msg[] }>(second, 'GET', `/messages/${chat.id}`)).body.items.find((m) => m.id === sent.body.assistantMessageId && m.status !== 'streaming'),
      30_000,
    );
    expect(answer).toMatchObject({ status: 'complete', content: 'Parked and done.' });
    expect(answer.toolCalls![0]).toMatchObject({ status: 'completed', result: { stdout: 'parked\n' } });
    expect(readFileSync(file, 'utf8')).toBe('parked\n');
    expect(processes.fake.chats().length - before).toBe(2);
  }, 90_000);
});

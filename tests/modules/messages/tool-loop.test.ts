// The tool loop resumed from its journal, with the real ports of a running app: the case a kill -9
// cannot aim at, a command that terminal ran under the call's key while the loop's own journal still
// says `running` (the process died between the two writes). The resumed loop asks terminal again under
// the same key, gets that execution back, and the command does not run a second time; a call whose
// result is journaled is not asked for at all; the model then gets both results.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runWithContext } from '../../../src/kernel/context/request-context.js';
import { browserContract } from '../../../src/modules/browser/contract.js';
import { llmContract } from '../../../src/modules/llm/contract.js';
import { messagesSettings } from '../../../src/modules/messages/contract.js';
import { ApprovalWaits } from '../../../src/modules/messages/approval-waits.js';
import { ToolJournal } from '../../../src/modules/messages/tool-journal.js';
import { AnswerState, ToolLoop } from '../../../src/modules/messages/tool-loop.js';
import { ToolRunner } from '../../../src/modules/messages/tools.js';
import { searchContract } from '../../../src/modules/search/contract.js';
import { terminalContract } from '../../../src/modules/terminal/contract.js';
import type { TestApp } from '../../support/app.js';
import type { FakeOllama } from '../../support/fake-ollama.js';
import { adminActor } from '../../support/test-auth.js';
import { chatAppSuite } from './chat-app.js';

let fake: FakeOllama;
let app: TestApp;

chatAppSuite((s) => ({ fake, app } = s));

describe('tool loop resumed from its journal', () => {
  it('gets a command that ran before the crash back from terminal under its key, and reuses journaled results', async () => {
    const turnId = `t_${randomUUID()}`;
    const stepKey = `${turnId}:generate`;
    const admin = <T>(fn: () => Promise<T>, idempotencyKey?: string) => runWithContext({ requestId: randomUUID(), actor: adminActor, ...(idempotencyKey ? { idempotencyKey } : {}) }, fn);
    const terminal = app.runtime.port(terminalContract);
    const journal = new ToolJournal(app.runtime.redisConnections().forModule('messages', 4));
    const command = 'echo once | tee -a once.txt';
    // Before the crash: round 1 journaled with two calls; the first finished and journaled, the second
    // ran in terminal under its key, but its end never reached the loop's journal.
    await journal.addRound(stepKey, {
      text: 'Working.',
      content: 'Working.',
      seq: 1,
      promptTokens: 10,
      completionTokens: 1,
      calls: [
        { id: 'call_1_1', tool: 'read_file', arguments: { path: 'nowhere.txt' } },
        { id: 'call_1_2', tool: 'run_command', arguments: { command } },
      ],
    });
    await journal.saveCall(`${stepKey}:call_1_1`, { status: 'completed', result: { path: 'nowhere.txt', content: 'journaled before the crash' } });
    await journal.saveCall(`${stepKey}:call_1_2`, { status: 'running' });
    const ran = await admin(() => terminal.execute({ command }), `${stepKey}:call_1_2`);
    expect(ran).toMatchObject({ status: 'completed', stdout: 'once\n' });
    const file = path.join(app.dataDir, 'terminal', 'workspaces', (adminActor as { id: string }).id, 'once.txt');
    expect(readFileSync(file, 'utf8')).toBe('once\n');

    fake.script({ tokens: [' Finished.'] });
    const state = new AnswerState();
    const events: { event: string; data: unknown }[] = [];
    const loop = new ToolLoop(
      {
        llm: app.runtime.port(llmContract),
        runner: new ToolRunner({ terminal, browser: app.runtime.port(browserContract), search: app.runtime.port(searchContract) }, new ApprovalWaits(terminal)),
        journal,
        settings: messagesSettings.parse({}),
        turn: { turnId, chatId: 'c_x', assistantMessageId: 'm_x', assistantCreatedAt: new Date().toISOString(), titleNeeded: false, sse: false, useKnowledge: false },
        stepKey,
        signal: new AbortController().signal,
        onDelta: () => undefined,
        onRestore: () => undefined,
        emit: (event, data) => events.push({ event, data }),
      },
      state,
    );
    await admin(() => loop.run(null, [{ role: 'user', content: 'do both' }], true, true));

    expect(readFileSync(file, 'utf8')).toBe('once\n');
    expect(state.text).toBe('Working.\n\n Finished.');
    expect(state.toolCalls).toMatchObject([
      { id: 'call_1_1', status: 'completed', result: { content: 'journaled before the crash' } },
      { id: 'call_1_2', status: 'completed', result: { executionId: ran.id, stdout: 'once\n' } },
    ]);
    expect(await journal.call(`${stepKey}:call_1_2`)).toMatchObject({ status: 'completed', result: { executionId: ran.id } });
    // The model was asked once, with the round and both results.
    const asked = fake.chats().at(-1)!.body!.messages as { role: string; content: string; tool_name?: string }[];
    expect(asked.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'tool']);
    expect(JSON.parse(asked[2]!.content)).toMatchObject({ content: 'journaled before the crash' });
    expect(JSON.parse(asked[3]!.content)).toMatchObject({ status: 'completed', executionId: ran.id });
  });
});

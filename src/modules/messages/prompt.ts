// The prompt of a turn: the chat's system prompt (or the default), then as much of the recent history as
// fits the model's context window, newest kept first, always ending with the message being answered.
// Replaced answers, failed answers and the answer being written are left out. In a chat with knowledge
// the system prompt carries the retrieved sources, numbered, and how to cite them.
import type { RetrievedSource } from '../search/contract.js';

export interface PromptMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface PromptBudget {
  contextTokens: number;
  replyReserveTokens: number;
  charsPerToken: number;
}

export const CITE_INSTRUCTION =
  'Use the numbered sources below, taken from the user’s documents and notes, where they help answer. ' +
  'After each statement taken from a source, cite it by its number in square brackets, like [1] or [2][3]. ' +
  'Cite only sources you used. If the sources do not hold the answer, say so before answering otherwise.';

/** The system prompt with the sources after it: a chunk as `[n] title › headings` and its text, a fact as `[n] fact` (its own title). */
export function withSources(system: string, sources: readonly RetrievedSource[]): string {
  if (!sources.length) return system;
  const listed = sources.map((src) =>
    src.sourceType === 'fact' ? `[${src.n}] ${src.text}` : `[${src.n}] ${[src.title, ...(src.headingPath ?? [])].join(' › ')}\n${src.text}`,
  );
  return `${system}\n\n${CITE_INSTRUCTION}\n\nSources:\n\n${listed.join('\n\n')}`;
}

/** A rough token count: characters over a ratio, plus the chat template's few tokens per message. */
export function estimateTokens(text: string, charsPerToken: number): number {
  return Math.ceil(text.length / charsPerToken) + 4;
}

/**
 * The prompt from `newestFirst`, the messages a prompt can use (history's `recentForPrompt`: final user
 * and assistant messages with text, not replaced), kept newest first until the budget is spent. Answers
 * the prompt, or undefined when not even the newest user message fits.
 */
export function buildPrompt(
  systemPrompt: string,
  newestFirst: Iterable<{ role: 'user' | 'assistant'; content: string }>,
  budget: PromptBudget,
): { messages: PromptMessage[]; omitted: number } | undefined {
  let left = budget.contextTokens - budget.replyReserveTokens - estimateTokens(systemPrompt, budget.charsPerToken);
  const kept: PromptMessage[] = [];
  let omitted = 0;
  for (const m of newestFirst) {
    // The newest usable message is the one being answered: a user message. Anything newer is not
    // part of this turn (an answer still being written never comes back).
    if (kept.length === 0 && m.role !== 'user') continue;
    const cost = estimateTokens(m.content, budget.charsPerToken);
    if (cost > left) {
      if (kept.length === 0) return undefined;
      // Older messages are left out; stop reading the transcript.
      omitted += 1;
      break;
    }
    left -= cost;
    kept.push({ role: m.role, content: m.content });
  }
  if (kept.length === 0) return undefined;
  kept.reverse();
  // Starting with an assistant answer whose question fell out of the window confuses models.
  while (kept.length > 1 && kept[0]!.role === 'assistant') {
    kept.shift();
    omitted += 1;
  }
  return { messages: [{ role: 'system', content: systemPrompt }, ...kept], omitted };
}

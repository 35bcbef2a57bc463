// Conversation analytics from stored messages: a turn is an assistant answer; its response time is the
// generation's duration as the provider measured it (time to first token included).
import type { StoredMessage } from './message-store.js';

function percentile(sorted: number[], p: number): number | null {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round = (n: number | null) => (n === null ? null : Math.round(n * 10) / 10);

export function analytics(scope: 'own' | 'all', fromMs: number, toMs: number, msgs: StoredMessage[]) {
  const days = new Map<string, { turns: number; messages: number }>();
  for (let t = fromMs; t <= toMs + 86_400_000; t += 86_400_000) {
    const d = new Date(Math.min(t, toMs)).toISOString().slice(0, 10);
    days.set(d, { turns: 0, messages: 0 });
  }
  const outcomes = { complete: 0, stopped: 0, failed: 0 };
  const durations: number[] = [];
  const ttfts: number[] = [];
  const models = new Map<string, number>();
  let prompt = 0;
  let completion = 0;
  let turns = 0;
  for (const m of msgs) {
    const day = days.get(m.createdAt.slice(0, 10));
    if (day) day.messages += 1;
    if (m.role !== 'assistant' || m.status === 'streaming') continue;
    turns += 1;
    if (day) day.turns += 1;
    outcomes[m.status] += 1;
    if (m.model) models.set(m.model, (models.get(m.model) ?? 0) + 1);
    if (m.usage) {
      durations.push(m.usage.durationMs);
      ttfts.push(m.usage.timeToFirstTokenMs);
      prompt += m.usage.promptTokens;
      completion += m.usage.completionTokens;
    }
  }
  durations.sort((a, b) => a - b);
  const avg = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return {
    scope,
    from: new Date(fromMs).toISOString(),
    to: new Date(toMs).toISOString(),
    days: [...days.entries()].map(([date, v]) => ({ date, ...v })),
    messages: msgs.length,
    turns,
    outcomes,
    averageResponseMs: round(avg(durations)),
    p95ResponseMs: round(percentile(durations, 95)),
    averageTimeToFirstTokenMs: round(avg(ttfts)),
    tokens: { prompt, completion },
    models: [...models.entries()].sort((a, b) => b[1] - a[1]).map(([model, n]) => ({ model, turns: n })),
  };
}

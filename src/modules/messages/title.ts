// A new chat's title: what the model proposes, cleaned (one line, no quotes or "Title:" label, not too
// long), or the start of the first message when the model cannot say.
export function cleanTitle(raw: string, maxChars: number): string | null {
  let t = raw.replace(/<think>[\s\S]*?<\/think>/gi, '').trim().split('\n').find((l) => l.trim()) ?? '';
  t = t.replace(/^\s*(title|chat title)\s*:\s*/i, '').replace(/^[#*\s"'“”‘’`]+|[*\s"'“”‘’`.]+$/g, '').replace(/\s+/g, ' ').trim();
  if (!t) return null;
  return shorten(t, maxChars);
}

export function titleFromMessage(content: string, maxChars: number): string {
  const firstLine = content.split('\n').find((l) => l.trim()) ?? content;
  return shorten(firstLine.replace(/\s+/g, ' ').trim(), maxChars) || 'New chat';
}

function shorten(t: string, maxChars: number): string {
  if (t.length <= maxChars) return t;
  const cut = t.slice(0, maxChars - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > maxChars / 2 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

export const TITLE_INSTRUCTION =
  'You name conversations. Reply with a short title (at most six words) for a conversation that begins with the user message below. Reply with the title only: no quotes, no punctuation at the end.';

// A chat transcript as a Markdown document: a heading with the chat's details, then one section per
// message. Replaced answers are kept and labelled, as the history keeps them.
import type { ChatView } from '../chats/contract.js';
import type { MessageView } from './contract.js';

const ROLE: Record<MessageView['role'], string> = { user: 'You', assistant: 'Assistant', tool: 'Tool', system: 'System' };

export function renderMarkdown(chat: ChatView, messages: MessageView[], exportedAt: string): string {
  const lines: string[] = [`# ${chat.title ?? 'Untitled chat'}`, ''];
  lines.push(`- Chat: \`${chat.id}\``, `- Created: ${chat.createdAt}`, `- Exported: ${exportedAt}`);
  if (chat.model) lines.push(`- Model: ${chat.model}`);
  lines.push(`- Messages: ${messages.length}`, '');
  for (const m of messages) {
    const notes: string[] = [m.createdAt];
    if (m.model) notes.push(m.model);
    if (m.status !== 'complete') notes.push(m.status);
    if (m.supersededBy) notes.push('replaced by a newer answer');
    lines.push(`## ${ROLE[m.role]}`, '', `_${notes.join(' · ')}_`, '', m.content || '_(no text)_', '');
    if (m.error) lines.push(`> Error: ${m.error}`, '');
  }
  return lines.join('\n');
}

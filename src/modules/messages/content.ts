// What a user may send: control characters other than newline and tab are removed (carriage returns
// too: CRLF becomes LF), empty after that is `invalid_input`, longer than the setting is
// `payload_too_large`.
import { ContractError } from '../../kernel/contract/errors.js';

// C0 controls except \t and \n, DEL, C1 controls, and the Unicode line/paragraph separators that some
// clients paste in and that break line-based rendering.
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u2028\u2029]/g;

export function cleanContent(raw: string, maxChars: number): string {
  const cleaned = raw.replace(/\r\n?/g, '\n').replace(CONTROL, '');
  if (!cleaned.trim()) {
    throw new ContractError('invalid_input', 'Invalid input: content: the message is empty', [{ path: 'content', message: 'empty after removing control characters' }]);
  }
  if (cleaned.length > maxChars) {
    throw new ContractError('payload_too_large', `the message is longer than ${maxChars} characters`, [{ path: 'content', message: `at most ${maxChars} characters` }]);
  }
  return cleaned;
}

// User text -> the argv of each pipeline stage, with shell quoting rules (shell-quote) but none of a
// shell's interpretation: no variables, no `~`, no globs, no braces, no comments, no command
// substitution. Pipes are composed by the runner; every other operator (sequences, background,
// redirections, subshells) is refused with a message saying why.
import { parse, type ParseEntry } from 'shell-quote';

export type Pipeline = string[][];

export class CommandRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandRefused';
  }
}

export const MAX_STAGES = 8;

const REDIRECTIONS = new Set(['>', '>>', '<', '<<', '<<<', '<<-', '>&', '<&', '&>', '&>>', '>|', '<>']);

/**
 * shell-quote expands `$VAR` (to '' without an environment) and starts a comment at any unquoted `#`.
 * To keep both literal, a backslash is put before every `$` and `#` that is not inside single quotes
 * (where shell-quote already keeps them); inside double quotes `\$` also reads as a literal `$`.
 * Also finds unquoted newlines: a shell would run each line as its own command.
 */
function literalise(command: string): string {
  let out = '';
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      out += c;
    } else if (c === '\\') {
      // An escaped character stays as it is (an escaped newline is a line continuation in a shell: refused
      // below like any unquoted newline).
      const next = command[i + 1];
      if (next === undefined) throw new CommandRefused('the command ends with a lone backslash');
      if (next === '\n' && !quote) throw new CommandRefused('one command per request: line breaks outside quotes are not run as separate commands');
      out += c + next;
      i++;
    } else if (c === '$' || (c === '#' && !quote)) {
      out += `\\${c}`;
    } else if (c === '\n' && !quote) {
      throw new CommandRefused('one command per request: line breaks outside quotes are not run as separate commands');
    } else {
      if (c === '"') quote = quote === '"' ? undefined : '"';
      else if (c === "'" && !quote) quote = "'";
      out += c;
    }
  }
  if (quote) throw new CommandRefused(`unterminated ${quote === '"' ? 'double' : 'single'} quote`);
  return out;
}

export function parseCommand(command: string): Pipeline {
  let entries: ParseEntry[];
  try {
    entries = parse(literalise(command));
  } catch (err) {
    if (err instanceof CommandRefused) throw err;
    throw new CommandRefused(`cannot parse the command: ${(err as Error).message}`);
  }
  const stages: Pipeline = [[]];
  for (const e of entries) {
    if (typeof e === 'string') {
      stages[stages.length - 1]!.push(e);
    } else if ('comment' in e) {
      // Unreachable after literalise (every unquoted # is escaped); kept literal if shell-quote changes.
      stages[stages.length - 1]!.push(`#${e.comment}`);
    } else if (e.op === 'glob') {
      // Globs are not expanded: the pattern reaches the program as typed.
      stages[stages.length - 1]!.push(e.pattern);
    } else if (e.op === '|') {
      if (stages[stages.length - 1]!.length === 0) throw new CommandRefused('a pipe needs a command on both sides');
      stages.push([]);
    } else if (REDIRECTIONS.has(e.op)) {
      throw new CommandRefused(
        `redirections (${e.op}) are not supported: commands run without a shell. Write files with a program that takes a path (for example \`tee out.txt\`), read them by naming them as arguments`,
      );
    } else if (e.op === '(' || e.op === ')' || e.op === '<(' || e.op === '>(') {
      throw new CommandRefused(`subshells and command substitution (${e.op}) are not supported: commands run without a shell`);
    } else {
      throw new CommandRefused(`"${e.op}" is not supported: one command (or one pipeline with |) per request, run without a shell`);
    }
  }
  if (stages[stages.length - 1]!.length === 0) {
    throw new CommandRefused(stages.length > 1 ? 'a pipe needs a command on both sides' : 'the command is empty');
  }
  if (stages.length > MAX_STAGES) throw new CommandRefused(`a pipeline may have at most ${MAX_STAGES} stages`);
  return stages;
}

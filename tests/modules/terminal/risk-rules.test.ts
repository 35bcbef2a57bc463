// The risk classes of the examples and of the rules behind them, judged on a real directory
// tree (a workspace with a symlink leading out of it), and the parser's refusals.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandRefused, parseCommand } from '../../../src/modules/terminal/command-parser.js';
import { classifyCommand } from '../../../src/modules/terminal/risk-rules.js';

let root: string;
let workspace: string;

beforeAll(() => {
  root = realpathSync(mkdtempSync(path.join(tmpdir(), 'abt-')));
  workspace = path.join(root, 'ws');
  mkdirSync(path.join(workspace, 'sub'), { recursive: true });
  symlinkSync('/etc', path.join(workspace, 'etc-link'));
  symlinkSync(root, path.join(workspace, 'parent-link'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const classify = (command: string, cwd = workspace) => classifyCommand(command, { workspace, cwd });

describe('risk classes', () => {
  const table: [string, string][] = [
    // The examples.
    ['ls', 'safe'],
    ['mkdir build', 'moderate'],
    ['rm notes.txt', 'high'],
    ['curl https://example.com', 'high'],
    ['sudo ls', 'critical'],
    ['dd if=a of=b', 'critical'],
    ['mkfs.ext4 disk.img', 'critical'],
    [':(){ :|:& };:', 'forbidden'],
    ['bomb(){ bomb|bomb& };bomb', 'forbidden'],
    ['rm -rf /', 'forbidden'],
    ['rm -fr /*', 'forbidden'],
    ['rm -r -f /usr', 'forbidden'],
    ['rm --no-preserve-root -rf sub', 'forbidden'],
    // Launchers and interpreters are at least high, and what they launch counts.
    ['sh -c ls', 'high'],
    ['bash -c "rm -rf /"', 'forbidden'],
    ['env ls', 'high'],
    ['env FOO=1 sudo ls', 'critical'],
    ['xargs rm', 'high'],
    ['find . -exec rm {} \\;', 'high'],
    ['find . -name "*.txt"', 'safe'],
    ['find . -delete', 'high'],
    ['python3 -c "print(1)"', 'high'],
    ['node -e 1', 'high'],
    ['awk 1 notes.txt', 'high'],
    ['sed -n 1p notes.txt', 'high'],
    ['sed --sandbox -n 1p notes.txt', 'safe'],
    ['timeout 5 sleep 1', 'high'],
    ['nice -n 5 sudo ls', 'critical'],
    ['env -C /tmp touch x', 'forbidden'],
    ['env --chdir=sub touch x', 'high'],
    ['time -o /tmp/t ls', 'forbidden'],
    ['xargs -a /etc/passwd echo', 'high'],
    ['flock /tmp/lock ls', 'forbidden'],
    ['tar --to-command=sh -xf a.tar', 'high'],
    ['rg --pre ./x pattern', 'high'],
    ['git status', 'high'],
    ['./run.sh', 'high'],
    ['some-unknown-program', 'high'],
    // Paths leading outside the workspace: reading is high, writing is refused.
    ['cat /etc/passwd', 'high'],
    ['cat ../../etc/passwd', 'high'],
    ['cat etc-link/passwd', 'high'],
    ['ls parent-link', 'high'],
    ['cp /etc/hosts sub/', 'high'],
    ['touch ../escape', 'forbidden'],
    ['touch etc-link/x', 'forbidden'],
    ['mkdir parent-link/x', 'forbidden'],
    ['cp notes.txt /tmp/x', 'forbidden'],
    ['curl -o /tmp/x https://example.com', 'forbidden'],
    ['curl --output=/tmp/x https://example.com', 'forbidden'],
    ['curl -so /tmp/x https://example.com', 'forbidden'],
    ['curl -so/tmp/x https://example.com', 'forbidden'],
    ['curl -sSLo notes.txt https://example.com', 'high'],
    ['rsync -a sub/ /tmp/backup', 'forbidden'],
    ['tar -xzf /tmp/a.tgz', 'high'],
    ['tar -czf /tmp/a.tgz sub', 'forbidden'],
    ['tar -czf a.tgz /etc', 'high'],
    ['tar -xf a.tar -C /tmp', 'forbidden'],
    ['tar -xf a.tar etc/passwd', 'moderate'],
    ['tar cf /tmp/a.tar sub', 'forbidden'],
    ['git clone https://example.com/r.git /tmp/r', 'forbidden'],
    ['git clone https://example.com/r.git r', 'high'],
    ['sort --output=/tmp/x notes.txt', 'forbidden'],
    ['tee /etc/motd', 'forbidden'],
    ['chmod -R 777 /', 'forbidden'],
    ['sh -c "echo x > /etc/motd"', 'forbidden'],
    // Inside the workspace.
    ['cat sub/../notes.txt', 'safe'],
    ['ls -la sub', 'safe'],
    ['mkdir -p sub/a/b', 'moderate'],
    ['cp notes.txt sub/copy.txt', 'moderate'],
    ['cat notes.txt | grep x | wc -l', 'safe'],
    ['cat notes.txt | sh', 'high'],
    ['echo /etc/passwd', 'safe'],
  ];
  it.each(table)('%s is %s', (command, risk) => {
    const c = classify(command);
    expect(c.risk).toBe(risk);
    expect(c.reason.length).toBeGreaterThan(0);
  });

  it('names why, rule by rule', () => {
    const c = classify('cat /etc/passwd');
    expect(c.reason).toContain('outside the workspace');
    expect(c.findings.map((f) => f.risk)).toEqual(['high', 'safe']);
    expect(classify('rm -rf /').reason).toMatch(/system directory/);
    expect(classify('touch ../x').reason).toMatch(/writes outside the workspace/);
  });

  it('judges paths from the working directory', () => {
    expect(classify('cat ../notes.txt', path.join(workspace, 'sub')).risk).toBe('safe');
    expect(classify('cat ../../notes.txt', path.join(workspace, 'sub')).risk).toBe('high');
  });
});

describe('parsing without a shell', () => {
  it('keeps variables, ~, globs, braces, comments and backticks literal', () => {
    expect(parseCommand(`printf %s $HOME "\${USER}" '$PATH' ~ *.txt {a,b} a#b # c \`id\``)).toEqual([
      ['printf', '%s', '$HOME', '${USER}', '$PATH', '~', '*.txt', '{a,b}', 'a#b', '#', 'c', '`id`'],
    ]);
    expect(parseCommand(`echo "\\$x" \\$y "$(id)"`)).toEqual([['echo', '$x', '$y', '$(id)']]);
    expect(parseCommand(`echo "two\nlines"`)).toEqual([['echo', 'two\nlines']]);
  });

  it('splits pipelines into stages', () => {
    expect(parseCommand('cat a | grep -v b | wc -l')).toEqual([['cat', 'a'], ['grep', '-v', 'b'], ['wc', '-l']]);
  });

  it.each([
    ['echo a; touch x', /not supported/],
    ['echo a && touch x', /not supported/],
    ['echo a || touch x', /not supported/],
    ['sleep 1 &', /not supported/],
    ['echo $(id)', /substitution/],
    ['echo a > out', /redirections/],
    ['cat < in', /redirections/],
    ['echo a 2>&1', /redirections/],
    ['echo a\ntouch x', /one command per request/],
    ['echo a |', /both sides/],
    ['| wc', /both sides/],
    ['echo "unterminated', /unterminated/],
  ])('refuses %j', (command, message) => {
    expect(() => parseCommand(command)).toThrow(CommandRefused);
    expect(() => parseCommand(command)).toThrow(message);
  });
});

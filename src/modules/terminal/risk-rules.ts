// The risk class of a command, from rules over its program, its arguments and the paths they lead to.
// Unknown programs are `high`: what a program does cannot be judged from its name, so the default is
// a human's look. Anything that runs other code (shells, interpreters, launchers, programs whose
// options or repository configuration run programs) is at least `high`; a path leading outside the
// workspace is at least `high`, and a write there is `forbidden`.
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { parse, type ParseEntry } from 'shell-quote';
import type { RiskClass } from './contract.js';
import { parseCommand, type Pipeline } from './command-parser.js';
import { isInside, realTarget } from './workspace.js';

export interface Finding {
  risk: RiskClass;
  reason: string;
}

export interface Classification {
  risk: RiskClass;
  reason: string;
  findings: Finding[];
  pipeline: Pipeline;
}

export interface ClassifyContext {
  /** Real path of the caller's workspace. */
  workspace: string;
  /** Real path of the working directory (inside the workspace). */
  cwd: string;
}

const RANK: Record<RiskClass, number> = { safe: 0, moderate: 1, high: 2, critical: 3, forbidden: 4 };
export const riskRank = (r: RiskClass) => RANK[r];
export const atMost = (r: RiskClass, limit: RiskClass) => RANK[r] <= RANK[limit];

/** The only directories programs are looked up in (also the PATH of every command). */
export const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

type PathRole = 'read' | 'write' | 'none';

interface ProgramRule {
  risk: RiskClass;
  reason: string;
  /** How its operands are treated: paths it reads, paths it writes, or plain text. */
  operands: PathRole | 'last-writes';
}

const rule = (risk: RiskClass, reason: string, operands: ProgramRule['operands']): ProgramRule => ({ risk, reason, operands });

function table(names: string, r: ProgramRule): [string, ProgramRule][] {
  return names.split(/\s+/).filter(Boolean).map((n) => [n, r]);
}

const PROGRAMS = new Map<string, ProgramRule>([
  ...table('echo printf seq sleep true false yes expr test [ date whoami id uname basename dirname printenv which nproc uptime free arch logname groups cal factor tty pwd hostname',
    rule('safe', 'only prints or computes', 'none')),
  ...table('ps top', rule('safe', 'lists processes', 'none')),
  ...table('ls cat head tail wc grep egrep fgrep cut tr diff cmp stat file du df tree realpath readlink md5sum sha1sum sha224sum sha256sum sha384sum sha512sum b2sum cksum base32 base64 nl tac rev column jq less more strings od hexdump comm join paste fold fmt expand unexpand',
    rule('safe', 'reads files', 'read')),
  ...table('sort rg uniq xxd', rule('safe', 'reads files', 'read')),
  ...table('mkdir touch tee truncate rmdir chmod split csplit gzip gunzip zcat bzip2 bunzip2 xz unxz zip unzip tar mv', rule('moderate', 'changes files in the workspace', 'write')),
  ...table('cp ln install', rule('moderate', 'changes files in the workspace', 'last-writes')),
  ...table('ping traceroute dig nslookup host', rule('moderate', 'sends network probes', 'none')),
  ...table('rm', rule('high', 'deletes files', 'write')),
  ...table('shred', rule('high', 'destroys file contents', 'write')),
  ...table('chown chgrp', rule('high', 'changes file ownership', 'write')),
  ...table('patch', rule('high', 'writes the files a patch names, which are not checked here', 'write')),
  ...table('kill pkill killall', rule('high', 'signals other processes', 'none')),
  ...table('curl wget ssh sftp nc ncat netcat socat telnet ftp aria2c', rule('high', 'reaches the network (data can leave or arrive)', 'read')),
  ...table('scp rsync', rule('high', 'copies files over the network', 'last-writes')),
  ...table('git', rule('high', 'runs programs its repository configuration names (hooks, core.fsmonitor, filters)', 'read')),
  ...table('make cmake ninja gcc cc g++ clang clang++ rustc cargo go javac java mvn gradle', rule('high', 'builds and runs code', 'read')),
  ...table('npm npx yarn pnpm pip pip3 pipx gem composer bundle', rule('high', 'installs packages and runs their scripts', 'read')),
  ...table('vi vim nvim emacs nano ed ex man', rule('high', 'can run other programs', 'read')),
  ...table('crontab at batch', rule('high', 'schedules commands', 'read')),
  ...table('sudo su doas pkexec runuser', rule('critical', 'runs a command as another user (privilege escalation)', 'read')),
  ...table('dd', rule('critical', 'writes raw data to files or devices', 'read')),
  ...table('fdisk sfdisk cfdisk parted gdisk mkswap swapon swapoff mount umount losetup cryptsetup wipefs',
    rule('critical', 'changes disks or filesystems', 'read')),
  ...table('shutdown reboot halt poweroff init telinit systemctl service', rule('critical', 'controls the machine or its services', 'read')),
  ...table('iptables ip6tables nft ufw ip ifconfig route', rule('critical', 'changes the network configuration', 'read')),
  ...table('useradd userdel usermod groupadd groupdel passwd chpasswd visudo adduser deluser', rule('critical', 'changes system accounts', 'read')),
  ...table('modprobe insmod rmmod sysctl kexec setcap chattr', rule('critical', 'changes the kernel or file capabilities', 'read')),
  ...table('apt apt-get dpkg yum dnf rpm pacman zypper snap flatpak brew apk', rule('critical', 'installs or removes system packages', 'read')),
  ...table('docker podman kubectl nerdctl lxc', rule('critical', 'controls containers (root-equivalent)', 'read')),
  ...table('chroot nsenter unshare', rule('critical', 'changes namespaces or the root directory', 'read')),
]);

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'fish', 'csh', 'tcsh', 'busybox', 'rbash']);
const INTERPRETERS = new Set([
  'python', 'python2', 'python3', 'node', 'nodejs', 'deno', 'bun', 'perl', 'ruby', 'irb', 'php', 'lua', 'luajit', 'tclsh', 'wish', 'Rscript', 'R',
  'awk', 'gawk', 'mawk', 'nawk', 'sed', 'osascript', 'expect', 'guile', 'racket', 'julia', 'scala', 'groovy', 'jshell', 'pwsh', 'powershell',
]);
/** Launchers: a command in front of another command. Value-taking options are named so the inner command is found. */
const LAUNCHERS: Record<string, { valueOptions: string[]; leading?: 'assignments' | 'one-operand' }> = {
  env: { valueOptions: ['-u', '--unset', '-C', '--chdir', '-S', '--split-string'], leading: 'assignments' },
  nohup: { valueOptions: [] },
  setsid: { valueOptions: [] },
  time: { valueOptions: ['-f', '--format', '-o', '--output'] },
  exec: { valueOptions: ['-a'] },
  command: { valueOptions: [] },
  builtin: { valueOptions: [] },
  nice: { valueOptions: ['-n', '--adjustment'] },
  ionice: { valueOptions: ['-c', '--class', '-n', '--classdata', '-p', '--pid'] },
  chrt: { valueOptions: [], leading: 'one-operand' },
  taskset: { valueOptions: [], leading: 'one-operand' },
  timeout: { valueOptions: ['-s', '--signal', '-k', '--kill-after'], leading: 'one-operand' },
  stdbuf: { valueOptions: ['-i', '-o', '-e', '--input', '--output', '--error'] },
  xargs: { valueOptions: ['-a', '--arg-file', '-d', '--delimiter', '-E', '-e', '-I', '-i', '-L', '-l', '-n', '--max-args', '-P', '--max-procs', '-s', '--max-chars'] },
  flock: { valueOptions: ['-w', '--timeout', '-E', '--conflict-exit-code'], leading: 'one-operand' },
  watch: { valueOptions: ['-n', '--interval', '-d'] },
  strace: { valueOptions: ['-e', '-o', '-p', '-s', '-u'] },
  ltrace: { valueOptions: ['-e', '-o', '-p', '-s', '-u'] },
  valgrind: { valueOptions: [] },
  gdb: { valueOptions: [] },
  unbuffer: { valueOptions: [] },
  script: { valueOptions: ['-c', '--command'] },
  sudo: { valueOptions: ['-u', '--user', '-g', '--group', '-h', '--host', '-p', '--prompt', '-C', '--close-from', '-D', '--chdir', '-r', '--role', '-t', '--type', '-U', '--other-user', '-T', '--command-timeout'] },
  doas: { valueOptions: ['-u', '-C'] },
  su: { valueOptions: ['-c', '--command', '-s', '--shell', '-g', '--group', '-G'] },
  runuser: { valueOptions: ['-u', '--user', '-c', '--command', '-g', '--group', '-s', '--shell'] },
  pkexec: { valueOptions: ['--user'] },
  chroot: { valueOptions: ['--userspec', '--groups'], leading: 'one-operand' },
  nsenter: { valueOptions: ['-t', '--target'] },
  unshare: { valueOptions: [] },
};

/** Launcher options naming a path: a file read or written, or the directory the command runs in. */
const LAUNCHER_PATHS: Record<string, Record<string, PathRole | 'chdir'>> = {
  env: { '-C': 'chdir', '--chdir': 'chdir' },
  sudo: { '-D': 'chdir', '--chdir': 'chdir' },
  time: { '-o': 'write', '--output': 'write' },
  strace: { '-o': 'write' },
  ltrace: { '-o': 'write' },
  xargs: { '-a': 'read', '--arg-file': 'read' },
};

/** Options whose value is a file the program writes, whatever the program (long `--name=value` form). */
const WRITE_OPTIONS = new Set(['--output', '--output-file', '--output-document', '--out', '--outfile', '--log-file', '--logfile', '--target-directory', '--directory-prefix', '--dest', '--destination', '--save', '--save-cookies', '--cookie-jar']);
/** Per program: options whose next argument is a path, and whether it is written. */
const VALUE_PATHS: Record<string, Record<string, PathRole>> = {
  curl: { '-o': 'write', '--output': 'write', '-c': 'write', '--cookie-jar': 'write', '-D': 'write', '--dump-header': 'write', '--trace': 'write', '--stderr': 'write', '-T': 'read', '--upload-file': 'read', '-K': 'read', '--config': 'read', '-b': 'read' },
  wget: { '-O': 'write', '--output-document': 'write', '-o': 'write', '--output-file': 'write', '-P': 'write', '--directory-prefix': 'write', '-a': 'write', '-i': 'read', '--input-file': 'read' },
  sort: { '-o': 'write', '--output': 'write', '-T': 'write', '--temporary-directory': 'write' },
  tar: { '-f': 'write', '--file': 'write', '-C': 'write', '--directory': 'write', '-T': 'read', '--files-from': 'read', '-X': 'read' },
  unzip: { '-d': 'write' },
  cp: { '-t': 'write', '--target-directory': 'write' },
  mv: { '-t': 'write', '--target-directory': 'write' },
  ln: { '-t': 'write', '--target-directory': 'write' },
  install: { '-t': 'write', '--target-directory': 'write' },
  git: { '-C': 'write' },
  make: { '-C': 'write', '--directory': 'write', '-f': 'read' },
  ssh: { '-i': 'read', '-F': 'read', '-E': 'write' },
  scp: { '-i': 'read', '-F': 'read' },
  xxd: {},
  find: { '-fprint': 'write', '-fprint0': 'write', '-fls': 'write', '-fprintf': 'write', '-newer': 'read' },
  grep: { '-f': 'read', '--file': 'read' },
};
/** Options that make an otherwise harmless program run another program. */
const RUNS_PROGRAMS: Record<string, string[]> = {
  tar: ['--to-command', '--use-compress-program', '-I', '--checkpoint-action', '--rsh-command', '--info-script', '-F', '--new-volume-script'],
  rg: ['--pre'],
  sort: ['--compress-program'],
  zip: ['-TT', '--unzip-command'],
  rsync: ['-e', '--rsh', '--rsync-path'],
  less: ['--lesskey-src'],
};
/** Top-level directories whose recursive removal is never run. */
const SYSTEM_ROOTS = new Set(['/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/usr', '/var', '/tmp']);

/** `:(){ :|:& };:` and its renamed variants: a function that pipes itself into itself in the background. */
const FORK_BOMB = /([A-Za-z_:][\w:.-]*)\s*\(\s*\)\s*\{[^}]*\1\s*\|\s*&?\s*\1\s*&/;

const MAX_DEPTH = 6;

export function classifyCommand(command: string, ctx: ClassifyContext): Classification {
  if (FORK_BOMB.test(command)) {
    return { risk: 'forbidden', reason: 'a fork bomb (a function that spawns itself without end)', findings: [{ risk: 'forbidden', reason: 'a fork bomb' }], pipeline: [] };
  }
  const pipeline = parseCommand(command);
  const findings: Finding[] = [];
  for (const argv of pipeline) findings.push(...classifyArgv(argv, ctx, 0));
  if (pipeline.length > 1) {
    findings.push({ risk: 'safe', reason: `a pipeline of ${pipeline.length} commands, composed without a shell` });
  }
  return summarise(findings, pipeline);
}

function summarise(findings: Finding[], pipeline: Pipeline): Classification {
  const sorted = [...findings].sort((a, b) => RANK[b.risk] - RANK[a.risk]);
  const top = sorted[0] ?? { risk: 'safe' as const, reason: 'no rule matched' };
  // Several findings at the top class: name them all, the first is the headline.
  const reason = sorted.filter((f) => f.risk === top.risk).map((f) => f.reason).filter((r, i, all) => all.indexOf(r) === i).join('; ');
  return { risk: top.risk, reason, findings: sorted, pipeline };
}

/** Where `program` would be found: a path (relative to cwd) or a name on the system PATH; undefined if nowhere. */
export function locateProgram(program: string, cwd: string): string | undefined {
  const candidates = program.includes('/') ? [path.resolve(cwd, program)] : SYSTEM_PATH.map((d) => path.join(d, program));
  for (const c of candidates) {
    // A stat that answers undefined for a missing file first: most PATH directories lack the program, and
    // a failed accessSync builds an exception (stack and all) on every command's hot path.
    if (!statSync(c, { throwIfNoEntry: false })) continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // there but not executable for us
    }
  }
  return undefined;
}

function isOption(arg: string): boolean {
  return arg.startsWith('-') && arg !== '-' && arg !== '--';
}

function classifyArgv(argv: string[], ctx: ClassifyContext, depth: number): Finding[] {
  if (depth > MAX_DEPTH) return [{ risk: 'high', reason: 'commands nested too deeply to judge' }];
  const findings: Finding[] = [];
  const program = argv[0]!;
  const name = path.basename(program);
  const args = argv.slice(1);

  if (program.includes('/')) {
    const real = realTarget(ctx.cwd, program);
    if (isInside(ctx.workspace, real)) findings.push({ risk: 'high', reason: `runs a program from the workspace (${program})` });
    else if (!SYSTEM_PATH.some((d) => isInside(d, real) || isInside(d, program))) findings.push({ risk: 'high', reason: `runs a program outside the system directories (${program})` });
  }

  if (SHELLS.has(name)) return [...findings, ...classifyShell(name, args, ctx, depth)];
  if (INTERPRETERS.has(name)) return [...findings, ...classifyInterpreter(name, args, ctx)];
  const launcher = LAUNCHERS[name];
  if (launcher) return [...findings, ...classifyLauncher(name, args, launcher, ctx, depth)];
  if (name === 'find') return [...findings, ...classifyFind(args, ctx, depth)];

  const r = PROGRAMS.get(name) ?? (name.startsWith('mkfs') || name.startsWith('fsck') ? rule('critical', 'formats or repairs filesystems', 'read') : undefined);
  if (!r) {
    findings.push({ risk: 'high', reason: `${name} is not a known program: its effects cannot be judged` });
    findings.push(...pathFindings(name, args, 'read', ctx));
    return findings;
  }
  findings.push({ risk: r.risk, reason: `${name} ${r.reason}` });

  for (const opt of RUNS_PROGRAMS[name] ?? []) {
    if (args.some((a) => a === opt || a.startsWith(`${opt}=`) || (opt.length === 2 && !opt.startsWith('--') && a.startsWith(opt) && !a.startsWith('--')))) {
      findings.push({ risk: 'high', reason: `${name} ${opt} runs another program` });
    }
  }
  if (name === 'rm') findings.push(...rmRules(args, ctx));
  if (name === 'git') {
    // Subcommands that create a repository write to their last operand.
    const sub = args.find((a, k) => !isOption(a) && !(k > 0 && ['-C', '-c', '--git-dir', '--work-tree'].includes(args[k - 1]!)));
    const operands = args.filter((a) => !isOption(a));
    if ((sub === 'clone' || sub === 'init') && operands.length >= 2) findings.push(...checkPath(operands[operands.length - 1]!, 'write', ctx, operands[operands.length - 1]!));
    if (args.includes('-c') || args.some((a) => a.startsWith('--config-env'))) findings.push({ risk: 'high', reason: 'git -c can name programs for git to run' });
  }
  if (name === 'uniq' || name === 'xxd') {
    // Their second operand is an output file.
    const operands = args.filter((a) => !isOption(a));
    if (operands.length >= 2) findings.push({ risk: 'moderate', reason: `${name} writes its second operand` }, ...pathFindings(name, [operands[1]!], 'write', ctx));
  }
  if (name === 'tar') return [...findings, ...tarPaths(args, ctx)];
  const role: PathRole = r.risk === 'critical' ? 'read' : r.operands === 'last-writes' ? 'read' : r.operands;
  findings.push(...pathFindings(name, args, role, ctx));
  if (r.operands === 'last-writes') {
    const operands = args.filter((a) => !isOption(a));
    if (operands.length >= 2) findings.push(...pathFindings(name, [operands[operands.length - 1]!], 'write', ctx));
  }
  if (name === 'dd') {
    for (const a of args) {
      const m = /^(if|of)=(.*)$/.exec(a);
      if (m) findings.push(...checkPath(m[2]!, 'read', ctx, a));
    }
  }
  return findings;
}

/**
 * The paths among a program's arguments and where they lead. Operands are paths of `role`; option
 * values are paths when the program declares them (VALUE_PATHS) or when they are written
 * `--name=value` with a path-like value.
 */
function pathFindings(name: string, args: string[], role: PathRole, ctx: ClassifyContext, declaredPaths?: Record<string, PathRole>): Finding[] {
  const findings: Finding[] = [];
  const declared = declaredPaths ?? VALUE_PATHS[name] ?? {};
  // Programs whose arguments are all text (echo, printf): nothing they are given is a path.
  if (role === 'none' && Object.keys(declared).length === 0) return findings;
  let operandsOnly = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!operandsOnly && a === '--') {
      operandsOnly = true;
      continue;
    }
    if (!operandsOnly && isOption(a)) {
      const eq = a.indexOf('=');
      const optName = eq > 0 ? a.slice(0, eq) : a;
      const value = eq > 0 ? a.slice(eq + 1) : undefined;
      const declaredRole = declared[optName];
      if (value !== undefined) {
        const r: PathRole = declaredRole ?? (WRITE_OPTIONS.has(optName) ? 'write' : looksLikePath(value) ? 'read' : 'none');
        findings.push(...checkPath(value, r, ctx, a));
      } else if (declaredRole && i + 1 < args.length) {
        findings.push(...checkPath(args[i + 1]!, declaredRole, ctx, `${a} ${args[i + 1]}`));
        i++;
      } else if (!a.startsWith('--') && a.length > 2) {
        // A cluster of short options (getopt): the first one that takes a value takes the rest of the
        // cluster (`-o/tmp/x`, `-so/tmp/x`) or, at the end of it, the next argument (`-so /tmp/x`).
        for (let k = 1; k < a.length; k++) {
          const r = declared[`-${a[k]}`];
          if (!r) continue;
          const glued = a.slice(k + 1);
          if (glued) findings.push(...checkPath(glued, r, ctx, a));
          else if (i + 1 < args.length) {
            findings.push(...checkPath(args[i + 1]!, r, ctx, `${a} ${args[i + 1]}`));
            i++;
          }
          break;
        }
      }
      continue;
    }
    if (name === 'curl' && a.startsWith('@')) {
      findings.push(...checkPath(a.slice(1), 'read', ctx, a));
      continue;
    }
    if (/^file:/i.test(a)) findings.push({ risk: 'high', reason: `a file: URL reaches any file (${a})` });
    if (role === 'none') continue;
    findings.push(...checkPath(a, role, ctx, a));
  }
  return findings;
}

/**
 * tar's paths depend on its mode: creating (c, r, u) writes the archive and reads the operands;
 * extracting or listing reads the archive, writes into -C, and its operands are member names.
 */
function tarPaths(args: string[], ctx: ClassifyContext): Finding[] {
  const first = args[0] ?? '';
  const letters = args.filter((a) => /^-[A-Za-z]+$/.test(a)).join('') + (/^[A-Za-z]+$/.test(first) ? first : '');
  const creating = /[cru]/.test(letters) || args.some((a) => ['--create', '--append', '--update'].includes(a));
  const archive: PathRole = creating ? 'write' : 'read';
  const into: PathRole = creating ? 'read' : 'write';
  const declared: Record<string, PathRole> = { '-f': archive, '--file': archive, '-C': into, '--directory': into, '-T': 'read', '--files-from': 'read', '-X': 'read' };
  // Old-style `tar cf archive files…`: the archive is the argument after the letter bundle.
  const oldStyle = /^[A-Za-z]+$/.test(first) && first.includes('f');
  const rest = oldStyle ? args.slice(2) : args;
  return [
    ...(oldStyle && args[1] ? checkPath(args[1], archive, ctx, args[1]) : []),
    ...pathFindings('tar', rest, creating ? 'read' : 'none', ctx, declared),
  ];
}

function looksLikePath(v: string): boolean {
  return v.includes('/') || v === '.' || v === '..' || v.startsWith('~');
}

function checkPath(value: string, role: PathRole, ctx: ClassifyContext, shown: string): Finding[] {
  if (value === '' || value === '-' || role === 'none') return [];
  const real = realTarget(ctx.cwd, value);
  if (isInside(ctx.workspace, real)) return [];
  return role === 'write'
    ? [{ risk: 'forbidden', reason: `writes outside the workspace (${shown})` }]
    : [{ risk: 'high', reason: `reads outside the workspace (${shown})` }];
}

function rmRules(args: string[], ctx: ClassifyContext): Finding[] {
  const recursive = args.some((a) => a === '--recursive' || (/^-[A-Za-z]+$/.test(a) && /[rR]/.test(a)));
  const findings: Finding[] = [];
  if (args.includes('--no-preserve-root')) findings.push({ risk: 'forbidden', reason: 'rm --no-preserve-root' });
  if (recursive) {
    for (const a of args.filter((x) => !isOption(x))) {
      const real = realTarget(ctx.cwd, a);
      const literal = a.replace(/\/+\*?$/, '') || '/';
      if (SYSTEM_ROOTS.has(real) || SYSTEM_ROOTS.has(literal) || a === '/*') {
        findings.push({ risk: 'forbidden', reason: `rm -r of a system directory (${a}) would destroy the machine` });
      }
    }
  }
  return findings;
}

function classifyShell(name: string, args: string[], ctx: ClassifyContext, depth: number): Finding[] {
  const findings: Finding[] = [];
  const c = args.findIndex((a) => a === '-c' || (/^-[a-zA-Z]+$/.test(a) && a.includes('c')));
  if (c >= 0 && c + 1 < args.length) {
    findings.push({ risk: 'high', reason: `${name} -c runs a shell script` });
    findings.push(...classifyScript(args[c + 1]!, ctx, depth + 1));
  } else {
    findings.push({ risk: 'high', reason: `${name} runs a shell (commands from a file or its input)` });
    findings.push(...pathFindings(name, args, 'read', ctx));
  }
  return findings;
}

/** A script a shell would interpret: each of its commands is judged, with its redirection targets. */
function classifyScript(script: string, ctx: ClassifyContext, depth: number): Finding[] {
  if (FORK_BOMB.test(script)) return [{ risk: 'forbidden', reason: 'a fork bomb (a function that spawns itself without end)' }];
  const findings: Finding[] = [];
  let entries: ParseEntry[];
  try {
    entries = parse(script);
  } catch {
    return [{ risk: 'high', reason: 'a shell script that cannot be read' }];
  }
  let current: string[] = [];
  let redirect: { op: string; role: PathRole } | undefined;
  const flush = () => {
    if (current.length) findings.push(...classifyArgv(current, ctx, depth));
    current = [];
  };
  for (const e of entries) {
    const word = typeof e === 'string' ? e : 'pattern' in e ? e.pattern : undefined;
    if (word !== undefined) {
      if (redirect) {
        // `2>&1`-style duplications name a descriptor, not a file.
        if (!/^\d+$/.test(word) || !redirect.op.includes('&')) findings.push(...checkPath(word, redirect.role, ctx, `${redirect.op} ${word}`));
        redirect = undefined;
      } else {
        current.push(word);
      }
    } else if (typeof e === 'object' && 'op' in e && /[<>]/.test(e.op) && !e.op.includes('(')) {
      redirect = { op: e.op, role: e.op.includes('>') ? 'write' : 'read' };
    } else {
      flush();
    }
  }
  flush();
  return findings;
}

function classifyInterpreter(name: string, args: string[], ctx: ClassifyContext): Finding[] {
  if (name === 'sed' && args.includes('--sandbox')) {
    // GNU sed's sandbox refuses the e, r and w commands: a plain stream editor again.
    const inPlace = args.some((a) => a === '--in-place' || a.startsWith('--in-place=') || /^-[a-zA-Z]*i/.test(a));
    const operands = args.filter((a) => !isOption(a));
    const scriptGiven = args.some((a) => a === '-e' || a === '-f' || a.startsWith('--expression') || a.startsWith('--file'));
    const files = scriptGiven ? operands : operands.slice(1);
    return [
      inPlace ? { risk: 'moderate', reason: 'sed -i changes files in the workspace' } : { risk: 'safe', reason: 'sed --sandbox reads files' },
      ...pathFindings('sed', files, inPlace ? 'write' : 'read', ctx),
    ];
  }
  const inline = args.find((a) => ['-c', '-e', '--eval', '-p', '--print', '-r', '-E', '--expression'].includes(a));
  const findings: Finding[] = [
    inline ? { risk: 'high', reason: `${name} ${inline} runs inline code` } : { risk: 'high', reason: `${name} is an interpreter: it runs code` },
  ];
  // Scripts and data files it names must still be inside the workspace.
  findings.push(...pathFindings(name, args.filter((a) => looksLikePath(a) || isOption(a)), 'read', ctx));
  return findings;
}

function classifyLauncher(name: string, args: string[], spec: (typeof LAUNCHERS)[string], ctx: ClassifyContext, depth: number): Finding[] {
  const own = PROGRAMS.get(name);
  const findings: Finding[] = [
    own && riskRank(own.risk) > RANK.high ? { risk: own.risk, reason: `${name} ${own.reason}` } : { risk: 'high', reason: `${name} runs another command` },
  ];
  let innerCtx = ctx;
  let i = 0;
  while (i < args.length) {
    const a = args[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (isOption(a)) {
      const eq = a.indexOf('=');
      const optName = eq > 0 ? a.slice(0, eq) : a;
      const role = LAUNCHER_PATHS[name]?.[optName];
      const value = eq > 0 ? a.slice(eq + 1) : spec.valueOptions.includes(a) ? args[i + 1] : undefined;
      if (role && value !== undefined) {
        findings.push(...checkPath(value, role === 'chdir' ? 'read' : role, ctx, `${optName} ${value}`));
        // The launched command runs from there: its relative paths are judged from there.
        if (role === 'chdir') innerCtx = { ...ctx, cwd: realTarget(ctx.cwd, value) };
      }
      if ((name === 'su' || name === 'runuser' || name === 'script') && (a === '-c' || a === '--command') && i + 1 < args.length) {
        findings.push(...classifyScript(args[i + 1]!, ctx, depth + 1));
      }
      if (name === 'env' && (a === '-S' || a === '--split-string') && i + 1 < args.length) {
        findings.push(...classifyScript(args[i + 1]!, ctx, depth + 1));
      }
      i += spec.valueOptions.includes(a) ? 2 : 1;
      continue;
    }
    if (spec.leading === 'assignments' && /^[A-Za-z_][A-Za-z0-9_]*=/.test(a)) {
      i++;
      continue;
    }
    break;
  }
  if (spec.leading === 'one-operand' && i < args.length) {
    // flock's lock file is created; chroot's new root is judged by chroot's own (critical) class.
    if (name === 'flock') findings.push(...checkPath(args[i]!, 'write', ctx, args[i]!));
    i++;
  }
  const inner = args.slice(i);
  if (name === 'watch' && inner.length) {
    findings.push(...classifyScript(inner.join(' '), innerCtx, depth + 1));
  } else if (inner.length) {
    findings.push(...classifyArgv(inner, innerCtx, depth + 1));
  } else if (name === 'xargs') {
    findings.push(...classifyArgv(['echo'], innerCtx, depth + 1));
  }
  return findings;
}

function classifyFind(args: string[], ctx: ClassifyContext, depth: number): Finding[] {
  const findings: Finding[] = [{ risk: 'safe', reason: 'find lists files' }];
  const deletes = args.includes('-delete');
  if (deletes) findings.push({ risk: 'high', reason: 'find -delete removes files' });
  // Starting points: the operands before the first expression.
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('-') || a === '(' || a === '!' || a === ')') break;
    findings.push(...checkPath(a, deletes ? 'write' : 'read', ctx, a));
  }
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (['-exec', '-execdir', '-ok', '-okdir'].includes(a)) {
      const end = args.findIndex((x, j) => j > i && (x === ';' || x === '+'));
      const inner = args.slice(i + 1, end < 0 ? args.length : end).filter((x) => x !== '{}');
      findings.push({ risk: 'high', reason: `find ${a} runs other programs` });
      if (inner.length) findings.push(...classifyArgv(inner, ctx, depth + 1));
      i = end < 0 ? args.length : end;
    } else if (VALUE_PATHS.find![a] && i + 1 < args.length) {
      findings.push(...checkPath(args[i + 1]!, VALUE_PATHS.find![a]!, ctx, `${a} ${args[i + 1]}`));
      i++;
    }
  }
  return findings;
}

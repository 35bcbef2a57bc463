// Per-user workspaces under the data directory, and the one question every path argument is asked:
// where does it really lead (symlinks followed with realpath), inside the workspace or not?
import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { ContractError } from '../../kernel/contract/errors.js';

export class Workspaces {
  readonly root: string;

  constructor(dataDir: string) {
    mkdirSync(path.resolve(dataDir, 'terminal', 'workspaces'), { recursive: true, mode: 0o700 });
    // The real path, so that containment checks compare real paths on both sides.
    this.root = realpathSync(path.resolve(dataDir, 'terminal', 'workspaces'));
  }

  /** The user's workspace (created on first use); its real path. */
  forUser(userId: string): string {
    // User ids are ours, but a directory name must not depend on that: anything unusual is hashed.
    const name = /^[A-Za-z0-9_-]{1,64}$/.test(userId) ? userId : createHash('sha256').update(userId).digest('hex').slice(0, 32);
    const dir = path.join(this.root, name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** The working directory of a command: inside the workspace, existing, a directory; else refused. */
  resolveCwd(workspace: string, cwd: string | undefined): { abs: string; rel: string } {
    if (cwd === undefined || cwd === '' || cwd === '.') return { abs: workspace, rel: '.' };
    const target = path.resolve(workspace, cwd);
    let real: string;
    try {
      real = realpathSync(target);
    } catch {
      if (!isInside(workspace, target)) throw outside();
      throw new ContractError('invalid_input', `cwd: no such directory in your workspace: ${cwd}`, [{ path: 'cwd', message: 'no such directory' }]);
    }
    if (!isInside(workspace, real)) throw outside();
    if (!statSync(real).isDirectory()) {
      throw new ContractError('invalid_input', `cwd: not a directory: ${cwd}`, [{ path: 'cwd', message: 'not a directory' }]);
    }
    return { abs: real, rel: path.relative(workspace, real) || '.' };
  }

  /** A file to read (the assistant's read_file tool): inside the workspace (real path), existing, a regular file; else refused. */
  resolveFile(workspace: string, file: string): { abs: string; rel: string } {
    const target = realTarget(workspace, file);
    if (!isInside(workspace, target)) {
      throw new ContractError('forbidden', 'path must be inside your workspace', [{ path: 'path', message: 'outside the workspace' }]);
    }
    let st;
    try {
      st = statSync(target);
    } catch {
      throw new ContractError('not_found', `no such file in your workspace: ${file}`);
    }
    if (!st.isFile()) throw new ContractError('invalid_input', `path: not a regular file: ${file}`, [{ path: 'path', message: 'not a regular file' }]);
    return { abs: target, rel: path.relative(workspace, target) };
  }
}

function outside(): ContractError {
  return new ContractError('forbidden', 'cwd must be inside your workspace', [{ path: 'cwd', message: 'outside the workspace' }]);
}

export function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/**
 * Where a path argument leads, seen from `cwd`: the real path of its longest existing prefix (so a
 * symlink anywhere on the way counts) joined with the part that does not exist yet.
 */
export function realTarget(cwd: string, arg: string): string {
  const abs = path.resolve(cwd, arg);
  let existing = abs;
  const rest: string[] = [];
  for (;;) {
    try {
      const real = realpathSync(existing);
      return rest.length ? path.join(real, ...rest.reverse()) : real;
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return abs;
      rest.push(path.basename(existing));
      existing = parent;
    }
  }
}

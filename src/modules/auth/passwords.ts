// Password hashing with argon2id at (at least) the OWASP minimum: m = 19 MiB, t = 2, p = 1. Checking a
// password for an unknown user costs the same as for a known one, so timing tells nothing.
import { randomBytes } from 'node:crypto';
import { injectable } from 'tsyringe';
import { hash, verify, type Algorithm, type Options } from '@node-rs/argon2';

const ARGON2ID = 2 as Algorithm; // Algorithm.Argon2id; a const enum cannot be read under isolatedModules
export const argon2Options: Options = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

/** One per module: the decoy hash costs one argon2 run, paid once at start rather than per use. */
@injectable()
export class Passwords {
  /** A hash of a random password nobody knows, verified against when the user does not exist. */
  private readonly decoy: Promise<string> = hash(randomBytes(32).toString('base64url'), argon2Options);

  hash(password: string): Promise<string> {
    return hash(password, argon2Options);
  }

  /** Verifies against the stored hash, or against the decoy when there is none (same cost, always false). */
  async verify(stored: string | undefined, password: string): Promise<boolean> {
    try {
      const ok = await verify(stored ?? (await this.decoy), password);
      return ok && stored !== undefined;
    } catch {
      return false;
    }
  }
}

export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

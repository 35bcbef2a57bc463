// First start: with no user at all, an `admin` is created, with AUTOBOT_ADMIN_PASSWORD or a generated
// password that is logged exactly once (it is stored only as its argon2id hash).
import type { Logger } from 'pino';
import { ContractError } from '../../kernel/contract/errors.js';
import { generatePassword, type Passwords } from './passwords.js';
import type { UserStore } from './user-store.js';

export async function ensureFirstAdmin(users: UserStore, passwords: Passwords, configured: string | undefined, logger: Logger): Promise<void> {
  if (!(await users.isEmpty())) return;
  const password = configured ?? generatePassword();
  try {
    await users.create({ username: 'admin', role: 'admin', passwordHash: await passwords.hash(password) });
  } catch (err) {
    // Another instance starting at the same moment created it first.
    if (err instanceof ContractError && err.code === 'conflict') return;
    throw err;
  }
  if (configured) {
    logger.info('created the first user "admin" with the password from AUTOBOT_ADMIN_PASSWORD');
  } else {
    // The one and only time this password is shown.
    logger.warn({ username: 'admin', generatedPassword: password }, 'created the first user "admin"; its password is shown only this once: sign in and change it');
  }
}

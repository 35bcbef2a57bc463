// A module's runtime settings as last read from the config module: defaults until the first read,
// the last good values when config cannot be reached. The module reloads it on `config.settings.changed`.
import type { z } from 'zod';
import type { Logger } from 'pino';
import { withContext } from '../context/request-context.js';

export class SettingsHolder<S extends z.ZodObject> {
  private value: z.output<S>;

  constructor(
    private readonly schema: S,
    private readonly read: () => Promise<Record<string, unknown>>,
    private readonly logger: Logger,
  ) {
    this.value = schema.parse({});
  }

  current(): z.output<S> {
    return this.value;
  }

  async reload(): Promise<void> {
    try {
      // Bounded: at start, a remote config that is down must not hold the module back.
      const raw = await withContext({ deadline: Date.now() + 2000 }, this.read);
      this.value = this.schema.parse(raw);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'settings not loaded; keeping the current ones');
    }
  }
}

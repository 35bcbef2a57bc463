// Process configuration: environment variables, optionally a JSON file of the same names
// (AUTOBOT_CONFIG_FILE), validated with zod at start; a bad value stops the process with a message that
// names the variable.
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const list = (v: string | undefined) =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const httpUrl = z.string().refine((u) => {
  try {
    return ['http:', 'https:'].includes(new URL(u).protocol);
  } catch {
    return false;
  }
}, 'must be an http(s) URL');

const rateLimitSchema = z.partialRecord(
  z.enum(['default', 'auth', 'expensive', 'authFailures']),
  z.object({ points: z.number().int().positive(), durationS: z.number().int().positive() }),
);

export const envSchema = z
  .object({
    PORT: z.coerce.number().int().min(0).max(65535).default(8001),
    HOST: z.string().min(1).default('127.0.0.1'),
    AUTOBOT_DATA_DIR: z.string().min(1).default('./data'),
    REDIS_URL: z
      .string()
      .regex(/^(redis|rediss|unix):\/\/.+/, 'must start with redis://, rediss:// or unix://')
      .optional(),
    OLLAMA_URL: z
      .string()
      .default('http://127.0.0.1:11434')
      .transform(list)
      .pipe(z.array(httpUrl).min(1, 'needs at least one URL')),
    AUTOBOT_MODULES: z
      .string()
      .default('all')
      .transform((v) => (v.trim() === 'all' || v.trim() === '' ? 'all' : list(v)))
      .pipe(z.union([z.literal('all'), z.array(z.string().regex(/^[a-z][a-z0-9-]*$/, 'module names are lower-case'))])),
    AUTOBOT_REMOTE_MODULES: z
      .string()
      .optional()
      .transform((v, ctx) => {
        const out: Record<string, string> = {};
        for (const pair of list(v)) {
          const [name, url] = pair.split(/=(.*)/s);
          const parsed = httpUrl.safeParse(url);
          if (!name || !parsed.success) {
            ctx.addIssue({ code: 'custom', message: `"${pair}" is not name=http://host:port` });
            return z.NEVER;
          }
          out[name] = parsed.data;
        }
        return out;
      }),
    AUTOBOT_INTERNAL_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    AUTOBOT_ADVERTISE_URL: httpUrl.optional(),
    AUTOBOT_CORS_ORIGINS: z.string().optional().transform(list).pipe(z.array(httpUrl)),
    AUTOBOT_TRUST_PROXY: z
      .string()
      .optional()
      .refine((v) => !v || !['true', '*', 'all'].includes(v.trim().toLowerCase()), {
        message: 'never trust every proxy: name them (loopback, uniquelocal, 10.0.0.0/8, …) or give a hop count',
      })
      .transform((v): false | number | string[] => (!v ? false : /^\d+$/.test(v.trim()) ? Number(v) : list(v))),
    AUTOBOT_ADMIN_PASSWORD: z.string().min(12, 'must be at least 12 characters').max(256).optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    AUTOBOT_BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/i, 'like 1mb or 512kb').default('1mb'),
    AUTOBOT_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
    AUTOBOT_HEARTBEAT_MS: z.coerce.number().int().min(100).default(1000),
    // Fractions allowed (0.5 = 12 hours).
    AUTOBOT_SAGA_RETENTION_DAYS: z.coerce.number().positive().max(3650).default(7),
    AUTOBOT_SAGA_FAILED_RETENTION_DAYS: z.coerce.number().positive().max(3650).default(30),
    AUTOBOT_RATE_LIMITS: z
      .string()
      .optional()
      .transform((v, ctx) => {
        if (!v) return {};
        try {
          return JSON.parse(v) as unknown;
        } catch {
          ctx.addIssue({ code: 'custom', message: 'must be JSON' });
          return z.NEVER;
        }
      })
      .pipe(rateLimitSchema),
  })
  .superRefine((c, ctx) => {
    // A module is hosted here or reached over HTTP, never both: which one would a caller get?
    const both = c.AUTOBOT_MODULES === 'all' ? [] : c.AUTOBOT_MODULES.filter((m) => m in c.AUTOBOT_REMOTE_MODULES);
    if (both.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['AUTOBOT_REMOTE_MODULES'],
        message: `names ${both.map((m) => `"${m}"`).join(', ')}, which AUTOBOT_MODULES hosts here too: a module is hosted here or reached remotely, not both`,
      });
    }
    const lifted = c.AUTOBOT_MODULES !== 'all' || Object.keys(c.AUTOBOT_REMOTE_MODULES).length > 0;
    if (lifted && !c.AUTOBOT_INTERNAL_TOKEN) {
      ctx.addIssue({
        code: 'custom',
        path: ['AUTOBOT_INTERNAL_TOKEN'],
        message: 'is required when modules are served or reached over HTTP (AUTOBOT_MODULES or AUTOBOT_REMOTE_MODULES set)',
      });
    }
  });

export type AppConfig = z.output<typeof envSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads the configuration from an environment (and the JSON file it names); environment wins. */
export function loadConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  let fromFile: Record<string, string> = {};
  const file = env.AUTOBOT_CONFIG_FILE;
  if (file) {
    try {
      const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      fromFile = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
    } catch (err) {
      throw new ConfigError([`AUTOBOT_CONFIG_FILE: cannot read ${file}: ${(err as Error).message}`]);
    }
  }
  const merged: Record<string, string | undefined> = { ...fromFile };
  for (const key of Object.keys(envSchema.shape)) if (env[key] !== undefined && env[key] !== '') merged[key] = env[key];
  const r = envSchema.safeParse(merged);
  if (!r.success) throw new ConfigError(r.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`));
  return r.data;
}

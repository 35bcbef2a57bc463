// socket.io commands declared by contracts (`sockets`, `socketDisconnect`): each command calls a port as
// the socket's user, inside a request context of its own, and acknowledges `{ok: true, data}` or
// `{ok: false, error}`. Rooms are entered only after the operation behind the command succeeded (for
// `chat:join`, `getChat` proved the chat is the caller's). Generic: the gateway knows no module.
// Each command spends the caller's budget of the same rate-limit class (and the same Redis-held budget,
// shared by every instance) as the REST route of its operation, so a socket is no way around the limits.
import type { Server, Socket } from 'socket.io';
import type { Logger } from 'pino';
import type { AnyContract, Operations, RateLimitClass, SocketCommandDef } from '../kernel/contract/define.js';
import { ContractError, toContractError } from '../kernel/contract/errors.js';
import { newRequestId, runWithContext, type Actor } from '../kernel/context/request-context.js';
import type { RateLimits } from './rate-limit.js';

export interface SocketCommandsOptions {
  contracts: AnyContract[];
  port: (moduleId: string) => Record<string, unknown> | undefined;
  rateLimits: RateLimits;
  logger: Logger;
}

type Ack = (answer: { ok: true; data: unknown } | { ok: false; error: { code: string; message: string; details?: unknown } }) => void;

interface Mounted {
  contract: AnyContract;
  command: SocketCommandDef;
  timeoutMs: number;
  limitClass: RateLimitClass;
}

export function mountSocketCommands(io: Server, opts: SocketCommandsOptions): void {
  const commands = new Map<string, Mounted>();
  for (const contract of opts.contracts) {
    for (const command of contract.sockets ?? []) {
      const other = commands.get(command.event);
      if (other) throw new Error(`socket event "${command.event}" is declared by both ${other.contract.id} and ${contract.id}`);
      const op = (contract.operations as Operations)[command.operation]!;
      const route = contract.routes.find((r) => r.operation === command.operation);
      const limitClass = command.rateLimit ?? (route ? (route.rateLimit ?? 'default') : 'default');
      commands.set(command.event, { contract, command, timeoutMs: op.timeoutMs, limitClass });
    }
  }
  const onDisconnect = opts.contracts.filter((c) => c.socketDisconnect !== undefined);
  const log = opts.logger.child({ component: 'socket-commands' });

  const call = (socket: Socket, moduleId: string, operation: string, timeoutMs: number, input: unknown): Promise<unknown> => {
    const actor = socket.data.actor as Actor;
    const fn = opts.port(moduleId)?.[operation] as ((input: unknown) => Promise<unknown>) | undefined;
    if (!fn) return Promise.reject(new ContractError('unavailable', `module "${moduleId}" is not bound`));
    const address = socket.handshake.address;
    return runWithContext(
      { requestId: newRequestId(), actor, deadline: Date.now() + timeoutMs, ...(address ? { clientAddress: address } : {}) },
      () => fn(input),
    );
  };

  io.on('connection', (socket) => {
    for (const { contract, command, timeoutMs, limitClass } of commands.values()) {
      socket.on(command.event, (...args: unknown[]) => {
        // A client may send no payload at all, only the acknowledgement callback.
        const ack = (typeof args[args.length - 1] === 'function' ? args.pop() : undefined) as Ack | undefined;
        const payload = args[0];
        void (async () => {
          try {
            const actor = socket.data.actor as Actor;
            if (command.auth === 'admin' && !(actor.type === 'user' && actor.roles.includes('admin'))) {
              throw new ContractError('forbidden', 'this needs the admin role');
            }
            // The key REST uses for a signed-in caller: one budget per user and class, whichever door.
            await opts.rateLimits.consume(limitClass, actor.type === 'user' ? `user:${actor.id}` : `socket:${socket.id}`);
            const input = command.input ? command.input(payload, { socketId: socket.id }) : payload;
            const data = await call(socket, contract.id, command.operation, timeoutMs, input);
            if (command.join) await socket.join(command.join(input, data));
            if (command.leave) await socket.leave(command.leave(input, data));
            ack?.({ ok: true, data: data ?? null });
          } catch (err) {
            const ce = toContractError(err);
            if (ce.code === 'internal') log.error({ err, event: command.event }, 'socket command failed');
            ack?.({ ok: false, error: ce.toBody() });
          }
        })();
      });
    }
    if (onDisconnect.length) {
      socket.on('disconnect', () => {
        for (const contract of onDisconnect) {
          const op = (contract.operations as Operations)[contract.socketDisconnect!]!;
          call(socket, contract.id, contract.socketDisconnect!, op.timeoutMs, { socketId: socket.id }).catch((err: unknown) =>
            log.warn({ err: (err as Error).message, module: contract.id }, 'socket disconnect handler failed'),
          );
        }
      });
    }
  });
}

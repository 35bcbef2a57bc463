// One error envelope for every failure the edge answers (API.md): status from the code, no stack traces.
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { isContractError, toContractError, type ContractError } from '../kernel/contract/errors.js';
import { clientErrorOf } from '../kernel/transport/rpc-server.js';
import { currentContext } from '../kernel/context/request-context.js';

export function sendError(res: Response, err: ContractError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const requestId = currentContext()?.requestId ?? String(res.getHeader('x-request-id') ?? '');
  // A module that refuses for rate reasons says when to come back; HTTP says it in Retry-After.
  const retryAfterS = (err.details as { retryAfterS?: unknown } | undefined)?.retryAfterS;
  if (err.code === 'rate_limited' && typeof retryAfterS === 'number') res.setHeader('Retry-After', String(retryAfterS));
  res.status(err.status).json({ error: { ...err.toBody(), requestId } });
}

/** Maps what express, its router and its body parser throw onto the contract's codes. */
export function edgeError(err: unknown): ContractError {
  if (isContractError(err)) return err;
  return clientErrorOf(err) ?? toContractError(err);
}

export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const ce = edgeError(err);
    if (ce.code === 'internal') logger.error({ err: ce.cause ?? err }, 'unhandled error');
    // A client's mistake is worth a line, not a stack.
    else if (ce.status < 500) logger.warn({ code: ce.code, method: req.method, path: req.path, err: ce.message }, 'request refused');
    sendError(res, ce);
  };
}

// One error envelope for every failure the edge answers (API.md): status from the code, no stack traces.
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { ContractError, toContractError } from '../kernel/contract/errors.js';
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

interface BodyParserError {
  type?: string;
  status?: number;
}

/** Maps what express and its body parser throw onto the contract's codes. */
export function edgeError(err: unknown): ContractError {
  const type = (err as BodyParserError | undefined)?.type;
  switch (type) {
    case 'entity.parse.failed':
      return new ContractError('invalid_input', 'Malformed JSON body', [{ path: '', message: 'body is not valid JSON' }]);
    case 'entity.too.large':
      return new ContractError('payload_too_large', 'Request body is too large');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ContractError('unsupported_media_type', 'Unsupported body encoding');
    case 'request.aborted':
      return new ContractError('invalid_input', 'Request aborted by the client');
    default:
      return toContractError(err);
  }
}

export function errorHandler(logger: Logger) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction): void => {
    const ce = edgeError(err);
    if (ce.code === 'internal') logger.error({ err: ce.cause ?? err }, 'unhandled error');
    sendError(res, ce);
  };
}

// The closed set of error codes every module speaks, with the HTTP status the gateway answers and
// whether a caller may retry. Callers test `err.code`, never `instanceof`: an error that crossed a
// wire is rebuilt from its code.
export const errorCodes = {
  invalid_input: { status: 400, retryable: false },
  unauthenticated: { status: 401, retryable: false },
  forbidden: { status: 403, retryable: false },
  not_found: { status: 404, retryable: false },
  conflict: { status: 409, retryable: false },
  payload_too_large: { status: 413, retryable: false },
  unsupported_media_type: { status: 415, retryable: false },
  rate_limited: { status: 429, retryable: true },
  internal: { status: 500, retryable: false },
  unavailable: { status: 503, retryable: true },
  timeout: { status: 504, retryable: true },
} as const;

export type ErrorCode = keyof typeof errorCodes;

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

export class ContractError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ContractError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return errorCodes[this.code].status;
  }

  get retryable(): boolean {
    return errorCodes[this.code].retryable;
  }

  toBody(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCodes, value);
}

export function isContractError(err: unknown): err is ContractError {
  return (
    typeof err === 'object' &&
    err !== null &&
    (err as { name?: unknown }).name === 'ContractError' &&
    isErrorCode((err as { code?: unknown }).code)
  );
}

/** Anything thrown becomes a contract error; unknown failures become `internal` and keep their cause. */
export function toContractError(err: unknown): ContractError {
  if (isContractError(err)) return err;
  return new ContractError('internal', 'Internal error', undefined, { cause: err });
}

/** Rebuilds a contract error from a wire body, refusing codes outside the closed set. */
export function contractErrorFromBody(body: unknown, fallback: ErrorCode = 'internal'): ContractError {
  const b = body as Partial<ErrorBody> | undefined;
  const code = isErrorCode(b?.code) ? b.code : fallback;
  const message = typeof b?.message === 'string' ? b.message : 'Remote error';
  return new ContractError(code, message, b?.details);
}

// Typed failures of the registry client: every error names the operation that failed and tells the user
// what to do next. Messages never contain the deployment key or an agent token.

export type RegistryErrorKind =
  | "not_found"
  | "unauthorized"
  | "forbidden"
  | "conflict"
  | "invalid"
  | "too_large"
  | "rate_limited"
  | "inbox_full"
  | "unreachable"
  | "timeout"
  | "aborted"
  | "bad_response"
  | "http";

export interface RegistryErrorOptions {
  operation: string;
  kind: RegistryErrorKind;
  status?: number;
  /** The server's `detail` (redacted, shortened), when it sent one. */
  detail?: string;
  cause?: unknown;
}

export class RegistryError extends Error {
  override readonly name = "RegistryError";
  readonly operation: string;
  readonly kind: RegistryErrorKind;
  readonly status?: number;
  readonly detail?: string;
  /** From a `Retry-After` header (429 rate limits), in seconds. */
  retryAfterSeconds?: number;

  constructor(message: string, options: RegistryErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.operation = options.operation;
    this.kind = options.kind;
    if (options.status !== undefined) this.status = options.status;
    if (options.detail !== undefined) this.detail = options.detail;
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}

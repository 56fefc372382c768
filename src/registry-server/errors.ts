// Typed HTTP errors of the reference registry server. Every error carries the operation that failed and a
// FastAPI-style `detail` that tells the caller what to do next.

/** One entry of a FastAPI-style validation error list. */
export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
}

export type ErrorDetail = string | ValidationIssue[];

export class RegistryHttpError extends Error {
  override readonly name = "RegistryHttpError";
  constructor(
    readonly status: number,
    readonly operation: string,
    readonly detail: ErrorDetail,
    readonly headers: Record<string, string> = {},
  ) {
    super(`${operation}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
}

export const badRequest = (operation: string, detail: string) =>
  new RegistryHttpError(400, operation, detail);

export const unauthorized = (operation: string, detail: string, scheme = "Bearer") =>
  new RegistryHttpError(401, operation, detail, { "www-authenticate": scheme });

export const forbidden = (operation: string, detail: string) => new RegistryHttpError(403, operation, detail);

export const notFound = (operation: string, detail: string) => new RegistryHttpError(404, operation, detail);

export const conflict = (operation: string, detail: string) => new RegistryHttpError(409, operation, detail);

export const payloadTooLarge = (operation: string, detail: string) =>
  new RegistryHttpError(413, operation, detail, { connection: "close" });

export const unsupportedMediaType = (operation: string, detail: string) =>
  new RegistryHttpError(415, operation, detail);

/** 429 (this caller asks too much) or 503 (the server is full); both say when to come back. */
export const tooBusy = (status: 429 | 503, operation: string, detail: string, retryAfterSeconds: number) =>
  new RegistryHttpError(status, operation, detail, { "retry-after": String(retryAfterSeconds) });

/**
 * The client went away before its request was read (connection reset or closed mid-upload). Not a server
 * fault and nobody is left to answer: the server drops the connection and logs it at debug level.
 */
export class ClientGoneError extends Error {
  override readonly name = "ClientGoneError";
  constructor(
    readonly operation: string,
    cause?: unknown,
  ) {
    super(`${operation}: the client closed the connection before sending the whole request`, { cause });
  }
}
export const tooManyRequests = (operation: string, detail: string, retryAfterSeconds: number) =>
  new RegistryHttpError(429, operation, detail, { "retry-after": String(retryAfterSeconds) });

export const insufficientStorage = (operation: string, detail: string) =>
  new RegistryHttpError(507, operation, detail);

export const unprocessable = (operation: string, issues: ValidationIssue[]) =>
  new RegistryHttpError(422, operation, issues);

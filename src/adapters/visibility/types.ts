// The shape every visibility source produces: whether this agent is discoverable right now, plus optional
// metadata overrides coming from the same place (Convex installation metadata).

export interface VisibilityReading {
  discoverable: boolean;
  displayName?: string;
  description?: string;
  capabilities?: string[];
  /** ISO instant at which `discoverable` will flip by schedule (schedule sources only), so callers can wake then. */
  nextChangeAt?: string;
}

export interface VisibilitySource {
  read(signal?: AbortSignal): Promise<VisibilityReading>;
}

export type VisibilityErrorKind =
  | "unreachable"
  | "timeout"
  | "aborted"
  | "http"
  | "bad_response"
  | "query_failed";

/** A visibility source could not be read; `operation` names the source and step. */
export class VisibilityError extends Error {
  override readonly name = "VisibilityError";
  readonly operation: string;
  readonly kind: VisibilityErrorKind;
  readonly status?: number;

  constructor(
    message: string,
    options: { operation: string; kind: VisibilityErrorKind; status?: number; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.operation = options.operation;
    this.kind = options.kind;
    if (options.status !== undefined) this.status = options.status;
  }
}

/** JSON-serializable error for status and machine context. */
export interface PlainVisibilityError {
  kind: VisibilityErrorKind | "internal";
  operation: string;
  message: string;
  status?: number;
}

export function toPlainVisibilityError(err: unknown): PlainVisibilityError {
  if (err instanceof VisibilityError) {
    const plain: PlainVisibilityError = { kind: err.kind, operation: err.operation, message: err.message };
    if (err.status !== undefined) plain.status = err.status;
    return plain;
  }
  return {
    kind: "internal",
    operation: "visibility.read",
    message: err instanceof Error ? err.message : String(err),
  };
}

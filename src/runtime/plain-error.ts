// The one conversion of adapter failures (registry, pilotctl, transports) into the plain, JSON-serializable
// errors actors reject with and status shows. Messages are the adapters' own: they never carry secrets.
import { PilotError } from "../adapters/pilot/pilotctl.js";
import { RegistryError } from "../adapters/registry/errors.js";
import { TransportError } from "../adapters/transport/transport.js";
import { PLAIN_ERROR_KINDS, type PlainError, type PlainErrorKind, toPlainError } from "../machines/types.js";

const PLAIN_KINDS = new Set<string>(PLAIN_ERROR_KINDS);

export function toPlain(error: unknown, operation: string): PlainError {
  if (error instanceof RegistryError) {
    const kind: PlainErrorKind = PLAIN_KINDS.has(error.kind)
      ? (error.kind as PlainErrorKind)
      : error.kind === "aborted"
        ? "timeout"
        : "http";
    const out: PlainError = { kind, operation: error.operation, message: error.message };
    if (error.status !== undefined) out.status = error.status;
    return out;
  }
  if (error instanceof PilotError) {
    return { kind: error.code === "timeout" ? "timeout" : "unreachable", operation, message: error.message };
  }
  if (error instanceof TransportError) {
    const kind: PlainErrorKind =
      error.code === "timeout" ? "timeout" : error.code === "invalid" ? "invalid" : "unreachable";
    return { kind, operation: error.operation || operation, message: error.message };
  }
  return toPlainError(error, operation);
}

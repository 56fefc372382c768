// Keeps a visibility source's last good reading when it fails: a Convex outage must not de-list the agent
// (or publish a private one). The failure is exposed as `lastError` for status, never thrown.
import {
  type PlainVisibilityError,
  toPlainVisibilityError,
  type VisibilityReading,
  type VisibilitySource,
} from "./types.js";

export interface LastKnownSource extends VisibilitySource {
  /** Resolves with the fresh reading, or the last known one when the source fails. Never rejects. */
  read(signal?: AbortSignal): Promise<VisibilityReading>;
  /** The last reading returned (initial until the first success). */
  readonly lastKnown: VisibilityReading;
  /** The error of the most recent read, null after a success. */
  readonly lastError: PlainVisibilityError | null;
  /** ISO time of the last successful read, null before the first. */
  readonly lastSuccessAt: string | null;
}

export function withLastKnown(source: VisibilitySource, initial: VisibilityReading): LastKnownSource {
  let lastKnown: VisibilityReading = { ...initial };
  let lastError: PlainVisibilityError | null = null;
  let lastSuccessAt: string | null = null;
  return {
    async read(signal) {
      try {
        const reading = await source.read(signal);
        lastKnown = { ...reading };
        lastError = null;
        lastSuccessAt = new Date().toISOString();
      } catch (err) {
        lastError = toPlainVisibilityError(err);
      }
      return { ...lastKnown };
    },
    get lastKnown() {
      return { ...lastKnown };
    },
    get lastError() {
      return lastError;
    },
    get lastSuccessAt() {
      return lastSuccessAt;
    },
  };
}

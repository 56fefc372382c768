// The poll loop's public face: a small, stable status record (phase, failures, last summary) for channel status.
import type { SnapshotFrom } from "xstate";
import type { PollMachine, PollSummary } from "./poll.machine.js";
import type { PlainError } from "./types.js";

export const POLL_PHASES = [
  "waiting",
  "waking",
  "polling",
  "paused",
  "scheduled",
  "retrying",
  "backoff",
  "stopped",
] as const;
export type PollPhase = (typeof POLL_PHASES)[number];

export interface PollStatusView {
  phase: PollPhase;
  consecutiveErrors: number;
  lastSummary: PollSummary | null;
  lastError: PlainError | null;
}

export function toPollStatus(snapshot: SnapshotFrom<PollMachine>): PollStatusView {
  const value = snapshot.value;
  const phase = (POLL_PHASES as readonly string[]).includes(String(value)) ? (value as PollPhase) : "waiting";
  return {
    phase,
    consecutiveErrors: snapshot.context.consecutiveErrors,
    lastSummary: snapshot.context.lastSummary,
    lastError: snapshot.context.lastError,
  };
}

// The account's lifecycle as users see it (channel status, gateway methods): a small stable type derived from a
// snapshot, so nothing outside the machines depends on XState state names or context layout.
import type { SnapshotFrom } from "xstate";
import type { accountMachine } from "./account.machine.js";
import type { PlainError } from "./types.js";

export type AccountLifecycle =
  | "private"
  | "idle"
  | "registering"
  | "online"
  | "re-registering"
  | "deregistering"
  | "stopped";

export interface AccountStatus {
  lifecycle: AccountLifecycle;
  agentId: string | null;
  discoverable: boolean;
  /** The registry's `last_seen` from the last successful heartbeat (ISO-8601), or null. */
  lastHeartbeatAt: string | null;
  heartbeatFailures: number;
  lastError: PlainError | null;
  /** While idle after a failed registration: ms until the next attempt. */
  nextRetryDelayMs: number | null;
}

export type AccountSnapshot = SnapshotFrom<typeof accountMachine>;

/** Top-level state -> lifecycle. Transient states never rest, but map them to where they lead for safety. */
const LIFECYCLE: Record<string, AccountLifecycle> = {
  starting: "registering",
  private: "private",
  idle: "idle",
  registering: "registering",
  reregistering: "re-registering",
  registered: "online",
  registerFailed: "idle",
  online: "online",
  deregistering: "deregistering",
  deregistered: "deregistering",
  stopped: "stopped",
};

function topLevelState(value: AccountSnapshot["value"]): string {
  return typeof value === "string" ? value : (Object.keys(value)[0] ?? "stopped");
}

export function toAccountStatus(snapshot: AccountSnapshot): AccountStatus {
  const { context } = snapshot;
  const lifecycle =
    snapshot.status === "done" ? "stopped" : (LIFECYCLE[topLevelState(snapshot.value)] ?? "idle");
  return {
    lifecycle,
    agentId: context.agentId,
    discoverable: context.discoverable,
    lastHeartbeatAt: context.lastHeartbeatAt,
    heartbeatFailures: context.heartbeatFailures,
    lastError: context.lastError,
    nextRetryDelayMs: lifecycle === "idle" ? context.nextRetryDelayMs : null,
  };
}

// The daemon's public face: a small, stable status record for channel status and the agent tool, so callers
// never read XState snapshots or context fields directly.
import type { SnapshotFrom } from "xstate";
import type { DaemonMachine } from "./daemon.machine.js";
import type { PlainError } from "./types.js";

export const DAEMON_PHASES = [
  "checking",
  "absent",
  "starting",
  "running",
  "recycling",
  "crashed",
  "failed",
  "detached",
  "stopping",
  "stopped",
] as const;
export type DaemonPhase = (typeof DAEMON_PHASES)[number];

export interface DaemonStatusView {
  phase: DaemonPhase;
  managed: boolean;
  /** true only while the daemon is up: peer-to-peer messaging can work. */
  messagingAvailable: boolean;
  nodeId: number | null;
  address: string | null;
  /** Why messaging is not available, phrased for the owner or the model (what to do next). */
  reason: string | null;
  restartsLeft: number;
  restartBudget: number;
  lastError: PlainError | null;
}

export function daemonPhase(snapshot: SnapshotFrom<DaemonMachine>): DaemonPhase {
  const value = snapshot.value;
  const top = typeof value === "string" ? value : Object.keys(value)[0];
  return (DAEMON_PHASES as readonly string[]).includes(top ?? "") ? (top as DaemonPhase) : "checking";
}

export function toDaemonStatus(snapshot: SnapshotFrom<DaemonMachine>): DaemonStatusView {
  const { context } = snapshot;
  const phase = daemonPhase(snapshot);
  const messagingAvailable = phase === "running";
  return {
    phase,
    managed: context.manageDaemon,
    messagingAvailable,
    nodeId: context.nodeId,
    address: context.address,
    reason: messagingAvailable ? null : (context.reason ?? describePhase(phase)),
    restartsLeft: context.restartsLeft,
    restartBudget: context.restartBudget,
    lastError: context.lastError,
  };
}

function describePhase(phase: DaemonPhase): string {
  switch (phase) {
    case "checking":
    case "starting":
      return "Pilot daemon is starting: try again in a few seconds";
    case "stopping":
    case "stopped":
      return "Pilot daemon is stopped because the channel is stopping";
    default:
      return "Pilot daemon unavailable: check `openclaw channels status`";
  }
}

// The account's lifecycle as users see it (channel status, gateway methods): a small stable type derived from a
// snapshot, so nothing outside the machines depends on XState state names or context layout.
import type { AnyActorRef, SnapshotFrom } from "xstate";
import type { AccountTransport, accountMachine } from "./account.machine.js";
import type { DaemonMachine } from "./daemon.machine.js";
import { type DaemonStatusView, toDaemonStatus } from "./daemon.status.js";
import type { HandshakeSnapshot } from "./handshake.machine.js";
import { countPeers, peerKeyOfChild } from "./peers.js";
import type { PollMachine } from "./poll.machine.js";
import { type PollStatusView, toPollStatus } from "./poll.status.js";
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
  messaging: MessagingStatus;
}

/** The transport side of the tree: the daemon, the two loops and the peers, as their children report them. */
export interface MessagingStatus {
  transport: AccountTransport;
  /** Messages can be sent and received now. */
  ready: boolean;
  /** Why not, or the last failure of a loop while it retries; null when all is well. */
  reason: string | null;
  daemon: DaemonStatusView | null;
  inbox: PollStatusView | null;
  /** Transport "auto": the relay inbox loop (`inbox` is then the Pilot files). */
  relayInbox: PollStatusView | null;
  peersLoop: PollStatusView | null;
  outboxLoop: PollStatusView | null;
  peers: {
    total: number;
    trusted: number;
    pending: number;
    /** Peers whose last decision failed at the transport (approve, reject, handshake, untrust). */
    failing: Array<{ peer: string; error: PlainError }>;
  };
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

function childSnapshot<T>(snapshot: AccountSnapshot, id: string): T | null {
  const child = (snapshot.children as Record<string, AnyActorRef | undefined>)[id];
  return child ? (child.getSnapshot() as T) : null;
}

/** The whole tree through one mapper: status, the gateway methods and the tool all read this. */
export function toMessagingStatus(snapshot: AccountSnapshot): MessagingStatus {
  const { context } = snapshot;
  const daemonSnapshot = childSnapshot<SnapshotFrom<DaemonMachine>>(snapshot, "daemon");
  const inboxSnapshot = childSnapshot<SnapshotFrom<PollMachine>>(snapshot, "inbox");
  const relayInboxSnapshot = childSnapshot<SnapshotFrom<PollMachine>>(snapshot, "relayInbox");
  const peersSnapshot = childSnapshot<SnapshotFrom<PollMachine>>(snapshot, "peers");
  const outboxSnapshot = childSnapshot<SnapshotFrom<PollMachine>>(snapshot, "outbox");
  const daemon = daemonSnapshot ? toDaemonStatus(daemonSnapshot) : null;
  // Only an awake handshake can hold an error (a resting one settled without one).
  const failing: MessagingStatus["peers"]["failing"] = [];
  for (const id of Object.keys(snapshot.children)) {
    const key = peerKeyOfChild(id);
    const error = key === null ? null : childSnapshot<HandshakeSnapshot>(snapshot, id)?.context.lastError;
    if (key !== null && error) failing.push({ peer: key, error });
  }
  const counts = countPeers(context.peers);
  const loopError =
    context.loopErrors.inbox ?? context.loopErrors.relayInbox ?? context.loopErrors.peers ?? null;
  const pilotUp = daemon?.messagingAvailable === true;
  // "auto" works while either path does: the daemon with its inbox, or the relay inbox.
  const ready =
    context.transport === "pilot"
      ? pilotUp && !context.loopErrors.inbox
      : context.transport === "relay"
        ? !context.loopErrors.inbox
        : context.transport === "auto" &&
          ((pilotUp && !context.loopErrors.inbox) || !context.loopErrors.relayInbox);
  return {
    transport: context.transport,
    ready,
    reason:
      context.transport === "none"
        ? 'transport "none": discovery only'
        : (daemon?.reason ?? loopError?.message ?? null),
    daemon,
    inbox: inboxSnapshot ? toPollStatus(inboxSnapshot) : null,
    relayInbox: relayInboxSnapshot ? toPollStatus(relayInboxSnapshot) : null,
    peersLoop: peersSnapshot ? toPollStatus(peersSnapshot) : null,
    outboxLoop: outboxSnapshot ? toPollStatus(outboxSnapshot) : null,
    peers: {
      total: context.peers.size,
      trusted: counts.trusted,
      pending: counts.pendingApproval,
      failing,
    },
  };
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
    messaging: toMessagingStatus(snapshot),
  };
}

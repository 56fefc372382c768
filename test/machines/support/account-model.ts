// The account machine's test model: the input, event payloads and state projection shared by the model-based
// and scenario tests of src/machines/account.machine.ts.
import type { SnapshotFrom } from "xstate";
import type { AccountMachineInput, accountMachine } from "../../../src/machines/account.machine.js";
import type { AgentMetadata, PlainError } from "../../../src/machines/types.js";
import { type EventWithPayload, eventsWithPayloads } from "./events.js";

export type AccountSnapshot = SnapshotFrom<typeof accountMachine>;

export const ACCOUNT_ACTORS = ["registerAgent", "sendHeartbeat", "updateAgent", "deregisterAgent"] as const;
export const ACCOUNT_ACTIONS = ["persistAgentId", "forgetAgentId"] as const;

export const METADATA: AgentMetadata = {
  hostname: "alpha",
  installationId: "inst-alpha-0001",
  pilotNodeId: null,
  pilotAddress: null,
  displayName: "Alpha",
  description: "test assistant",
  capabilities: ["search"],
};

export const CHANGED_METADATA: AgentMetadata = {
  ...METADATA,
  description: "now with more",
  capabilities: ["search", "chat"],
};

export const TRANSPORT = { pilotNodeId: 7, pilotAddress: "0:0000.0000.0007" };

export const INPUT: AccountMachineInput = {
  accountId: "main",
  discoverable: true,
  metadata: METADATA,
  agentId: null,
  heartbeatIntervalMs: 60_000,
  maxHeartbeatFailures: 3,
  registerBackoff: { initialMs: 1_000, maxMs: 300_000, factor: 2 },
  deregisterTimeoutMs: 5_000,
};

export const AGENT_ID = "agent-1";
export const LAST_SEEN = "2026-11-25T12:00:00.000Z";

export function plainError(kind: PlainError["kind"], operation: string): PlainError {
  return { kind, operation, message: `${operation} failed: ${kind}` };
}

/** Every event the model drives, with the payload variants worth distinguishing. */
export const ACCOUNT_PAYLOADS: EventWithPayload[] = [
  { type: "VISIBILITY.CHANGED", discoverable: false },
  { type: "VISIBILITY.CHANGED", discoverable: true },
  { type: "METADATA.CHANGED", metadata: CHANGED_METADATA },
  { type: "TRANSPORT.READY", ...TRANSPORT },
  { type: "xstate.done.actor.registerAgent", output: { agentId: AGENT_ID } },
  { type: "xstate.error.actor.registerAgent", error: plainError("unreachable", "register") },
  { type: "xstate.error.actor.registerAgent", error: plainError("conflict", "register") },
  { type: "xstate.done.actor.sendHeartbeat", output: { lastSeen: LAST_SEEN } },
  { type: "xstate.error.actor.sendHeartbeat", error: plainError("not_found", "heartbeat") },
  { type: "xstate.error.actor.sendHeartbeat", error: plainError("unreachable", "heartbeat") },
  { type: "xstate.done.actor.updateAgent", output: { agentId: AGENT_ID } },
  { type: "xstate.error.actor.updateAgent", error: plainError("not_found", "update") },
  { type: "xstate.error.actor.updateAgent", error: plainError("unreachable", "update") },
  { type: "xstate.done.actor.deregisterAgent", output: undefined },
  { type: "xstate.error.actor.deregisterAgent", error: plainError("unreachable", "deregister") },
];

const withPayloads = eventsWithPayloads<AccountSnapshot, { type: string }>(ACCOUNT_PAYLOADS);

/**
 * Events for graph traversal. TRANSPORT.READY is left out: it goes through the same guard and action as
 * METADATA.CHANGED but would double the metadata variants (and the graph); the scenario tests cover it.
 */
export const accountEvents = (snapshot: AccountSnapshot) =>
  withPayloads(snapshot).filter(
    (event) => event.type !== "TRANSPORT.READY" && !COMPOSITION_EVENTS.has(event.type),
  ) as never[];

/**
 * The root's events for and from its children. With transport "none" (the model's input) there are no children;
 * test/runtime/account-tree.test.ts drives these through the composed tree.
 */
const COMPOSITION_EVENTS = new Set([
  "DAEMON.READY",
  "DAEMON.LOST",
  "DAEMON.UNAVAILABLE",
  "POLL.CYCLE.DONE",
  "POLL.CYCLE.FAILED",
  "PEERS.OBSERVED",
  "PEER.COMMAND",
  "HANDSHAKE.ANNOUNCE",
  "HANDSHAKE.KEY_CHANGED",
  "PEERS.KEYS",
  "xstate.snapshot.*",
  "xstate.error.actor.*",
  "VISIBILITY.READ",
  "INBOX.WAKE",
  "PEERS.WAKE",
  "TRANSPORT.RETRY",
  "TRANSPORT.STOP",
]);

/**
 * What identifies an account state for the graph: the state value and every context field a guard reads or a
 * transition target depends on. Left out are fields that only describe the past (lastError, lastHeartbeatAt) or
 * only change delays (registerAttempts, nextRetryDelayMs); invariants and scenario tests check those.
 */
export function projectAccount(snapshot: AccountSnapshot): unknown {
  const c = snapshot.context;
  return {
    value: snapshot.value,
    discoverable: c.discoverable,
    agentId: c.agentId,
    metadata: c.metadata,
    metadataDirty: c.metadataDirty,
    stopRequested: c.stopRequested,
    heartbeatFailures: c.heartbeatFailures,
  };
}

export const serializeAccount = (snapshot: AccountSnapshot) => JSON.stringify(projectAccount(snapshot));

// Model-based tests of the per-peer handshake machine: shortest paths and seeded random walks (self-loops
// included) replayed with fake pilotctl actors; after every step the peer is also persisted and restored, and the
// restored actor must resume the same trust state without announcing the request again.
import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import { getShortestPaths } from "xstate/graph";
import {
  type HandshakeSnapshot,
  handshakeMachine,
  PEER_STATES,
  peerTrustState,
  toPeerState,
} from "../../src/machines/handshake.machine.js";
import {
  type AnyPath,
  eventsWithPayloads,
  graphSize,
  type Harness,
  randomWalks,
  replayEach,
  replayPath,
} from "./support/index.js";

const GRAPH_LIMIT = 30_000;
/** Two keys: one the registry offers (then pinned), one a message signs with later (a key change). */
const KEY = "A".repeat(43);
const OTHER_KEY = "B".repeat(43);
const ACTORS = ["sendHandshake", "approvePeer", "rejectPeer", "untrustPeer"] as const;
const input = { peer: { hostname: "bob", nodeId: null, installationId: null } };
const err = (operation: string) => ({ kind: "timeout", operation, message: `${operation} timed out` });

const payloads = eventsWithPayloads([
  { type: "xstate.done.actor.sendHandshake", output: { nodeId: 9 } },
  { type: "xstate.error.actor.sendHandshake", error: err("trust.request") },
  { type: "xstate.done.actor.approvePeer", output: { node_id: 9, status: "approved" } },
  { type: "xstate.error.actor.approvePeer", error: err("trust.approve") },
  { type: "xstate.done.actor.rejectPeer", output: { node_id: 9, status: "rejected" } },
  { type: "xstate.error.actor.rejectPeer", error: err("trust.reject") },
  { type: "xstate.done.actor.untrustPeer", output: { node_id: 9 } },
  { type: "xstate.error.actor.untrustPeer", error: err("trust.untrust") },
  { type: "HANDSHAKE.REQUEST", introduction: "Hi, I am alice's assistant" },
  { type: "PEER.PENDING", justification: "Hi, I am bob's assistant", receivedAt: 1_700_000_000_000 },
  { type: "REJECT", reason: "not now" },
  // Adds nothing the peer's record lacks: an edge in every state that must change nothing (the scenarios test
  // what a new node id or relay id does).
  { type: "PEER.SEEN", peer: { hostname: "bob", nodeId: null, installationId: null } },
  // The owner's approval (the default) and the agent's, which must never change a pinned key.
  { type: "APPROVE" },
  { type: "APPROVE", by: "agent" },
  { type: "PEER.KEY", key: KEY },
  { type: "PEER.KEY_CHANGED", key: OTHER_KEY },
]);

/** Which command may be in flight in which (sub)state. */
const COMMAND_STATE: Record<string, string> = {
  sendHandshake: "requested.sending",
  approvePeer: "pendingApproval.approving",
  rejectPeer: "pendingApproval.rejecting",
  untrustPeer: "trusted.untrusting",
};
const UNTRUSTING = ["trusted.untrusting", "suspended.untrusting"];

type HandshakeHarness = Harness<typeof handshakeMachine>;

// Provided once: provide() rebuilds the state tree, and restore runs after every step of every path.
let restoredAnnouncements = 0;
const restorable = handshakeMachine.provide({
  actions: { announceRequest: () => void restoredAnnouncements++ },
});

/** Persists the peer, starts a fresh actor from the record, and reports what it did. */
function restore(snapshot: HandshakeSnapshot) {
  restoredAnnouncements = 0;
  const restored = createActor(restorable, {
    input: { peer: { hostname: null, nodeId: null, installationId: null }, initial: toPeerState(snapshot) },
  });
  restored.start();
  const result = { snapshot: restored.getSnapshot(), announced: restoredAnnouncements };
  restored.stop();
  return result;
}

const COMMANDS = ["HANDSHAKE.REQUEST", "APPROVE", "REJECT", "UNTRUST"];

function invariants(
  h: HandshakeHarness,
  step: { event: { type: string; by?: string } },
  abortedBefore: number,
  keyBefore: string | null,
  approvedBy: string | undefined,
  suspendedEntries: number,
) {
  const snapshot = h.snapshot();
  const announces = h.effects.filter((effect) => effect.name === "announceRequest").length;
  const inFlight = h.fakes.inFlight();

  // Announced at most once per peer, and remembered exactly when it happened.
  expect(announces).toBeLessThanOrEqual(1);
  expect(snapshot.context.announcedAt !== null).toBe(announces === 1);
  // Someone asked us: the owner/agent has been told.
  if (snapshot.matches({ pendingApproval: "waiting" })) expect(announces).toBe(1);

  // One pilotctl command at a time, and only in the state that owns it.
  expect(inFlight.length).toBeLessThanOrEqual(1);
  for (const call of inFlight) {
    const where = call.src === "untrustPeer" ? UNTRUSTING : [COMMAND_STATE[call.src]];
    expect(where.some((state) => snapshot.matches(state as never))).toBe(true);
  }
  // A decision never interrupts another one halfway (an aborted approve may already have taken effect).
  if (COMMANDS.includes(step.event.type)) {
    expect(h.fakes.calls.filter((call) => call.status === "aborted").length).toBe(abortedBefore);
  }

  // Keys: a pinned key changes only by an approval the owner gave; the agent's approval never changes one. A
  // suspended peer has a pinned key and another one on offer, and was announced once per suspension.
  const { key, offeredKey } = snapshot.context;
  if (keyBefore !== null && key !== keyBefore) {
    expect(["APPROVE", "xstate.done.actor.approvePeer"]).toContain(step.event.type);
    expect(approvedBy).not.toBe("agent");
  }
  if (keyBefore === null && key !== null) {
    expect(["APPROVE", "PEER.TRUSTED", "xstate.done.actor.approvePeer"]).toContain(step.event.type);
  }
  if (snapshot.matches("suspended")) {
    expect(key).not.toBeNull();
    expect(offeredKey).not.toBeNull();
    expect(offeredKey).not.toBe(key);
  }
  // Each suspension is announced once, when it begins (never again while it lasts, nor after a restore).
  const suspensions = h.effects.filter((effect) => effect.name === "announceKeyChange").length;
  expect(suspensions).toBe(suspendedEntries);

  // The persisted record round-trips: same trust state, no second announcement, ever.
  const state = peerTrustState(snapshot);
  expect(PEER_STATES).toContain(state);
  const restored = restore(snapshot);
  expect(peerTrustState(restored.snapshot)).toBe(state);
  expect(restored.snapshot.context.peer).toEqual(snapshot.context.peer);
  expect([restored.snapshot.context.key, restored.snapshot.context.offeredKey]).toEqual([key, offeredKey]);
  if (announces === 1) expect(restored.announced).toBe(0);
  expect(restored.snapshot.matches("suspended")).toBe(snapshot.matches("suspended"));
  // A restored request is not sent again.
  expect(restored.snapshot.matches({ requested: "sending" })).toBe(false);
}

async function replay(path: AnyPath) {
  let abortedBefore = 0;
  let keyBefore: string | null = null;
  let approvedBy: string | undefined;
  let suspendedEntries = 0;
  let wasSuspended = false;
  const harness = await replayPath(path, {
    machine: handshakeMachine,
    input,
    actors: ACTORS,
    actions: ["announceRequest", "announceKeyChange"],
    invariants: (h, step) => {
      const event = step.event as { type: string; by?: string };
      if (event.type === "APPROVE") approvedBy = event.by;
      const suspended = h.snapshot().matches("suspended");
      if (suspended && !wasSuspended) suspendedEntries++;
      wasSuspended = suspended;
      invariants(h, step, abortedBefore, keyBefore, approvedBy, suspendedEntries);
      abortedBefore = h.fakes.calls.filter((call) => call.status === "aborted").length;
      keyBefore = h.snapshot().context.key;
    },
  });
  harness.stop();
}

describe("handshake machine: shortest paths", () => {
  const traversal = { input, events: payloads, limit: GRAPH_LIMIT };
  const paths = getShortestPaths(handshakeMachine, traversal as never);
  it("reaches every trust state, one path per state of the graph", () => {
    const states = new Set(paths.map((path) => peerTrustState(path.state as HandshakeSnapshot)));
    expect([...states].sort()).toEqual([...PEER_STATES].sort());
    expect(paths).toHaveLength(graphSize(handshakeMachine, traversal as never).states);
  });
  // One test per trust state the path ends in: hundreds of per-path tests cost more in runner overhead than in replay.
  for (const state of PEER_STATES) {
    const ending = paths.filter((path) => peerTrustState(path.state as HandshakeSnapshot) === state);
    it(`replays the ${ending.length} shortest paths ending ${state}`, async () => {
      const report = await replayEach(ending, replay);
      expect(report).toEqual({ replayed: ending.length, skipped: [] });
    });
  }
});

describe("handshake machine: random walks", () => {
  const walks = randomWalks(handshakeMachine, { input, events: payloads, limit: GRAPH_LIMIT } as never, {
    count: 60,
    length: 25,
    seed: 4_242,
  });
  it("revisit pendingApproval after a request was already announced", () => {
    const revisits = walks.filter(
      (walk) => walk.steps.filter((step) => step.event.type === "PEER.PENDING").length >= 2,
    );
    expect(revisits.length).toBeGreaterThan(10);
  });
  it(`replays ${walks.length} walks, persisting and restoring after every step`, async () => {
    const report = await replayEach(walks, replay);
    expect(report).toEqual({ replayed: walks.length, skipped: [] });
  });
});

// Trust with one peer: our outgoing handshake, their incoming request (announced exactly once, remembered across
// restarts), approval, rejection and revocation. The transport's trust list (Pilot's or the relay's) is the source
// of truth for "trusted". Spawned by the account root as `handshake:<peer key>`; tagged `busy` while a transport
// call is in flight and `settled` otherwise.
//
// The peer's key: the key a verified registry record (or the peer's own signed message) offers is remembered as
// `offeredKey`; approving the peer pins it as `key` (like SSH's known hosts). A message signed by another key
// suspends a trusted peer (the owner is told once) until the owner approves the new key or untrusts the peer.
// Only the owner approves a key change: the agent's approval never replaces or changes a pinned key.
import {
  assign,
  enqueueActions,
  fromPromise,
  initialTransition,
  type SnapshotFrom,
  setup,
  transition,
} from "xstate";
import { type PeerRef, type PlainError, toPlainError } from "./types.js";

export type { PeerRef };

export const PEER_STATES = [
  "unknown",
  "requested",
  "pendingApproval",
  "trusted",
  "suspended",
  "rejected",
  "revoked",
] as const;
export type PeerTrustState = (typeof PEER_STATES)[number];

/** The persisted, plain record of one peer; a handshake actor spawned with `input: {peer, initial}` resumes it. */
export interface PeerState {
  hostname: string | null;
  nodeId: number | null;
  /** The peer's relay id (see PeerRef). */
  installationId: string | null;
  state: PeerTrustState;
  /** Our introduction, sent with our handshake request. */
  introduction: string | null;
  /** Their justification, when they asked us. */
  justification?: string | null;
  /** When the incoming request was announced to the owner/agent (ms); set once, never announced again. */
  announcedAt: number | null;
  updatedAt?: number | null;
  /** How the peer names itself and its human (from its request or the registry): untrusted text. */
  assistantName?: string | null;
  humanName?: string | null;
  /** The peer's pinned public key (base64url Ed25519); null: not verified (an older peer, or not approved yet). */
  key?: string | null;
  /** A key seen for the peer and not pinned: awaiting approval, or the new key of a suspended peer. */
  offeredKey?: string | null;
}

/** Who gives a command: the owner (gateway, operator) or the agent (its tool). Only the owner approves keys. */
export type Decider = "owner" | "agent";

export interface HandshakeInput {
  peer: PeerRef;
  initial?: PeerState;
}

export interface SendHandshakeInput {
  peer: PeerRef;
  introduction: string;
}

export interface SendHandshakeOutput {
  /** The peer's node id as the transport resolved it: remembered when we only knew the hostname. */
  nodeId: number | null;
}

export interface PeerCommandInput {
  peer: PeerRef;
  reason?: string | null;
}

/**
 * Every event may carry `at` (ms since the epoch), recorded as `updatedAt`; the machine reads no clock. For
 * PEER.TRUSTED / PEER.UNTRUSTED, `at` is when the trust list was read: an observation older than the last
 * change is ignored.
 */
export type HandshakeEvent =
  | { type: "HANDSHAKE.REQUEST"; introduction: string; at?: number }
  | {
      type: "PEER.PENDING";
      justification: string;
      receivedAt: number;
      at?: number;
      assistantName?: string | null;
      humanName?: string | null;
    }
  /** More is known about the peer (its node id, relay id, names): merged, the state does not change. */
  | { type: "PEER.SEEN"; peer: PeerRef; assistantName?: string | null; humanName?: string | null }
  | { type: "PEER.TRUSTED"; at?: number }
  | { type: "PEER.UNTRUSTED"; at?: number }
  | { type: "APPROVE"; at?: number; by?: Decider }
  /** A key the peer offers: from its verified registry record, or its signed message while not pinned. */
  | { type: "PEER.KEY"; key: string }
  /** A message from the peer signed by another key than the pinned one. */
  | { type: "PEER.KEY_CHANGED"; key: string; at?: number }
  | { type: "REJECT"; reason?: string; at?: number }
  | { type: "UNTRUST"; at?: number };

/** The commands an owner or the agent gives (the other events are observations of the transport). */
export type HandshakeCommand = Extract<
  HandshakeEvent,
  { type: "HANDSHAKE.REQUEST" | "APPROVE" | "REJECT" | "UNTRUST" }
>;

/** What the handshake tells the parent (the account root, which notifies the owner or the agent). */
export type HandshakeParentEvent =
  | {
      type: "HANDSHAKE.ANNOUNCE";
      peer: PeerRef;
      justification: string;
      receivedAt: number;
    }
  /** The peer was suspended: a message came signed by `key`, not the pinned key (told once per suspension). */
  | { type: "HANDSHAKE.KEY_CHANGED"; peer: PeerRef; key: string };

export interface HandshakeContext {
  peer: PeerRef;
  introduction: string | null;
  /** Their justification, when they asked us. */
  justification: string | null;
  receivedAt: number | null;
  announcedAt: number | null;
  rejectReason: string | null;
  updatedAt: number | null;
  lastError: PlainError | null;
  /** Only while starting: the persisted state to resume. */
  restoreTo: PeerTrustState | null;
  assistantName: string | null;
  humanName: string | null;
  key: string | null;
  offeredKey: string | null;
}

function notProvided(name: string): never {
  throw new Error(
    `handshake machine: actor "${name}" was not provided; wire the transport with machine.provide()`,
  );
}

/**
 * While a pilotctl command is in flight, another decision is ignored rather than aborting it halfway (an aborted
 * `approve` may already have taken effect). Observations (PEER.*) still apply: the trust list is the truth.
 * Empty transitions block the parent's handlers.
 */
const IGNORE_COMMANDS_WHILE_BUSY = {
  "HANDSHAKE.REQUEST": {},
  APPROVE: {},
  REJECT: {},
  UNTRUST: {},
} as const;

/** Untrusting a trusted or a suspended peer: the transport call, then revoked (or back to idle, with the error). */
const UNTRUSTING = {
  tags: ["busy"],
  on: IGNORE_COMMANDS_WHILE_BUSY,
  invoke: {
    id: "untrustPeer",
    src: "untrustPeer",
    input: ({ context }: { context: HandshakeContext }) => ({ peer: context.peer }),
    onDone: { target: "#handshake.revoked", actions: "clearError" },
    onError: { target: "idle", actions: "recordUntrustError" },
  },
} as const;

/** When the event happened (ms), if it says. */
function eventAt(event: HandshakeEvent): number | undefined {
  return "at" in event ? event.at : undefined;
}

export const handshakeMachine = setup({
  types: {
    input: {} as HandshakeInput,
    context: {} as HandshakeContext,
    events: {} as HandshakeEvent,
  },
  actors: {
    sendHandshake: fromPromise<SendHandshakeOutput, SendHandshakeInput>(async () =>
      notProvided("sendHandshake"),
    ),
    approvePeer: fromPromise<unknown, PeerCommandInput>(async () => notProvided("approvePeer")),
    rejectPeer: fromPromise<unknown, PeerCommandInput>(async () => notProvided("rejectPeer")),
    untrustPeer: fromPromise<unknown, PeerCommandInput>(async () => notProvided("untrustPeer")),
  },
  actions: {
    stamp: assign({ updatedAt: ({ context, event }) => eventAt(event) ?? context.updatedAt }),
    clearRestore: assign({ restoreTo: null }),
    clearError: assign({ lastError: null }),
    recordUntrustError: assign({
      lastError: ({ event }) => toPlainError((event as { error?: unknown }).error, "trust.untrust"),
    }),
    // Once per peer, ever: the guard reads `announcedAt`, which is persisted with the peer.
    announceRequest: enqueueActions(({ context, self, enqueue }) => {
      if (!self._parent) return;
      enqueue.sendParent({
        type: "HANDSHAKE.ANNOUNCE",
        peer: context.peer,
        justification: context.justification ?? "",
        receivedAt: context.receivedAt ?? 0,
      } satisfies HandshakeParentEvent);
    }),
    markAnnounced: assign({
      announcedAt: ({ context, event }) =>
        event.type === "PEER.PENDING" ? (event.at ?? event.receivedAt) : (context.receivedAt ?? 0),
    }),
    recordIncoming: assign({
      justification: ({ context, event }) =>
        event.type === "PEER.PENDING" ? event.justification : context.justification,
      receivedAt: ({ context, event }) =>
        event.type === "PEER.PENDING" ? event.receivedAt : context.receivedAt,
      assistantName: ({ context, event }) =>
        (event.type === "PEER.PENDING" ? event.assistantName : null) ?? context.assistantName,
      humanName: ({ context, event }) =>
        (event.type === "PEER.PENDING" ? event.humanName : null) ?? context.humanName,
    }),
    // What is known fills what was not; the newer relay id wins (peers.json written before the registry had peer
    // ids holds the peer's old installation id, which trust lists and inbound senders would never match).
    mergePeer: assign(({ context, event }) => {
      if (event.type !== "PEER.SEEN") return {};
      return {
        peer: {
          hostname: context.peer.hostname ?? event.peer.hostname,
          nodeId: context.peer.nodeId ?? event.peer.nodeId,
          installationId: event.peer.installationId ?? context.peer.installationId,
        },
        assistantName: event.assistantName ?? context.assistantName,
        humanName: event.humanName ?? context.humanName,
      };
    }),
    // A key offered for a peer whose key is not pinned (a pinned peer's key changes only by the owner's approval).
    offerKey: assign({
      offeredKey: ({ context, event }) =>
        event.type === "PEER.KEY" || event.type === "PEER.KEY_CHANGED" ? event.key : context.offeredKey,
    }),
    // Approval pins what was offered; a peer that offered none stays unverified (key null). Guarded by
    // `mayApprove`/`ownerPins`: only the owner's approval changes a pinned key.
    pinOffered: assign({
      key: ({ context }) => context.offeredKey ?? context.key,
      offeredKey: null,
    }),
    // Trust that follows our own request pins the key the peer's record offered, never over a pinned one: a
    // changed key waits on offer for the owner.
    pinIfUnpinned: assign({
      key: ({ context }) => context.key ?? context.offeredKey,
      offeredKey: ({ context }) => (context.key === null ? null : context.offeredKey),
    }),
    announceKeyChange: enqueueActions(({ context, self, enqueue }) => {
      if (!self._parent || context.offeredKey === null) return;
      enqueue.sendParent({
        type: "HANDSHAKE.KEY_CHANGED",
        peer: context.peer,
        key: context.offeredKey,
      } satisfies HandshakeParentEvent);
    }),
    recordIntroduction: assign({
      introduction: ({ context, event }) =>
        event.type === "HANDSHAKE.REQUEST" ? event.introduction : context.introduction,
    }),
  },
  guards: {
    // A trust list read before our last change (a poll cycle racing an untrust) must not undo that change.
    fresh: ({ context, event }) => {
      const at = eventAt(event);
      return at === undefined || context.updatedAt === null || at >= context.updatedAt;
    },
    resumes: ({ context }, params: { state: PeerTrustState }) => context.restoreTo === params.state,
    // An offer worth remembering: the peer has no pinned key, and this one is news.
    newOffer: ({ context, event }) =>
      event.type === "PEER.KEY" && context.key === null && event.key !== context.offeredKey,
    // A signed message under another key than the pinned one (a peer without a pinned key has none to change).
    keyChanged: ({ context, event }) =>
      event.type === "PEER.KEY_CHANGED" && context.key !== null && event.key !== context.key,
    // Approving a request pins its offered key: a change of a pinned key needs the owner; the agent may approve a
    // peer whose key is new to us or the same as pinned.
    mayApprove: ({ context, event }) =>
      event.type === "APPROVE" &&
      (event.by !== "agent" ||
        context.key === null ||
        context.offeredKey === null ||
        context.offeredKey === context.key),
    // Pinning a trusted peer's key (verifying an unverified peer, or accepting a suspended peer's new key): the
    // owner only, and only when a key is on offer.
    ownerPins: ({ context, event }) =>
      event.type === "APPROVE" && event.by !== "agent" && context.offeredKey !== null,
  },
}).createMachine({
  id: "handshake",
  context: ({ input }) => ({
    peer: {
      hostname: input.initial?.hostname ?? input.peer.hostname,
      nodeId: input.initial?.nodeId ?? input.peer.nodeId,
      installationId: input.peer.installationId ?? input.initial?.installationId ?? null,
    },
    assistantName: input.initial?.assistantName ?? null,
    humanName: input.initial?.humanName ?? null,
    introduction: input.initial?.introduction ?? null,
    receivedAt: null,
    announcedAt: input.initial?.announcedAt ?? null,
    rejectReason: null,
    justification: input.initial?.justification ?? null,
    updatedAt: input.initial?.updatedAt ?? null,
    lastError: null,
    restoreTo: input.initial?.state ?? null,
    key: input.initial?.key ?? null,
    offeredKey: input.initial?.offeredKey ?? null,
  }),
  initial: "restoring",
  on: {
    "PEER.SEEN": { actions: "mergePeer" },
    "PEER.KEY": { guard: "newOffer", actions: "offerKey" },
    // Outside `trusted` nothing flows to suspend: the new key waits as an offer for the owner's approval.
    "PEER.KEY_CHANGED": { guard: "keyChanged", actions: "offerKey" },
  },
  states: {
    // Resume the persisted top-level state; transient substates (a command in flight) are never persisted.
    restoring: {
      always: [
        {
          guard: { type: "resumes", params: { state: "trusted" } },
          target: "trusted",
          actions: "clearRestore",
        },
        // A restored request is not sent again: it was sent before the restart.
        {
          guard: { type: "resumes", params: { state: "requested" } },
          target: "requested.waiting",
          actions: "clearRestore",
        },
        {
          guard: { type: "resumes", params: { state: "pendingApproval" } },
          target: "pendingApproval",
          actions: "clearRestore",
        },
        {
          guard: { type: "resumes", params: { state: "suspended" } },
          target: "suspended",
          actions: "clearRestore",
        },
        {
          guard: { type: "resumes", params: { state: "rejected" } },
          target: "rejected",
          actions: "clearRestore",
        },
        {
          guard: { type: "resumes", params: { state: "revoked" } },
          target: "revoked",
          actions: "clearRestore",
        },
        { target: "unknown", actions: "clearRestore" },
      ],
    },

    unknown: {
      tags: ["settled"],
      on: {
        "HANDSHAKE.REQUEST": { target: "requested", actions: ["recordIntroduction", "stamp"] },
        "PEER.PENDING": { target: "pendingApproval", actions: ["recordIncoming", "stamp"] },
        "PEER.TRUSTED": { guard: "fresh", target: "trusted", actions: "stamp" },
      },
    },

    requested: {
      initial: "sending",
      states: {
        sending: {
          tags: ["busy"],
          on: IGNORE_COMMANDS_WHILE_BUSY,
          invoke: {
            id: "sendHandshake",
            src: "sendHandshake",
            input: ({ context }) => ({ peer: context.peer, introduction: context.introduction ?? "" }),
            onDone: {
              target: "waiting",
              actions: assign({
                peer: ({ context, event }) => ({
                  ...context.peer,
                  nodeId: context.peer.nodeId ?? event.output.nodeId,
                }),
                lastError: null,
              }),
            },
            onError: {
              target: "failed",
              actions: assign({ lastError: ({ event }) => toPlainError(event.error, "trust.request") }),
            },
          },
        },
        // Sent: the peer sees it at its next daemon heartbeat; we see the answer in our trust list.
        waiting: { tags: ["settled"] },
        failed: { tags: ["settled"] },
      },
      on: {
        // Re-sending is harmless (pilotctl answers "sent" even when already trusted) and lets the user retry.
        "HANDSHAKE.REQUEST": { target: ".sending", reenter: true, actions: ["recordIntroduction", "stamp"] },
        // Both sides asked: the transport trusts both (Pilot and the relay do), so nobody is asked; the trust list will show it.
        "PEER.PENDING": { actions: ["recordIncoming", "stamp"] },
        // We asked them, with the key their record offered: it is pinned.
        "PEER.TRUSTED": { guard: "fresh", target: "trusted", actions: ["pinIfUnpinned", "stamp"] },
        APPROVE: { guard: "mayApprove", target: "pendingApproval.approving", actions: "stamp" },
      },
    },

    pendingApproval: {
      initial: "waiting",
      states: {
        waiting: {
          tags: ["settled"],
          entry: enqueueActions(({ context, enqueue }) => {
            if (context.announcedAt !== null) return;
            enqueue("markAnnounced");
            enqueue("announceRequest");
          }),
        },
        approving: {
          tags: ["busy"],
          on: IGNORE_COMMANDS_WHILE_BUSY,
          invoke: {
            id: "approvePeer",
            src: "approvePeer",
            input: ({ context }) => ({ peer: context.peer }),
            // approve adds them to our trust list: the next `trust` read confirms it.
            onDone: { target: "#handshake.trusted", actions: [assign({ lastError: null }), "pinOffered"] },
            onError: {
              target: "waiting",
              actions: assign({ lastError: ({ event }) => toPlainError(event.error, "trust.approve") }),
            },
          },
        },
        rejecting: {
          tags: ["busy"],
          on: IGNORE_COMMANDS_WHILE_BUSY,
          invoke: {
            id: "rejectPeer",
            src: "rejectPeer",
            input: ({ context }) => ({ peer: context.peer, reason: context.rejectReason }),
            onDone: { target: "#handshake.rejected", actions: assign({ lastError: null }) },
            onError: {
              target: "waiting",
              actions: assign({ lastError: ({ event }) => toPlainError(event.error, "trust.reject") }),
            },
          },
        },
      },
      on: {
        APPROVE: { guard: "mayApprove", target: ".approving", actions: "stamp" },
        REJECT: {
          target: ".rejecting",
          actions: [assign({ rejectReason: ({ event }) => event.reason ?? null }), "stamp"],
        },
        "PEER.PENDING": { actions: ["recordIncoming", "stamp"] },
        "PEER.TRUSTED": { guard: "fresh", target: "trusted", actions: "stamp" },
        // Asking them back makes it mutual: the transport trusts both sides.
        "HANDSHAKE.REQUEST": { target: "requested", actions: ["recordIntroduction", "stamp"] },
      },
    },

    trusted: {
      initial: "idle",
      states: {
        idle: { tags: ["settled"] },
        untrusting: UNTRUSTING,
      },
      on: {
        UNTRUST: { target: ".untrusting", actions: "stamp" },
        "PEER.UNTRUSTED": { guard: "fresh", target: "revoked", actions: "stamp" },
        // The owner verifies an unverified peer (or takes a key offered since): it is pinned.
        APPROVE: { guard: "ownerPins", target: ".idle", actions: ["pinOffered", "stamp"] },
        "PEER.KEY_CHANGED": {
          guard: "keyChanged",
          target: "suspended",
          actions: ["offerKey", "announceKeyChange", "stamp"],
        },
      },
    },

    // A message came signed by another key: nothing from or to the peer until the owner approves the new key
    // (pinning it) or untrusts the peer. The transport still trusts it; only we hold it back.
    suspended: {
      initial: "idle",
      states: {
        idle: { tags: ["settled"] },
        untrusting: UNTRUSTING,
      },
      on: {
        APPROVE: { guard: "ownerPins", target: "trusted", actions: ["pinOffered", "stamp"] },
        UNTRUST: { target: ".untrusting", actions: "stamp" },
        "PEER.UNTRUSTED": { guard: "fresh", target: "revoked", actions: "stamp" },
      },
    },

    rejected: {
      tags: ["settled"],
      on: {
        "HANDSHAKE.REQUEST": { target: "requested", actions: ["recordIntroduction", "stamp"] },
        "PEER.PENDING": { target: "pendingApproval", actions: ["recordIncoming", "stamp"] },
        "PEER.TRUSTED": { guard: "fresh", target: "trusted", actions: "stamp" },
      },
    },

    revoked: {
      tags: ["settled"],
      on: {
        "HANDSHAKE.REQUEST": { target: "requested", actions: ["recordIntroduction", "stamp"] },
        "PEER.PENDING": { target: "pendingApproval", actions: ["recordIncoming", "stamp"] },
        "PEER.TRUSTED": { guard: "fresh", target: "trusted", actions: "stamp" },
      },
    },
  },
});

export type HandshakeMachine = typeof handshakeMachine;
export type HandshakeSnapshot = SnapshotFrom<HandshakeMachine>;

/** The top-level trust state of a snapshot (a command in flight counts as the state it started from). */
export function peerTrustState(snapshot: HandshakeSnapshot): PeerTrustState {
  const value = snapshot.value;
  const top = typeof value === "string" ? value : Object.keys(value)[0];
  return (PEER_STATES as readonly string[]).includes(top ?? "") ? (top as PeerTrustState) : "unknown";
}

/** The plain record to persist for this peer. */
export function toPeerState(snapshot: HandshakeSnapshot): PeerState {
  const { context } = snapshot;
  return {
    hostname: context.peer.hostname,
    nodeId: context.peer.nodeId,
    installationId: context.peer.installationId,
    state: peerTrustState(snapshot),
    introduction: context.introduction,
    justification: context.justification,
    announcedAt: context.announcedAt,
    updatedAt: context.updatedAt,
    assistantName: context.assistantName,
    humanName: context.humanName,
    key: context.key,
    offeredKey: context.offeredKey,
  };
}

/** The events that report what the transport shows about a peer (the peers loop's reading). */
export type HandshakeObservation = Extract<
  HandshakeEvent,
  { type: "PEER.SEEN" | "PEER.PENDING" | "PEER.TRUSTED" | "PEER.UNTRUSTED" | "PEER.KEY" | "PEER.KEY_CHANGED" }
>;

/**
 * An observation applied to a resting peer (one without an awake actor: its record is its snapshot) through the
 * machine's own transition, without spawning it. Returns the record it leads to, or null when the transition
 * would act (invoke a transport command, announce a request to the owner): then the peer's actor must be woken
 * to do it. This is what lets an account hold 10,000 trusted peers as records, and re-read their trust list,
 * without an actor each.
 */
export function observeResting(record: PeerState, event: HandshakeObservation): PeerState | null {
  // A peer first seen on the trust list (a cold start reads thousands at once): unknown + PEER.TRUSTED is trusted,
  // stamped, as the transition below gives (a test holds them equal), without its ~25 KB of garbage per peer.
  if (event.type === "PEER.TRUSTED" && record.state === "unknown" && record.updatedAt === null) {
    return {
      ...record,
      state: "trusted",
      updatedAt: event.at ?? null,
      key: record.key ?? null,
      offeredKey: record.offeredKey ?? null,
    };
  }
  return observeThroughMachine(record, event);
}

/** `observeResting` by the machine's own transition, always (see there). */
export function observeThroughMachine(record: PeerState, event: HandshakeObservation): PeerState | null {
  const peer = { hostname: record.hostname, nodeId: record.nodeId, installationId: record.installationId };
  const [resting] = initialTransition(handshakeMachine, { peer, initial: record });
  // Suspending announces to the parent, which a pure transition has not: the actor is woken to do it.
  if (
    event.type === "PEER.KEY_CHANGED" &&
    resting.matches("trusted") &&
    record.key != null &&
    event.key !== record.key
  ) {
    return null;
  }
  const [next, actions] = transition(handshakeMachine, resting, event);
  // Announcing is sent to the parent, which a pure transition has not: `markAnnounced` is how it shows.
  if (actions.length > 0 || !next.hasTag("settled") || next.context.announcedAt !== record.announcedAt) {
    return null;
  }
  return toPeerState(next);
}

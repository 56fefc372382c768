// One account, the root of its actor tree. Its states are the registry lifecycle: register when discoverable,
// heartbeat while online, re-register when the registry forgot us, back off when it is unreachable, deregister
// when going private or stopping. Its children do the rest, each a machine of its own:
//   daemon            invoked for transport "pilot": finds, starts and watches the Pilot daemon
//   inbox             the poll loop that reads the Pilot inbox files or the relay inbox
//   relayInbox        transport "auto" only: the poll loop that reads the relay inbox (inbox reads the Pilot files)
//   peers             the poll loop that reads pending handshake requests and the trust list
//   outbox            the poll loop that resends outgoing messages until the peer's receipt comes
//   visibility        re-reads a remote or scheduled visibility source on its own clock
//   handshake:<peer>  trust with that peer, awake while it has work (see below)
// Children report with the events they declare (DAEMON.*, POLL.CYCLE.*, VISIBILITY.READ, HANDSHAKE.ANNOUNCE,
// and each handshake's snapshot); the root keeps a plain table of its peers and routes what the peers loop
// observed to the handshakes.
//
// A peer's handshake rests as its record in the table (its persisted snapshot) and is woken, spawned from that
// record, when it has work: a command, or a reading that makes it act (announce a request). A reading that only
// moves a resting peer (trusted, untrusted, a new name) goes through the machine's own transition, with no actor;
// an awake handshake that settles without an error rests again. XState copies the children map on every spawn
// and stop, so 10,000 live children cost minutes to start and to stop; 10,000 resting records cost nothing. Pure: every I/O is a named actor or action provided by the composition root
// with `accountMachine.provide(...)`.
import { assign, emit, enqueueActions, fromPromise, setup } from "xstate";
import { type BackoffPolicy, backoffDelay } from "./backoff.js";
import { type DaemonInput, type DaemonParentEvent, daemonMachine } from "./daemon.machine.js";
import {
  type HandshakeCommand,
  type HandshakeEvent,
  type HandshakeInput,
  type HandshakeParentEvent,
  type HandshakeSnapshot,
  handshakeMachine,
  observeResting,
  type PeerState,
  toPeerState,
} from "./handshake.machine.js";
import {
  addsToRecord,
  findPeerKey,
  getPeer,
  handshakeId,
  indexPeers,
  newPeerRecord,
  type PeerIndex,
  type PeerTable,
  peerEntries,
  peerKeyOfChild,
  peerTableOf,
  samePeerState,
  withPeers,
} from "./peers.js";
import { type PollInput, pollMachine } from "./poll.machine.js";
import {
  type AgentMetadata,
  type PeerRef,
  type PeersObservation,
  type PlainError,
  peerKey,
  sameMetadata,
  toPlainError,
} from "./types.js";
import { type VisibilityInput, type VisibilityParentEvent, visibilityMachine } from "./visibility.machine.js";

/** "auto": Pilot first, the registry relay when Pilot to a peer fails (both inboxes read, one pipeline). */
export type AccountTransport = "pilot" | "relay" | "auto" | "none";

/** What the children are started with; a child without input is not started. */
export interface AccountChildrenInput {
  /** Transports "pilot" and "auto". */
  daemon?: DaemonInput;
  /** The inbox loop (Pilot files or the relay inbox); absent for transport "none". */
  inbox?: PollInput;
  /** Transport "auto" only: the relay inbox loop (`inbox` then reads the Pilot files). */
  relayInbox?: PollInput;
  /** The pending-requests and trust-list loop; absent for transport "none". */
  peers?: PollInput;
  /** The outbox loop (retries and resends, next: "later"); absent for transport "none". */
  outbox?: PollInput;
  /** A remote or scheduled visibility source; absent when visibility comes from the config. */
  visibility?: VisibilityInput;
}

export interface AccountMachineInput {
  accountId: string;
  discoverable: boolean;
  metadata: AgentMetadata;
  /** The id the registry gave this installation before (persisted), or null. */
  agentId: string | null;
  heartbeatIntervalMs?: number;
  maxHeartbeatFailures?: number;
  registerBackoff?: BackoffPolicy;
  deregisterTimeoutMs?: number;
  /** Default "none": registry lifecycle only, no children. */
  transport?: AccountTransport;
  children?: AccountChildrenInput;
  /** Persisted peers by key: each rests as its record until its handshake has work. */
  peers?: ReadonlyArray<readonly [key: string, record: PeerState]>;
}

export interface AccountContext {
  accountId: string;
  discoverable: boolean;
  metadata: AgentMetadata;
  agentId: string | null;
  heartbeatIntervalMs: number;
  maxHeartbeatFailures: number;
  registerBackoff: BackoffPolicy;
  deregisterTimeoutMs: number;
  /** Metadata changed since the registry last received it (sent with the next PATCH or registration). */
  metadataDirty: boolean;
  /** STOP arrived while a request was in flight: finish (bounded) and stop. */
  stopRequested: boolean;
  lastError: PlainError | null;
  /** The registry's `last_seen` from the last successful heartbeat. */
  lastHeartbeatAt: string | null;
  /** Consecutive failed heartbeats (reset by a successful heartbeat or registration). */
  heartbeatFailures: number;
  /** Consecutive failed registrations (reset by a successful one); drives the backoff. */
  registerAttempts: number;
  /** Delay of the pending registration retry while idle after a failure, else null. */
  nextRetryDelayMs: number | null;
  transport: AccountTransport;
  children: AccountChildrenInput;
  /** The last failure of each poll loop ("inbox", "peers"), cleared by its next good cycle. */
  loopErrors: Record<string, PlainError | null>;
  /** One plain record per peer (its handshake's snapshot, awake or resting), by peer key. */
  peers: PeerTable;
}

/** What a poll loop child reports (the root reads only where it came from, and what the peers loop saw). */
export type AccountLoopEvent =
  | { type: "POLL.CYCLE.DONE"; name: string; summary: { peers: PeersObservation | null } }
  | { type: "POLL.CYCLE.FAILED"; name: string; error: PlainError; retryInMs: number };

/** A child failed without handling it (its own machine's bug, never an outage: those are handled). */
export type ChildErrorEvent = { type: `xstate.error.actor.${string}`; error: unknown };

/** A handshake child's new snapshot (its `syncSnapshot`). */
export type HandshakeSnapshotEvent = { type: `xstate.snapshot.${string}`; snapshot: HandshakeSnapshot };

/** Announced to the runtime (`actor.on("peer.announced", ...)`): a peer asks for a handshake, once per peer. */
export type AccountEmitted =
  | { type: "peer.announced"; key: string }
  /** A trusted peer was suspended: a message came signed by another key (once per suspension). */
  | { type: "peer.key_changed"; key: string }
  /** The Pilot daemon is (again) ready: what waited for it (the outbox's queued messages) may go now. */
  | { type: "transport.ready" };

export type AccountEvent =
  | { type: "VISIBILITY.CHANGED"; discoverable: boolean }
  | { type: "METADATA.CHANGED"; metadata: AgentMetadata }
  | { type: "TRANSPORT.READY"; pilotNodeId: number | null; pilotAddress: string | null }
  | { type: "REGISTER.NOW" }
  | { type: "STOP" }
  // From the children:
  | DaemonParentEvent
  | AccountLoopEvent
  | VisibilityParentEvent
  | HandshakeParentEvent
  | HandshakeSnapshotEvent
  | ChildErrorEvent
  // From the runtime, for the children:
  /** An owner's or the agent's decision about a peer, for its handshake actor (spawned if new). */
  | { type: "PEER.COMMAND"; peer: PeerRef; command: HandshakeCommand }
  /**
   * Keys seen for peers: offered by a verified registry record or an unpinned peer's signed message, or (`changed`)
   * a message signed by another key than the pinned one.
   */
  | { type: "PEERS.KEYS"; keys: Array<{ peer: PeerRef; key: string; changed: boolean; at?: number }> }
  /** Pending requests and the trust list read outside the peers loop (an operator asked for them). */
  | { type: "PEERS.OBSERVED"; observation: PeersObservation }
  /** Something arrived or became readable: read the inbox now. */
  | { type: "INBOX.WAKE" }
  /** Read pending requests and the trust list now (an unknown sender wrote, an operator asked). */
  | { type: "PEERS.WAKE" }
  /** A message entered the outbox, or its next step moved earlier: run the outbox loop now. */
  | { type: "OUTBOX.WAKE" }
  /** Try the transport again now (Pilot: look for pilotctl, restart a failed daemon). */
  | { type: "TRANSPORT.RETRY" }
  /** Stop the transport children first (a managed daemon is stopped gracefully), before STOP. */
  | { type: "TRANSPORT.STOP" };

export interface RegisterAgentInput {
  metadata: AgentMetadata;
  agentId: string | null;
}
export interface RegisterAgentOutput {
  agentId: string;
}
export interface SendHeartbeatInput {
  agentId: string;
}
export interface SendHeartbeatOutput {
  lastSeen: string;
}
export interface UpdateAgentInput {
  agentId: string;
  metadata: AgentMetadata;
}
export interface UpdateAgentOutput {
  agentId: string;
}
export interface DeregisterAgentInput {
  agentId: string;
}
/** Params of the `persistAgentId` / `forgetAgentId` actions. */
export interface AgentIdParams {
  accountId: string;
  agentId: string;
}

export const ACCOUNT_DEFAULTS = {
  heartbeatIntervalMs: 60_000,
  maxHeartbeatFailures: 3,
  registerBackoff: { initialMs: 1_000, maxMs: 300_000, factor: 2 },
  deregisterTimeoutMs: 5_000,
} as const;

const notProvided = (name: string) => async (): Promise<never> => {
  throw {
    kind: "http",
    operation: name,
    message: `${name} is not wired: provide it with accountMachine.provide({ actors })`,
  } satisfies PlainError;
};

function mergeTransport(
  metadata: AgentMetadata,
  event: { pilotNodeId: number | null; pilotAddress: string | null },
): AgentMetadata {
  return { ...metadata, pilotNodeId: event.pilotNodeId, pilotAddress: event.pilotAddress };
}

/** The metadata an event proposes, or null when the event carries none. */
function proposedMetadata(context: AccountContext, event: AccountEvent): AgentMetadata | null {
  if (event.type === "METADATA.CHANGED") return event.metadata;
  if (event.type === "TRANSPORT.READY") return mergeTransport(context.metadata, event);
  return null;
}

export const accountMachine = setup({
  types: {
    context: {} as AccountContext,
    events: {} as AccountEvent,
    input: {} as AccountMachineInput,
    emitted: {} as AccountEmitted,
  },
  actors: {
    // The children: the real machines; the runtime provides their own actors (pilotctl, inbox readers).
    daemon: daemonMachine,
    inbox: pollMachine,
    relayInbox: pollMachine,
    peers: pollMachine,
    outbox: pollMachine,
    visibility: visibilityMachine,
    handshake: handshakeMachine,
    registerAgent: fromPromise<RegisterAgentOutput, RegisterAgentInput>(notProvided("registerAgent")),
    sendHeartbeat: fromPromise<SendHeartbeatOutput, SendHeartbeatInput>(notProvided("sendHeartbeat")),
    updateAgent: fromPromise<UpdateAgentOutput, UpdateAgentInput>(notProvided("updateAgent")),
    deregisterAgent: fromPromise<void, DeregisterAgentInput>(notProvided("deregisterAgent")),
  },
  actions: {
    // ---- the children ----
    spawnChildren: enqueueActions(({ context, enqueue }) => {
      const awake = createPeerRouter(context, {}, enqueue);
      const { daemon, inbox, relayInbox, peers, outbox, visibility } = context.children;
      if (daemon && hasChild(context, "daemon"))
        enqueue.spawnChild("daemon", { id: "daemon", input: daemon });
      if (inbox && hasChild(context, "inbox")) enqueue.spawnChild("inbox", { id: "inbox", input: inbox });
      if (relayInbox && hasChild(context, "relayInbox"))
        enqueue.spawnChild("relayInbox", { id: "relayInbox", input: relayInbox });
      if (peers && hasChild(context, "peers")) enqueue.spawnChild("peers", { id: "peers", input: peers });
      if (outbox && hasChild(context, "outbox"))
        enqueue.spawnChild("outbox", { id: "outbox", input: outbox });
      if (visibility) enqueue.spawnChild("visibility", { id: "visibility", input: visibility });
      // Resting peers stay records; a request persisted before its announcement wakes to announce it.
      for (const [key, record] of peerEntries(context.peers)) {
        if (record.state === "pendingApproval" && record.announcedAt === null) awake.wake(key);
      }
    }),
    announceTransportReady: emit({ type: "transport.ready" as const }),
    announceNodeInfo: enqueueActions(({ event, enqueue }) => {
      if (event.type !== "DAEMON.READY") return;
      enqueue.raise({ type: "TRANSPORT.READY", pilotNodeId: event.nodeId, pilotAddress: event.address });
    }),
    recordLoop: assign({
      loopErrors: ({ context, event }) => {
        if (event.type === "POLL.CYCLE.DONE") return { ...context.loopErrors, [event.name]: null };
        if (event.type === "POLL.CYCLE.FAILED") return { ...context.loopErrors, [event.name]: event.error };
        return context.loopErrors;
      },
    }),
    // What the peers loop (or an operator's read) saw goes to each peer's handshake (see the header).
    routePeers: enqueueActions(({ context, event, enqueue, self }) => {
      const observation =
        event.type === "PEERS.OBSERVED"
          ? event.observation
          : event.type === "POLL.CYCLE.DONE"
            ? event.summary.peers
            : null;
      if (!observation) return;
      const router = createPeerRouter(context, self.getSnapshot().children, enqueue);
      const at = observation.at;
      for (const request of observation.pending) {
        const names = { assistantName: request.assistantName, humanName: request.humanName };
        const key = router.keyOf(request.peer, names);
        router.deliver(key, { type: "PEER.SEEN", peer: request.peer, ...names });
        if (router.record(key)?.state === "trusted") continue;
        router.deliver(key, {
          type: "PEER.PENDING",
          justification: request.justification,
          receivedAt: request.receivedAt,
          at,
          ...names,
        });
      }
      for (const offer of observation.keys ?? []) {
        router.deliver(router.keyOf(offer.peer), { type: "PEER.KEY", key: offer.key });
      }
      if (observation.trusted !== null) {
        const trusted = new Set<string>();
        for (const ref of observation.trusted) {
          const key = router.keyOf(ref);
          trusted.add(key);
          if (addsToRecord(router.record(key)!, ref)) router.deliver(key, { type: "PEER.SEEN", peer: ref });
          if (router.record(key)?.state !== "trusted") router.deliver(key, { type: "PEER.TRUSTED", at });
        }
        for (const [key, record] of peerEntries(context.peers)) {
          if ((record.state === "trusted" || record.state === "suspended") && !trusted.has(key)) {
            router.deliver(key, { type: "PEER.UNTRUSTED", at });
          }
        }
      }
      router.commit();
    }),
    routeKeys: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== "PEERS.KEYS") return;
      const router = createPeerRouter(context, self.getSnapshot().children, enqueue);
      for (const seen of event.keys) {
        const key = router.keyOf(seen.peer);
        router.deliver(
          key,
          seen.changed
            ? { type: "PEER.KEY_CHANGED", key: seen.key, ...(seen.at === undefined ? {} : { at: seen.at }) }
            : { type: "PEER.KEY", key: seen.key },
        );
      }
      router.commit();
    }),
    commandPeer: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== "PEER.COMMAND") return;
      const router = createPeerRouter(context, self.getSnapshot().children, enqueue);
      const key = router.keyOf(event.peer);
      if (addsToRecord(router.record(key)!, event.peer)) {
        router.deliver(key, { type: "PEER.SEEN", peer: event.peer });
      }
      router.wake(key);
      router.deliver(key, event.command);
      router.commit();
    }),
    recordChildFailure: assign({
      loopErrors: ({ context, event }) => {
        if (!event.type.startsWith("xstate.error.actor.") || !("error" in event)) return context.loopErrors;
        const id = event.type.slice("xstate.error.actor.".length);
        return { ...context.loopErrors, [id]: toPlainError(event.error, id) };
      },
    }),
    // An awake handshake's new snapshot becomes its record; settled without an error, it rests again.
    recordPeerSnapshot: enqueueActions(({ context, event, enqueue, self }) => {
      if (!("snapshot" in event)) return;
      const key = peerKeyOfChild(event.type.slice("xstate.snapshot.".length));
      if (key === null) return;
      // Events queue behind each other: the child's snapshot now is fresher than the one this event carries.
      const child = self.getSnapshot().children[handshakeId(key)];
      const snapshot = (child?.getSnapshot() as HandshakeSnapshot | undefined) ?? event.snapshot;
      const record = toPeerState(snapshot);
      if (!samePeerState(getPeer(context.peers, key), record)) {
        enqueue.assign({ peers: withPeers(context.peers, [[key, record]]) });
      }
      if (
        child &&
        snapshot.status === "active" &&
        snapshot.hasTag("settled") &&
        !snapshot.context.lastError
      ) {
        enqueue.stopChild(child);
      }
    }),
    announcePeer: emit(({ context, event }) => ({
      type: "peer.announced" as const,
      key:
        event.type === "HANDSHAKE.ANNOUNCE"
          ? (findPeerKey(context.peers, event.peer) ?? peerKey(event.peer))
          : "",
    })),
    announceKeyChange: emit(({ context, event }) => ({
      type: "peer.key_changed" as const,
      key:
        event.type === "HANDSHAKE.KEY_CHANGED"
          ? (findPeerKey(context.peers, event.peer) ?? peerKey(event.peer))
          : "",
    })),
    wakeInbox: enqueueActions(({ context, enqueue }) => {
      if (hasChild(context, "inbox")) enqueue.sendTo("inbox", { type: "INBOX.WAKE" });
      if (hasChild(context, "relayInbox")) enqueue.sendTo("relayInbox", { type: "INBOX.WAKE" });
      if (hasChild(context, "peers")) enqueue.sendTo("peers", { type: "INBOX.WAKE" });
    }),
    wakePeers: enqueueActions(({ context, enqueue }) => {
      if (hasChild(context, "peers")) enqueue.sendTo("peers", { type: "INBOX.WAKE" });
    }),
    wakeOutbox: enqueueActions(({ context, enqueue }) => {
      if (hasChild(context, "outbox")) enqueue.sendTo("outbox", { type: "INBOX.WAKE" });
    }),
    retryTransport: enqueueActions(({ context, enqueue }) => {
      if (hasChild(context, "daemon")) enqueue.sendTo("daemon", { type: "DAEMON.RETRY" });
    }),
    stopTransport: enqueueActions(({ context, enqueue }) => {
      if (hasChild(context, "inbox")) enqueue.sendTo("inbox", { type: "STOP" });
      if (hasChild(context, "relayInbox")) enqueue.sendTo("relayInbox", { type: "STOP" });
      if (hasChild(context, "peers")) enqueue.sendTo("peers", { type: "STOP" });
      if (hasChild(context, "outbox")) enqueue.sendTo("outbox", { type: "STOP" });
      if (hasChild(context, "daemon")) enqueue.sendTo("daemon", { type: "STOP" });
    }),
    // Visibility read again on its own clock: the same events an operator's refresh sends.
    applyVisibility: enqueueActions(({ event, enqueue }) => {
      if (event.type !== "VISIBILITY.READ") return;
      enqueue.raise({ type: "METADATA.CHANGED", metadata: event.metadata });
      enqueue.raise({ type: "VISIBILITY.CHANGED", discoverable: event.discoverable });
    }),

    // ---- the registry lifecycle ----
    // Side effects owned by the composition root (persist the id in plugin state); no-ops until provided.
    persistAgentId: (_, _params: AgentIdParams) => {},
    forgetAgentId: (_, _params: AgentIdParams) => {},
    storeMetadata: assign({
      metadata: ({ context, event }) => proposedMetadata(context, event) ?? context.metadata,
    }),
    markDirty: assign({ metadataDirty: true }),
    recordHeartbeatError: assign({
      heartbeatFailures: ({ context }) => context.heartbeatFailures + 1,
      lastError: ({ event }) => toPlainError("error" in event ? event.error : event, "heartbeat"),
    }),
    recordRegistration: assign({
      agentId: ({ context, event }) =>
        ("output" in event ? outputAgentId(event.output) : null) ?? context.agentId,
      registerAttempts: 0,
      nextRetryDelayMs: null,
      heartbeatFailures: 0,
      lastError: null,
    }),
    recordRegisterError: assign(({ context, event }) => {
      const attempts = context.registerAttempts + 1;
      return {
        registerAttempts: attempts,
        nextRetryDelayMs: backoffDelay(context.registerBackoff, attempts, context.metadata.installationId),
        lastError: registerError(context, "error" in event ? event.error : event),
      };
    }),
  },
  delays: {
    heartbeatInterval: ({ context }) => context.heartbeatIntervalMs,
    registerRetry: ({ context }) => context.nextRetryDelayMs ?? 0,
    deregisterTimeout: ({ context }) => context.deregisterTimeoutMs,
  },
  guards: {
    isDiscoverable: ({ context }) => context.discoverable,
    isStopRequested: ({ context }) => context.stopRequested,
    hasAgentId: ({ context }) => context.agentId !== null,
    isMetadataDirty: ({ context }) => context.metadataDirty,
    /** The event proposes metadata different from what we hold ("patch only if it differs"). */
    metadataDiffers: ({ context, event }) => {
      const next = proposedMetadata(context, event);
      return next !== null && !sameMetadata(next, context.metadata);
    },
    becomesDiscoverable: ({ context, event }) =>
      event.type === "VISIBILITY.CHANGED" && event.discoverable && !context.discoverable,
    becomesPrivate: ({ context, event }) =>
      event.type === "VISIBILITY.CHANGED" && !event.discoverable && context.discoverable,
    /** The registry no longer knows our id: re-register at once. */
    isNotFound: ({ event }) => "error" in event && toPlainError(event.error, "registry").kind === "not_found",
    /** This failure is the last one tolerated in a row. */
    isLastHeartbeatFailure: ({ context }) => context.heartbeatFailures + 1 >= context.maxHeartbeatFailures,
  },
}).createMachine({
  id: "account",
  context: ({ input }) => ({
    accountId: input.accountId,
    discoverable: input.discoverable,
    metadata: input.metadata,
    agentId: input.agentId,
    heartbeatIntervalMs: input.heartbeatIntervalMs ?? ACCOUNT_DEFAULTS.heartbeatIntervalMs,
    maxHeartbeatFailures: input.maxHeartbeatFailures ?? ACCOUNT_DEFAULTS.maxHeartbeatFailures,
    registerBackoff: input.registerBackoff ?? { ...ACCOUNT_DEFAULTS.registerBackoff },
    deregisterTimeoutMs: input.deregisterTimeoutMs ?? ACCOUNT_DEFAULTS.deregisterTimeoutMs,
    metadataDirty: false,
    stopRequested: false,
    lastError: null,
    lastHeartbeatAt: null,
    heartbeatFailures: 0,
    registerAttempts: 0,
    nextRetryDelayMs: null,
    transport: input.transport ?? "none",
    children: input.children ?? {},
    loopErrors: {},
    peers: peerTableOf(input.peers ?? []),
  }),
  entry: "spawnChildren",
  // The children's reports and the runtime's requests for them, whatever the lifecycle state.
  on: {
    // DAEMON.LOST and DAEMON.UNAVAILABLE need nothing here: status reads why from the daemon's own snapshot.
    "DAEMON.READY": { actions: ["announceNodeInfo", "wakeInbox", "announceTransportReady"] },
    "POLL.CYCLE.DONE": { actions: ["recordLoop", "routePeers"] },
    "POLL.CYCLE.FAILED": { actions: "recordLoop" },
    "PEERS.OBSERVED": { actions: "routePeers" },
    "PEER.COMMAND": { actions: "commandPeer" },
    "HANDSHAKE.ANNOUNCE": { actions: "announcePeer" },
    "PEERS.KEYS": { actions: "routeKeys" },
    "HANDSHAKE.KEY_CHANGED": { actions: "announceKeyChange" },
    "xstate.snapshot.*": { actions: "recordPeerSnapshot" },
    "VISIBILITY.READ": { actions: "applyVisibility" },
    "INBOX.WAKE": { actions: "wakeInbox" },
    "PEERS.WAKE": { actions: "wakePeers" },
    "OUTBOX.WAKE": { actions: "wakeOutbox" },
    "TRANSPORT.RETRY": { actions: "retryTransport" },
    "TRANSPORT.STOP": { actions: "stopTransport" },
    // A child that failed in a way it does not handle itself (a bug): noted, never fatal to the account.
    "xstate.error.actor.*": { actions: "recordChildFailure" },
  },
  initial: "starting",
  states: {
    // Transient: decide where a fresh account begins.
    starting: {
      always: [{ guard: "isDiscoverable", target: "registering" }, { target: "private" }],
    },

    private: {
      tags: ["settled"],
      on: {
        "VISIBILITY.CHANGED": [
          {
            guard: "becomesDiscoverable",
            target: "registering",
            actions: assign({ discoverable: true, registerAttempts: 0, nextRetryDelayMs: null }),
          },
        ],
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: "storeMetadata" },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: "storeMetadata" },
        STOP: { target: "stopped" },
      },
    },

    // Discoverable, not registered: waiting out the backoff after a failed registration.
    idle: {
      tags: ["settled"],
      after: { registerRetry: { target: "registering" } },
      on: {
        "REGISTER.NOW": { target: "registering" },
        "VISIBILITY.CHANGED": {
          guard: "becomesPrivate",
          target: "private",
          actions: assign({ discoverable: false, nextRetryDelayMs: null }),
        },
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: "storeMetadata" },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: "storeMetadata" },
        STOP: { target: "stopped" },
      },
    },

    registering: {
      tags: ["busy"],
      entry: assign({ metadataDirty: false, nextRetryDelayMs: null }),
      invoke: {
        id: "registerAgent",
        src: "registerAgent",
        input: ({ context }) => ({ metadata: context.metadata, agentId: context.agentId }),
        onDone: {
          target: "#account.registered",
          actions: [
            "recordRegistration",
            { type: "persistAgentId", params: ({ context }) => agentIdParams(context) },
          ],
        },
        onError: { target: "#account.registerFailed", actions: "recordRegisterError" },
      },
      on: {
        // Let the registration finish, then deregister: aborting could leave a record we do not know about.
        "VISIBILITY.CHANGED": { actions: assign({ discoverable: ({ event }) => event.discoverable }) },
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
        STOP: [
          { guard: "hasAgentId", target: "deregistering", actions: assign({ stopRequested: true }) },
          { target: "stopped" },
        ],
      },
    },

    // Same request as registering (full metadata, known id), entered because the registry lost us or
    // heartbeats kept failing; a separate state so status shows why.
    reregistering: {
      tags: ["busy"],
      entry: assign({ metadataDirty: false, nextRetryDelayMs: null }),
      invoke: {
        id: "registerAgent",
        src: "registerAgent",
        input: ({ context }) => ({ metadata: context.metadata, agentId: context.agentId }),
        onDone: {
          target: "#account.registered",
          actions: [
            "recordRegistration",
            { type: "persistAgentId", params: ({ context }) => agentIdParams(context) },
          ],
        },
        onError: { target: "#account.registerFailed", actions: "recordRegisterError" },
      },
      on: {
        "VISIBILITY.CHANGED": { actions: assign({ discoverable: ({ event }) => event.discoverable }) },
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
        STOP: [
          { guard: "hasAgentId", target: "deregistering", actions: assign({ stopRequested: true }) },
          { target: "stopped" },
        ],
      },
    },

    // Transient: a registration succeeded (the id is in context and persisted); route by what happened meanwhile.
    // The relay inbox is read with the token this registration returned: read it now.
    registered: {
      entry: "wakeInbox",
      always: [{ guard: "isDiscoverable", target: "online" }, { target: "deregistering" }],
    },

    // Transient: a registration failed (lastError set); back off unless we should not be registered anyway.
    registerFailed: {
      always: [
        { guard: "isDiscoverable", target: "idle" },
        { target: "private", actions: assign({ nextRetryDelayMs: null }) },
      ],
    },

    online: {
      tags: ["settled"],
      initial: "waiting",
      on: {
        "VISIBILITY.CHANGED": {
          guard: "becomesPrivate",
          target: "deregistering",
          actions: assign({ discoverable: false }),
        },
        STOP: { target: "deregistering", actions: assign({ stopRequested: true }) },
      },
      states: {
        waiting: {
          always: { guard: "isMetadataDirty", target: "updating" },
          after: { heartbeatInterval: { target: "beating" } },
          on: {
            "METADATA.CHANGED": { guard: "metadataDiffers", target: "updating", actions: "storeMetadata" },
            "TRANSPORT.READY": { guard: "metadataDiffers", target: "updating", actions: "storeMetadata" },
          },
        },
        beating: {
          invoke: {
            id: "sendHeartbeat",
            src: "sendHeartbeat",
            input: ({ context }) => ({ agentId: context.agentId ?? "" }),
            onDone: {
              target: "waiting",
              actions: assign({
                lastHeartbeatAt: ({ event }) => event.output.lastSeen,
                heartbeatFailures: 0,
                lastError: null,
              }),
            },
            onError: [
              { guard: "isNotFound", target: "#account.reregistering", actions: "recordHeartbeatError" },
              {
                guard: "isLastHeartbeatFailure",
                target: "#account.reregistering",
                actions: "recordHeartbeatError",
              },
              { target: "waiting", actions: "recordHeartbeatError" },
            ],
          },
          on: {
            // Never a second request while the heartbeat is in flight: note it, PATCH after.
            "METADATA.CHANGED": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
            "TRANSPORT.READY": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
          },
        },
        updating: {
          entry: assign({ metadataDirty: false }),
          invoke: {
            id: "updateAgent",
            src: "updateAgent",
            input: ({ context }) => ({ agentId: context.agentId ?? "", metadata: context.metadata }),
            onDone: {
              target: "waiting",
              actions: [
                assign({
                  agentId: ({ context, event }) => outputAgentId(event.output) ?? context.agentId,
                  lastError: null,
                }),
                { type: "persistAgentId", params: ({ context }) => agentIdParams(context) },
              ],
            },
            onError: [
              {
                guard: "isNotFound",
                target: "#account.reregistering",
                actions: assign({ lastError: ({ event }) => toPlainError(event.error, "update") }),
              },
              {
                // Retry with the next heartbeat's slot, never in a tight loop.
                target: "retryingUpdate",
                actions: assign({ lastError: ({ event }) => toPlainError(event.error, "update") }),
              },
            ],
          },
          on: {
            "METADATA.CHANGED": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
            "TRANSPORT.READY": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
          },
        },
        // An update failed: heartbeat on schedule, then try the update again.
        retryingUpdate: {
          after: { heartbeatInterval: { target: "beating", actions: "markDirty" } },
          on: {
            "METADATA.CHANGED": { guard: "metadataDiffers", target: "updating", actions: "storeMetadata" },
            "TRANSPORT.READY": { guard: "metadataDiffers", target: "updating", actions: "storeMetadata" },
          },
        },
      },
    },

    // Entered only with a known agent id (every transition here comes from a registered state).
    deregistering: {
      tags: ["busy"],
      invoke: {
        id: "deregisterAgent",
        src: "deregisterAgent",
        input: ({ context }) => ({ agentId: context.agentId ?? "" }),
        onDone: {
          target: "deregistered",
          actions: [
            { type: "forgetAgentId", params: ({ context }) => agentIdParams(context) },
            assign({ agentId: null }),
          ],
        },
        // A failed DELETE never blocks: the registry expires the record after its TTL.
        onError: {
          target: "deregistered",
          actions: assign({ lastError: ({ event }) => toPlainError(event.error, "deregister") }),
        },
      },
      after: {
        deregisterTimeout: {
          target: "deregistered",
          actions: assign({
            lastError: ({ context }) => ({
              kind: "timeout" as const,
              operation: "deregister",
              message: `the registry did not confirm deregistration within ${context.deregisterTimeoutMs} ms; it will drop the agent when its heartbeat expires`,
            }),
          }),
        },
      },
      on: {
        "VISIBILITY.CHANGED": { actions: assign({ discoverable: ({ event }) => event.discoverable }) },
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: "storeMetadata" },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: "storeMetadata" },
        STOP: { actions: assign({ stopRequested: true }) },
      },
    },

    // Transient: the DELETE ended (or timed out); stop, or follow visibility.
    deregistered: {
      entry: assign({ heartbeatFailures: 0 }),
      always: [
        { guard: "isStopRequested", target: "stopped" },
        {
          guard: "isDiscoverable",
          target: "registering",
          actions: assign({ registerAttempts: 0 }),
        },
        { target: "private" },
      ],
    },

    stopped: { type: "final", tags: ["settled"] },
  },
});

/** Is this transport child part of the tree (started with the account, by its input and the transport)? */
function hasChild(
  context: AccountContext,
  id: "daemon" | "inbox" | "relayInbox" | "peers" | "outbox",
): boolean {
  if (context.transport === "none" || !context.children[id]) return false;
  if (id === "daemon") return context.transport === "pilot" || context.transport === "auto";
  if (id === "relayInbox") return context.transport === "auto";
  return true;
}

function refOf(record: PeerState): PeerRef {
  return { hostname: record.hostname, nodeId: record.nodeId, installationId: record.installationId };
}

/** What the router enqueues (a structural slice of `enqueueActions`' enqueuer). */
interface PeerEnqueue {
  spawnChild(src: "handshake", options: { id: string; syncSnapshot: true; input: HandshakeInput }): void;
  sendTo(to: string, event: HandshakeEvent): void;
  assign(values: { peers: PeerTable }): void;
}

/**
 * Routes events to peers within one action: to an awake handshake as an event; to a resting one through
 * `observeResting` when the event is a reading it can take without acting; else it wakes the handshake (spawned
 * from its record) and sends the event. `commit()` writes the records that changed or were added, once.
 */
function createPeerRouter(context: AccountContext, children: Record<string, unknown>, enqueue: PeerEnqueue) {
  // Built on the first look-up (a command or a reading), once for all the peers it names.
  let index: PeerIndex | null = null;
  const updates = new Map<string, PeerState>();
  const woken = new Set<string>();
  const record = (key: string) => updates.get(key) ?? getPeer(context.peers, key);
  const isAwake = (key: string) => woken.has(key) || children[handshakeId(key)] !== undefined;
  const wake = (key: string) => {
    const current = record(key);
    if (!current || isAwake(key)) return;
    woken.add(key);
    enqueue.spawnChild("handshake", {
      id: handshakeId(key),
      syncSnapshot: true,
      input: { peer: refOf(current), initial: current },
    });
  };
  return {
    record,
    wake,
    /** The peer's key; a peer not seen before gets a new record (with the names it gave). */
    keyOf(ref: PeerRef, names?: { assistantName: string | null; humanName: string | null }): string {
      index ??= indexPeers(context.peers);
      const key = index.find(ref) ?? peerKey(ref);
      if (!record(key)) {
        const fresh = { ...newPeerRecord(ref), ...names };
        updates.set(key, fresh);
        index.add(key, fresh);
      }
      return key;
    },
    deliver(key: string, event: HandshakeEvent) {
      const current = record(key);
      if (!current) return;
      if (!isAwake(key) && event.type.startsWith("PEER.")) {
        const next = observeResting(current, event as Extract<HandshakeEvent, { type: `PEER.${string}` }>);
        if (next) {
          if (!samePeerState(current, next)) updates.set(key, next);
          return;
        }
      }
      wake(key);
      enqueue.sendTo(handshakeId(key), event);
    },
    commit() {
      if (updates.size > 0) enqueue.assign({ peers: withPeers(context.peers, updates) });
    },
  };
}

function outputAgentId(output: unknown): string | null {
  const value =
    typeof output === "object" && output !== null ? (output as { agentId?: unknown }).agentId : null;
  return typeof value === "string" && value.length > 0 ? value : null;
}

/** Registration failures as users should read them; a hostname conflict says what to change. */
function registerError(context: AccountContext, reason: unknown): PlainError {
  const error = toPlainError(reason, "register");
  // A message that already names our hostname was written for users by the composition root (it knows the
  // registry's release details); keep it.
  if (error.kind !== "conflict" || error.message.startsWith(`hostname "${context.metadata.hostname}"`))
    return error;
  return {
    ...error,
    message: `hostname "${context.metadata.hostname}" is held by another installation that is online; set a different hostname for account "${context.accountId}" or stop the other installation (retrying with backoff)`,
  };
}

function agentIdParams(context: AccountContext): AgentIdParams {
  return { accountId: context.accountId, agentId: context.agentId ?? "" };
}
export type AccountMachine = typeof accountMachine;

// One account's view of its peers: registry search, per-peer handshake actors (src/machines/handshake.machine.ts)
// bound to the configured transport, outbound messages, and reconciliation of pending requests and trust.
// Implements AccountNetwork for the agent_network tool and the gateway methods.
import { join } from "node:path";
import { type Actor, createActor, fromPromise, type InspectionEvent } from "xstate";
import { z } from "zod";
import type { RegistryClient } from "../adapters/registry/client.js";
import type { AgentRecord } from "../adapters/registry/types.js";
import { readJsonFile, writeJsonAtomic } from "../adapters/state/json-file.js";
import { createEnvelope } from "../adapters/transport/envelope.js";
import {
  type PeerRef,
  type PendingTrustRequest,
  type Transport,
  TransportError,
} from "../adapters/transport/transport.js";
import type { ResolvedAccount } from "../config.js";
import {
  type HandshakeSnapshot,
  handshakeMachine,
  PEER_STATES,
  type PeerState,
  peerTrustState,
  toPeerState,
} from "../machines/handshake.machine.js";
import {
  type AccountNetwork,
  type InboxReport,
  type NetworkCounters,
  NetworkError,
  type PeerView,
} from "./account-network.js";
import type { RuntimeLog } from "./account-runtime.js";

export interface PeerNetworkOptions {
  account: ResolvedAccount & { hostname: string };
  registry: RegistryClient;
  stateDir: string;
  log: RuntimeLog;
  /** The transport, once it is usable; null with `unavailableReason()` saying why. */
  transport: () => Transport | null;
  unavailableReason: () => string | null;
  /** An incoming handshake request, announced exactly once per peer (persisted). */
  onAnnounce?: (peer: PeerView) => void;
  inbox?: () => InboxReport;
  inboundCounters?: () => Omit<NetworkCounters, "sent" | "lastOutboundAt">;
  inspect?: (event: InspectionEvent) => void;
  /** A deliberate message (owner or tool) to this peer: resets its auto-reply budget. */
  onDeliberateSend?: (hostname: string) => void;
}

export interface PeerNetwork extends AccountNetwork {
  /** Pending requests and the trust list from the transport, fed to the handshake actors. */
  reconcile(): Promise<void>;
  /** Is this sender trusted right now (inbound admission)? */
  isTrusted(peer: PeerRef): boolean;
  /** Hostname of a peer known by node id or installation id, if any. */
  knownHostname(peer: PeerRef): string | null;
  /** The agent's automatic reply to a peer's message (does not reset the reply budget). */
  sendReply(hostname: string, text: string): Promise<{ messageId: string }>;
  /** The peer's handshake introduction (their text, untrusted), if one is known. */
  introductionFor(hostname: string): string | null;
  noteOutbound(): void;
  stop(): void;
}

const peerRecordSchema = z.object({
  hostname: z.string().nullable(),
  nodeId: z.number().nullable(),
  installationId: z.string().nullable().default(null),
  state: z.enum(PEER_STATES),
  introduction: z.string().nullable().default(null),
  justification: z.string().nullable().optional(),
  assistantName: z.string().nullable().default(null),
  humanName: z.string().nullable().default(null),
  announcedAt: z.number().nullable().default(null),
  updatedAt: z.number().nullable().optional(),
});
type PeerRecord = z.infer<typeof peerRecordSchema>;
const peersFileSchema = z.object({ peers: z.array(peerRecordSchema).default([]) });

interface PeerEntry {
  ref: PeerRef;
  assistantName: string | null;
  humanName: string | null;
  actor: Actor<typeof handshakeMachine>;
}

function peerKey(ref: PeerRef): string {
  if (ref.hostname) return `h:${ref.hostname}`;
  if (ref.nodeId !== null) return `n:${ref.nodeId}`;
  return `i:${ref.installationId}`;
}

function nodeIdOf(record: AgentRecord): number | null {
  if (record.pilotNodeId === null) return null;
  const id = Number(record.pilotNodeId);
  return Number.isSafeInteger(id) ? id : null;
}

function toError(error: unknown, operation: string): never {
  if (error instanceof NetworkError) throw error;
  if (error instanceof TransportError) {
    const code =
      error.code === "not_trusted" ? "NOT_TRUSTED" : error.code === "peer_unknown" ? "NOT_FOUND" : "FAILED";
    throw new NetworkError(code, error.message, { cause: error });
  }
  throw new NetworkError("FAILED", `${operation} failed: ${(error as Error)?.message ?? String(error)}`, {
    cause: error,
  });
}

export function createPeerNetwork(options: PeerNetworkOptions): PeerNetwork {
  const { account, registry, log } = options;
  const file = join(options.stateDir, "peers.json");
  const entries = new Map<string, PeerEntry>();
  let sent = 0;
  let lastOutboundAt: number | null = null;
  let stopped = false;

  const requireTransport = (): Transport => {
    const transport = options.transport();
    if (!transport) {
      throw new NetworkError(
        account.transport === "none" ? "NO_TRANSPORT" : "TRANSPORT_UNAVAILABLE",
        options.unavailableReason() ??
          'Messaging is not available for this account (transport "none"); set transport to pilot or relay',
      );
    }
    return transport;
  };

  const fullRef = (ref: { hostname: string | null; nodeId: number | null }): PeerRef => {
    const entry =
      (ref.hostname && entryNamed(ref.hostname)) || (ref.nodeId !== null && findByNode(ref.nodeId)) || null;
    return entry ? entry.ref : { hostname: ref.hostname, nodeId: ref.nodeId, installationId: null };
  };

  const findByNode = (nodeId: number) => [...entries.values()].find((e) => e.ref.nodeId === nodeId);

  /**
   * The entry a hostname names: its own, or, for the `node-<id>` name given to a peer the registry does not know
   * (see fallbackHostname), the entry of that node id. Without this, replies to such a peer would find no trust.
   */
  const entryNamed = (hostname: string): PeerEntry | undefined => {
    const own = entries.get(`h:${hostname}`);
    if (own) return own;
    const node = /^node-(\d+)$/.exec(hostname)?.[1];
    return node === undefined ? undefined : findByNode(Number(node));
  };

  const persist = () => {
    if (stopped) return;
    const peers: PeerRecord[] = [...entries.values()].map((entry) => ({
      ...toPeerState(entry.actor.getSnapshot()),
      installationId: entry.ref.installationId,
      assistantName: entry.assistantName,
      humanName: entry.humanName,
    }));
    try {
      writeJsonAtomic(file, { peers });
    } catch (error) {
      log.warn(`agent-registry: ${account.accountId}: cannot save peers: ${(error as Error).message}`);
    }
  };

  const view = (entry: PeerEntry): PeerView => {
    const snapshot = entry.actor.getSnapshot();
    const state = toPeerState(snapshot);
    return {
      hostname: entry.ref.hostname,
      nodeId: entry.ref.nodeId,
      installationId: entry.ref.installationId,
      state: peerTrustState(snapshot),
      introduction:
        state.state === "pendingApproval" ? (state.justification ?? null) : (state.introduction ?? null),
      assistantName: entry.assistantName,
      humanName: entry.humanName,
      updatedAt: state.updatedAt ? new Date(state.updatedAt).toISOString() : null,
    };
  };

  const machine = handshakeMachine.provide({
    actors: {
      sendHandshake: fromPromise(async ({ input }) => {
        const ref = fullRef(input.peer);
        await requireTransport().requestTrust(ref, input.introduction);
        return { nodeId: ref.nodeId };
      }),
      approvePeer: fromPromise(async ({ input }) => requireTransport().approve(fullRef(input.peer))),
      rejectPeer: fromPromise(async ({ input }) =>
        requireTransport().reject(fullRef(input.peer), input.reason ?? undefined),
      ),
      untrustPeer: fromPromise(async ({ input }) => requireTransport().untrust(fullRef(input.peer))),
    },
    actions: {
      announceRequest: ({ context }) => {
        const entry = entries.get(peerKey(fullRef(context.peer)));
        if (entry) options.onAnnounce?.(view(entry));
      },
    },
  });

  const entryFor = (ref: PeerRef, initial?: PeerRecord): PeerEntry => {
    const key = peerKey(ref);
    const existing = entries.get(key);
    if (existing) {
      existing.ref = {
        hostname: existing.ref.hostname ?? ref.hostname,
        nodeId: existing.ref.nodeId ?? ref.nodeId,
        // The newer relay id wins: peers.json written before the registry had peer ids holds the peer's old
        // installation id, which trust lists and inbound senders (now peer ids) would never match.
        installationId: ref.installationId ?? existing.ref.installationId,
      };
      return existing;
    }
    const persisted: PeerState | undefined = initial
      ? {
          hostname: initial.hostname,
          nodeId: initial.nodeId,
          state: initial.state,
          introduction: initial.introduction,
          justification: initial.justification ?? null,
          announcedAt: initial.announcedAt,
          updatedAt: initial.updatedAt ?? null,
        }
      : undefined;
    const actor = createActor(machine, {
      id: `handshake:${ref.hostname ?? ref.nodeId ?? ref.installationId}`,
      systemId: `handshake:${account.accountId}:${key}`,
      input: {
        peer: { hostname: ref.hostname, nodeId: ref.nodeId },
        ...(persisted ? { initial: persisted } : {}),
      },
      ...(options.inspect ? { inspect: options.inspect } : {}),
    });
    const entry: PeerEntry = {
      ref,
      assistantName: initial?.assistantName ?? null,
      humanName: initial?.humanName ?? null,
      actor,
    };
    entries.set(key, entry);
    actor.subscribe({
      next: () => persist(),
      error: (error) => log.error(`agent-registry: handshake actor ${key} failed: ${String(error)}`),
    });
    actor.start();
    return entry;
  };

  // Restore persisted peers: announcements already made are not made again.
  for (const record of readJsonFile(file, peersFileSchema, { peers: [] }).peers) {
    entryFor(
      { hostname: record.hostname, nodeId: record.nodeId, installationId: record.installationId },
      record,
    );
  }

  /** Waits until the peer's actor has no transport call in flight; returns its last error, if any. */
  const settle = (entry: PeerEntry): Promise<HandshakeSnapshot> =>
    new Promise((resolve) => {
      const check = (snapshot: HandshakeSnapshot) => Object.keys(snapshot.children).length === 0;
      const current = entry.actor.getSnapshot();
      if (check(current)) return resolve(current);
      const sub = entry.actor.subscribe((snapshot) => {
        if (check(snapshot)) {
          sub.unsubscribe();
          resolve(snapshot);
        }
      });
    });

  const resolvePeerRef = async (hostname: string): Promise<PeerRef> => {
    const known = entryNamed(hostname);
    let record: AgentRecord | null = null;
    try {
      record = await registry.byHostname(hostname);
    } catch (error) {
      if (known) return known.ref;
      throw new NetworkError(
        "FAILED",
        `Cannot look up "${hostname}" in the registry: ${(error as Error).message}`,
      );
    }
    if (!record) {
      if (known) return known.ref;
      throw new NetworkError(
        "NOT_FOUND",
        `No online agent is registered as "${hostname}"; use action "search" to find the right hostname`,
      );
    }
    return { hostname: record.hostname, nodeId: nodeIdOf(record), installationId: record.installationId };
  };

  /** hostname, node id or assistant name, case-insensitive. */
  const findPeer = (ref: string): PeerEntry | undefined => {
    const needle = ref.trim().toLowerCase();
    const asNumber = /^\d+$/.test(needle) ? Number(needle) : null;
    return [...entries.values()].find(
      (entry) =>
        entry.ref.hostname?.toLowerCase() === needle ||
        (asNumber !== null && entry.ref.nodeId === asNumber) ||
        entry.ref.installationId?.toLowerCase() === needle ||
        entry.assistantName?.toLowerCase() === needle,
    );
  };

  const hostnameFor = async (peer: PeerRef): Promise<string | null> => {
    if (peer.hostname) return peer.hostname;
    const known =
      (peer.nodeId !== null && findByNode(peer.nodeId)) ||
      [...entries.values()].find((e) => peer.installationId && e.ref.installationId === peer.installationId);
    if (known && known.ref.hostname !== null) return known.ref.hostname;
    try {
      if (peer.nodeId !== null) return (await registry.byNodeId(String(peer.nodeId)))?.hostname ?? null;
      if (peer.installationId) {
        const page = await registry.list({ installationId: peer.installationId, includeOffline: true });
        return page.agents[0]?.hostname ?? null;
      }
    } catch (error) {
      log.debug?.(`agent-registry: hostname lookup failed: ${(error as Error).message}`);
    }
    return null;
  };

  const applyPending = async (request: PendingTrustRequest) => {
    const hostname = await hostnameFor(request.peer);
    const ref: PeerRef = { ...request.peer, hostname: hostname ?? request.peer.hostname };
    const entry = entryFor(ref);
    entry.assistantName = request.assistantName ?? entry.assistantName;
    entry.humanName = request.humanName ?? entry.humanName;
    const state = peerTrustState(entry.actor.getSnapshot());
    if (state === "trusted") return;
    const receivedAt = Date.parse(request.receivedAt) || Date.now();
    entry.actor.send({
      type: "PEER.PENDING",
      justification: request.introduction ?? "",
      receivedAt,
      at: Date.now(),
    });
  };

  const network: PeerNetwork = {
    get transport() {
      return account.transport;
    },
    unavailableReason: () => (options.transport() ? null : options.unavailableReason()),
    search: (query) => registry.search(query),
    getAgent: (hostname) => registry.byHostname(hostname),
    peers: () => [...entries.values()].map(view),
    async pending() {
      await network.reconcile().catch((error: unknown) => toError(error, "pending"));
      return [...entries.values()].map(view).filter((peer) => peer.state === "pendingApproval");
    },
    async handshake(hostname, introduction) {
      requireTransport();
      const ref = await resolvePeerRef(hostname);
      const entry = entryFor(ref);
      const text =
        introduction?.trim() ||
        account.handshake.introduction ||
        `Hello, this is ${account.displayName ?? account.hostname}${
          account.ownerName ? `, the assistant of ${account.ownerName}` : ""
        }. I would like to connect so our assistants can exchange messages.`;
      entry.actor.send({ type: "HANDSHAKE.REQUEST", introduction: text, at: Date.now() });
      const snapshot = await settle(entry);
      if (snapshot.context.lastError && peerTrustState(snapshot) === "requested") {
        throw new NetworkError("FAILED", snapshot.context.lastError.message);
      }
      return view(entry);
    },
    async approve(ref) {
      requireTransport();
      let entry = findPeer(ref);
      if (!entry || peerTrustState(entry.actor.getSnapshot()) !== "pendingApproval") {
        await network.reconcile();
        entry = findPeer(ref);
      }
      if (!entry || !["pendingApproval", "requested"].includes(peerTrustState(entry.actor.getSnapshot()))) {
        throw new NetworkError(
          "NOT_PENDING",
          `No pending handshake request from "${ref}"; list them with action "pending"`,
        );
      }
      entry.actor.send({ type: "APPROVE", at: Date.now() });
      const snapshot = await settle(entry);
      if (peerTrustState(snapshot) !== "trusted") {
        throw new NetworkError("FAILED", snapshot.context.lastError?.message ?? `Approving "${ref}" failed`);
      }
      log.info(`agent-registry: ${account.accountId} approved handshake with ${entry.ref.hostname ?? ref}`);
      return view(entry);
    },
    async reject(ref, reason) {
      requireTransport();
      let entry = findPeer(ref);
      if (!entry) {
        await network.reconcile();
        entry = findPeer(ref);
      }
      if (!entry || peerTrustState(entry.actor.getSnapshot()) !== "pendingApproval") {
        throw new NetworkError(
          "NOT_PENDING",
          `No pending handshake request from "${ref}"; see action "pending"`,
        );
      }
      entry.actor.send({ type: "REJECT", ...(reason ? { reason } : {}), at: Date.now() });
      const snapshot = await settle(entry);
      if (peerTrustState(snapshot) !== "rejected") {
        throw new NetworkError("FAILED", snapshot.context.lastError?.message ?? `Rejecting "${ref}" failed`);
      }
      return view(entry);
    },
    async untrust(ref) {
      requireTransport();
      const entry = findPeer(ref);
      if (!entry || peerTrustState(entry.actor.getSnapshot()) !== "trusted") {
        throw new NetworkError("NOT_TRUSTED", `"${ref}" is not a trusted peer; see action "peers"`);
      }
      entry.actor.send({ type: "UNTRUST", at: Date.now() });
      const snapshot = await settle(entry);
      if (peerTrustState(snapshot) !== "revoked") {
        throw new NetworkError("FAILED", snapshot.context.lastError?.message ?? `Untrusting "${ref}" failed`);
      }
      return view(entry);
    },
    async send(hostname, text) {
      const result = await network.sendReply(hostname, text);
      options.onDeliberateSend?.(hostname);
      return result;
    },
    async sendReply(hostname, text) {
      const transport = requireTransport();
      if (!text.trim()) throw new NetworkError("INVALID", "The message is empty; pass the text to send");
      const ref = await resolvePeerRef(hostname);
      const envelope = createEnvelope({ fromHostname: account.hostname, body: text });
      try {
        const result = await transport.send(ref, envelope);
        network.noteOutbound();
        return result;
      } catch (error) {
        return toError(error, "send");
      }
    },
    inbox: () => options.inbox?.() ?? { undelivered: [], deadLettered: [] },
    counters: () => ({
      dispatched: 0,
      refused: {},
      deadLettered: 0,
      duplicates: 0,
      lastInboundAt: null,
      ...options.inboundCounters?.(),
      sent,
      lastOutboundAt,
    }),
    async reconcile() {
      const transport = options.transport();
      if (!transport) return;
      const [pending, trusted] = await Promise.all([transport.listPending(), transport.listTrusted()]);
      for (const request of pending) await applyPending(request);
      const trustedKeys = new Set<string>();
      for (const peer of trusted) {
        const hostname = await hostnameFor(peer.peer);
        const ref: PeerRef = { ...peer.peer, hostname: hostname ?? peer.peer.hostname };
        const entry = entryFor(ref);
        trustedKeys.add(peerKey(entry.ref));
        if (peerTrustState(entry.actor.getSnapshot()) !== "trusted") {
          entry.actor.send({ type: "PEER.TRUSTED", at: Date.now() });
        }
      }
      for (const [key, entry] of entries) {
        if (!trustedKeys.has(key) && peerTrustState(entry.actor.getSnapshot()) === "trusted") {
          entry.actor.send({ type: "PEER.UNTRUSTED", at: Date.now() });
        }
      }
    },
    isTrusted(peer) {
      const entry =
        (peer.hostname && entryNamed(peer.hostname)) ||
        (peer.nodeId !== null && findByNode(peer.nodeId)) ||
        [...entries.values()].find(
          (e) => peer.installationId && e.ref.installationId === peer.installationId,
        );
      return entry ? peerTrustState(entry.actor.getSnapshot()) === "trusted" : false;
    },
    knownHostname(peer) {
      if (peer.hostname) return peer.hostname;
      const entry =
        (peer.nodeId !== null && findByNode(peer.nodeId)) ||
        [...entries.values()].find(
          (e) => peer.installationId && e.ref.installationId === peer.installationId,
        );
      return entry?.ref.hostname ?? null;
    },
    introductionFor(hostname) {
      const entry = entryNamed(hostname);
      return entry?.actor.getSnapshot().context.justification ?? null;
    },
    noteOutbound() {
      sent += 1;
      lastOutboundAt = Date.now();
    },
    stop() {
      persist();
      stopped = true;
      for (const entry of entries.values()) entry.actor.stop();
    },
  };
  return network;
}

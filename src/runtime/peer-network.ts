// One account's view of its peers, over its actor tree: registry search, handshake decisions sent to the account
// root (which routes them to the peer's `handshake:<peer>` child), outbound messages, and reading the transport's
// pending requests and trust list. Implements AccountNetwork for the agent_network tool and the gateway methods.
import { type ActorRefFrom, waitFor } from "xstate";
import { fallbackHostname, type KeyLookup } from "../adapters/inbound/pipeline.js";
import type { RegistryClient } from "../adapters/registry/client.js";
import type { AgentRecord } from "../adapters/registry/types.js";
import type { OutboxTable } from "../adapters/state/outbox-table.js";
import { mergeByHostname } from "../adapters/transport/fallback-transport.js";
import type { Transport } from "../adapters/transport/transport.js";
import type { ResolvedAccount } from "../config.js";
import { fingerprint } from "../identity/keys.js";
import type { Log } from "../log.js";
import type { AccountMachine } from "../machines/account.machine.js";
import type { HandshakeCommand, HandshakeMachine, PeerState } from "../machines/handshake.machine.js";
import {
  findPeerKey,
  getPeer,
  handshakeId,
  indexPeers,
  type PeerTable,
  peerEntries,
  peerRecords,
} from "../machines/peers.js";
import type { PollMachine } from "../machines/poll.machine.js";
import type { PeerRef, PeersObservation } from "../machines/types.js";
import {
  type AccountNetwork,
  type IdentityReport,
  type InboxReport,
  type NetworkCounters,
  NetworkError,
  type PeerView,
  type SendResult,
  toNetworkError,
} from "./account-network.js";
import { createOutbox, type Outbox, type OutboxPolicy } from "./outbox.js";
import { createPeerNames, PEER_NAME_MISS_TTL_MS, PEER_NAME_TTL_MS } from "./peer-names.js";
import { createRecordCheck, IGNORED_VERDICTS } from "./record-check.js";

/** The account root as the network uses it: its snapshot (peer table, children) and its events. */
export type AccountRoot = Pick<ActorRefFrom<AccountMachine>, "getSnapshot" | "send">;

export interface PeerNetworkOptions {
  account: ResolvedAccount & { hostname: string };
  registry: RegistryClient;
  log: Log;
  root: () => AccountRoot;
  /** The transport, once it is usable; null with `unavailableReason()` saying why. */
  transport: () => Transport | null;
  unavailableReason: () => string | null;
  inbox?: () => InboxReport;
  inboundCounters?: () => Omit<NetworkCounters, "sent" | "lastOutboundAt">;
  /** A deliberate message (owner or tool) to this peer: resets its auto-reply budget. */
  onDeliberateSend?: (hostname: string) => void;
  /** Where outgoing messages are kept until the peer's receipt (the account database's outbox). */
  outboxTable: OutboxTable;
  outboxPolicy?: Partial<OutboxPolicy>;
  /** Tells a session once that its message is still undelivered. */
  notifySession?: (sessionKey: string, text: string) => void;
  /** Wakes the outbox loop. */
  wakeOutbox?: () => void;
  /** This installation's key fingerprint (status). */
  fingerprint: string;
  /** A peer needs the owner (suspended, or the registry offers another key): told once per peer and key. */
  onIdentityAlert?: (alert: IdentityReport["alerts"][number]) => void;
}

export interface PeerNetwork extends AccountNetwork {
  /**
   * Has the peers loop read pending requests and the trust list now (one cycle; calls during it share the next),
   * and waits for that reading to reach the handshake actors (bounded: a failing transport does not hold the
   * caller longer than RECONCILE_WAIT_MS).
   */
  reconcile(): Promise<void>;
  /** Pending requests and the trust list, with hostnames looked up (what the peers loop reports). */
  observe(): Promise<PeersObservation | null>;
  /** Is this sender trusted right now (inbound admission)? */
  isTrusted(peer: PeerRef): boolean;
  /** Hostname of a peer known by node id or relay id, if any. */
  knownHostname(peer: PeerRef): string | null;
  /** The agent's automatic reply to a peer's message (does not reset the reply budget). */
  sendReply(hostname: string, text: string, replyTo?: string | null): Promise<SendResult>;
  /** The outbox itself: the loop's cycle and the receipts. */
  readonly outboxQueue: Outbox;
  /** The peer's handshake introduction (their text, untrusted), if one is known. */
  introductionFor(hostname: string): string | null;
  /** The peer as the tool shows it, by its key in the peer table. */
  view(key: string): PeerView | null;
  /** Whom a signed envelope names as its recipient: the peer's pinned key, else its hostname. */
  recipientOf(peer: PeerRef): string;
  /** The peer a key is pinned to, and the pinned key of the peer the transport names (inbound authentication). */
  identify(from: PeerRef, key: string | null): KeyLookup;
  /**
   * A key seen for a peer: on offer (an unpinned peer's signed message, a verified registry record) or, `changed`,
   * a pinned peer's message under another key (suspends it). Sent to the handshake only when it is news, and
   * only for a peer in the table unless `create` (our own first contact): a stranger's messages add no records.
   */
  noteKey(peer: PeerRef, key: string, changed: boolean, options?: { create?: boolean }): void;
  /** The peer of this table key was suspended (its handshake said so): the owner is told, once per new key. */
  suspended(key: string): void;
}

/** The longest a caller waits for the peers loop's reading (it may be backing off from a failing transport). */
const RECONCILE_WAIT_MS = 5_000;

function nodeIdOf(record: AgentRecord): number | null {
  if (record.pilotNodeId === null) return null;
  const id = Number(record.pilotNodeId);
  return Number.isSafeInteger(id) ? id : null;
}

function refOf(record: PeerState): PeerRef {
  return { hostname: record.hostname, nodeId: record.nodeId, installationId: record.installationId };
}

export function toPeerView(record: PeerState): PeerView {
  return {
    fingerprint: record.key ? fingerprint(record.key) : null,
    offeredFingerprint: record.offeredKey ? fingerprint(record.offeredKey) : null,
    hostname: record.hostname,
    nodeId: record.nodeId,
    installationId: record.installationId,
    state: record.state,
    introduction:
      record.state === "pendingApproval" ? (record.justification ?? null) : (record.introduction ?? null),
    assistantName: record.assistantName ?? null,
    humanName: record.humanName ?? null,
    updatedAt: record.updatedAt ? new Date(record.updatedAt).toISOString() : null,
  };
}

export function createPeerNetwork(options: PeerNetworkOptions): PeerNetwork {
  const { account, registry, log } = options;
  let sent = 0;
  let lastOutboundAt: number | null = null;

  const table = (): PeerTable => options.root().getSnapshot().context.peers;

  /** Look-ups by id and by pinned key, built once per table (inbound authentication runs for every message). */
  const indexes = new WeakMap<
    PeerTable,
    { peers: ReturnType<typeof indexPeers>; keys: Map<string, string> }
  >();
  const indexOf = (peers: PeerTable) => {
    let index = indexes.get(peers);
    if (!index) {
      const keys = new Map<string, string>();
      for (const [key, record] of peerEntries(peers)) if (record.key) keys.set(record.key, key);
      index = { peers: indexPeers(peers), keys };
      indexes.set(peers, index);
    }
    return index;
  };
  const recordOf = (peer: PeerRef): PeerState | null => {
    const peers = table();
    const key = indexOf(peers).peers.find(peer);
    return key ? (getPeer(peers, key) ?? null) : null;
  };

  /** What needs the owner, once per peer and key (the owner is told once, not on every reading). */
  const alerts = new Map<string, IdentityReport["alerts"][number]>();
  const MAX_ALERTS = 1_000;
  const alert = (peer: string, kind: IdentityReport["alerts"][number]["kind"], key: string) => {
    const id = `${peer}\n${kind}\n${key}`;
    if (alerts.has(id)) return;
    const entry = { peer, kind, fingerprint: fingerprint(key), at: new Date().toISOString() };
    alerts.set(id, entry);
    if (alerts.size > MAX_ALERTS) alerts.delete(alerts.keys().next().value as string);
    options.onIdentityAlert?.(entry);
  };
  const records = createRecordCheck({
    pinnedKeyOf: (hostname) => recordOf({ hostname, nodeId: null, installationId: null })?.key ?? null,
    onKeyMismatch: (hostname, offered) => alert(hostname, "registry_key_mismatch", offered),
  });
  /** Requesters' verified keys, looked up once per hostname for a while (a request waits for hours). */
  const requesterKeys = new Map<string, { key: string | null; until: number }>();
  const REQUESTER_KEY_TTL_MS = 10 * 60_000;
  const requesterKey = async (hostname: string): Promise<string | null> => {
    const cached = requesterKeys.get(hostname);
    if (cached && cached.until > Date.now()) return cached.key;
    let key: string | null = null;
    try {
      const record = await registry.byHostname(hostname);
      if (record && record.hostname.toLowerCase() === hostname.toLowerCase()) {
        const checked = await records.check(record);
        if (checked.verification.status === "verified") key = checked.verification.key;
      }
    } catch (error) {
      log.debug?.(`agent-registry: key of ${hostname}: ${(error as Error).message}`);
    }
    if (requesterKeys.size > 10_000) requesterKeys.clear();
    requesterKeys.set(hostname, { key, until: Date.now() + REQUESTER_KEY_TTL_MS });
    return key;
  };

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

  /**
   * Sends a decision to the peer's handshake (the root wakes it) and waits until no transport call is in flight:
   * it rests again (settled without an error) or stays awake, settled, with the error of its last call.
   */
  const decide = async (peer: PeerRef, command: HandshakeCommand) => {
    const root = options.root();
    root.send({ type: "PEER.COMMAND", peer, command });
    const key = findPeerKey(root.getSnapshot().context.peers, peer);
    if (!key) throw new NetworkError("FAILED", `No handshake for "${peer.hostname}"`);
    const awake = (snapshot: ReturnType<AccountRoot["getSnapshot"]>) =>
      snapshot.children[handshakeId(key)] as ActorRefFrom<HandshakeMachine> | undefined;
    const settled = await waitFor(
      root as ActorRefFrom<AccountMachine>,
      (snapshot) => awake(snapshot)?.getSnapshot().hasTag("settled") ?? true,
    );
    return {
      key,
      lastError: awake(settled)?.getSnapshot().context.lastError ?? null,
      record: getPeer(table(), key),
    };
  };

  const resolvePeerRef = async (hostname: string): Promise<PeerRef> => {
    const knownKey = findPeerKey(table(), { hostname, nodeId: null, installationId: null });
    const known = knownKey ? refOf(getPeer(table(), knownKey)!) : null;
    let record: AgentRecord | null = null;
    try {
      record = await registry.byHostname(hostname);
    } catch (error) {
      if (known) return known;
      throw new NetworkError(
        "FAILED",
        `Cannot look up "${hostname}" in the registry: ${(error as Error).message}`,
      );
    }
    if (!record) {
      if (known) return known;
      throw new NetworkError(
        "NOT_FOUND",
        `No online agent is registered as "${hostname}"; use action "search" to find the right hostname`,
      );
    }
    const { verification } = await records.check(record);
    if (IGNORED_VERDICTS.has(verification.status)) {
      // What we know of a known peer stands; the registry's word about a new one is not taken.
      if (known) return known;
      throw new NetworkError(
        "UNVERIFIED",
        `The registry's record of "${hostname}" was ignored: ${verification.reason}. Ask ${hostname}'s owner for their fingerprint, or use another registry`,
      );
    }
    const ref = {
      hostname: record.hostname,
      nodeId: nodeIdOf(record),
      installationId: record.installationId,
    };
    if (verification.status === "verified" && verification.key) {
      network.noteKey(ref, verification.key, false, { create: true });
    }
    return ref;
  };

  /** hostname, node id, relay id or assistant name, case-insensitive: the key in the peer table. */
  const findPeer = (ref: string): string | null => {
    const needle = ref.trim().toLowerCase();
    const asNumber = /^\d+$/.test(needle) ? Number(needle) : null;
    for (const [key, record] of peerEntries(table())) {
      if (
        record.hostname?.toLowerCase() === needle ||
        (asNumber !== null && record.nodeId === asNumber) ||
        record.installationId?.toLowerCase() === needle ||
        record.assistantName?.toLowerCase() === needle
      ) {
        return key;
      }
    }
    return null;
  };

  const stateOf = (key: string | null) => (key ? (getPeer(table(), key)?.state ?? null) : null);

  const knownHostname = (peer: PeerRef): string | null => {
    if (peer.hostname) return peer.hostname;
    const key = findPeerKey(table(), peer);
    return key ? (getPeer(table(), key)?.hostname ?? null) : null;
  };

  const names = createPeerNames({ registry, log });

  /**
   * The last reading and the table it was routed into. The same reading again, into the same table, would change
   * nothing: it is not routed (an idle account with 10,000 peers then costs its poll, not 10,000 look-ups). A
   * transport that hands back the same lists (the relay's copy, unchanged) is recognised without comparing them.
   */
  let lastReading: { pending: unknown; trusted: unknown; text: string | null; table: PeerTable } | null =
    null;
  const sameReading = (pending: unknown, trusted: unknown): boolean => {
    const last = lastReading;
    const sameLists = last !== null && last.pending === pending && last.trusted === trusted;
    const text = sameLists ? last.text : JSON.stringify([pending, trusted]);
    const same = last !== null && last.table === table() && (sameLists || last.text === text);
    lastReading = { pending, trusted, text, table: table() };
    return same;
  };

  /**
   * Peers of the routed reading that the registry could not name yet (a peer's node id reaches the registry only
   * once its daemon is up): the same reading is routed again when their names are due to be asked again, so a
   * name that appears later is taken even though the trust list did not change.
   */
  let unnamed: { retryAt: number; attempts: number } | null = null;

  /** The peer list as the tool shows it, built once per table (the gateway and tool read it far more often). */
  const views = new WeakMap<PeerTable, PeerView[]>();
  const viewsOf = (peers: PeerTable): PeerView[] => {
    let list = views.get(peers);
    if (!list) {
      // Shared by every read until the table changes: frozen, so no reader can change another's copy.
      list = peerRecords(peers).map((record) => Object.freeze(toPeerView(record)));
      views.set(peers, list);
    }
    return list;
  };

  const outbox = createOutbox({
    table: options.outboxTable,
    hostname: account.hostname,
    transport: options.transport,
    unavailableReason: options.unavailableReason,
    resolve: resolvePeerRef,
    isTrusted: (hostname) => network.isTrusted({ hostname, nodeId: null, installationId: null }),
    log,
    ...(options.outboxPolicy ? { policy: options.outboxPolicy } : {}),
    ...(options.wakeOutbox ? { wake: options.wakeOutbox } : {}),
    ...(options.notifySession
      ? {
          notify: (entry, text) => {
            if (entry.sessionKey) options.notifySession?.(entry.sessionKey, text);
          },
        }
      : {}),
  });

  /**
   * Into the outbox, then one attempt at once (the transport refuses a peer that is not trusted). With no
   * transport up yet, a message to a peer known as trusted waits queued (the outbox loop sends it once the
   * transport is up); any other is refused with the transport's reason, since its trust cannot be checked now.
   */
  const submit = async (
    hostname: string,
    text: string,
    message: { origin: "contact" | "send" | "reply"; sessionKey?: string | null; replyTo?: string | null },
  ): Promise<SendResult> => {
    if (account.transport === "none" && !options.transport()) requireTransport();
    if (!text.trim()) throw new NetworkError("INVALID", "The message is empty; pass the text to send");
    // A known trusted peer's message waits in the outbox for the transport; anyone else's cannot be checked now.
    if (!options.transport() && !network.isTrusted({ hostname, nodeId: null, installationId: null })) {
      requireTransport();
    }
    const result = await outbox.submit({ peer: hostname, body: text, ...message });
    sent += 1;
    lastOutboundAt = Date.now();
    return result;
  };

  const network: PeerNetwork = {
    get transport() {
      return account.transport;
    },
    unavailableReason: () => (options.transport() ? null : options.unavailableReason()),
    async search(query) {
      const page = await registry.search(query);
      const checked = await Promise.all(page.agents.map((agent) => records.check(agent)));
      const kept = checked.filter((agent) => !IGNORED_VERDICTS.has(agent.verification.status));
      const caveats = [...(page.caveats ?? [])];
      const left = checked.length - kept.length;
      if (left > 0) {
        const why = checked.find((agent) => IGNORED_VERDICTS.has(agent.verification.status))?.verification;
        caveats.push(
          `${left} record(s) left out because their signature did not hold up (${why?.status}: ${why?.reason})`,
        );
      }
      if (kept.length > 0 && kept.every((agent) => agent.verification.status === "unsigned")) {
        caveats.push(
          "these records are unsigned (the registry or the agents have no keys): fingerprints cannot be shown",
        );
      }
      return {
        ...page,
        agents: kept,
        total: Math.max(0, page.total - left),
        ...(caveats.length ? { caveats } : {}),
      };
    },
    async getAgent(hostname) {
      const record = await registry.byHostname(hostname);
      return record ? records.check(record) : null;
    },
    identity: () => ({
      fingerprint: options.fingerprint,
      records: records.counts(),
      alerts: [...alerts.values()],
    }),
    peers: () => viewsOf(table()).slice(),
    view: (key) => {
      const record = getPeer(table(), key);
      return record ? toPeerView(record) : null;
    },
    async pending() {
      await network.reconcile().catch((error: unknown) => {
        throw toNetworkError(error, "pending");
      });
      return network.peers().filter((peer) => peer.state === "pendingApproval");
    },
    async handshake(hostname, introduction) {
      requireTransport();
      const ref = await resolvePeerRef(hostname);
      const text =
        introduction?.trim() ||
        account.handshake.introduction ||
        `Hello, this is ${account.displayName ?? account.hostname}${
          account.ownerName ? `, the assistant of ${account.ownerName}` : ""
        }. I would like to connect so our assistants can exchange messages.`;
      const { lastError, record } = await decide(ref, {
        type: "HANDSHAKE.REQUEST",
        introduction: text,
        at: Date.now(),
      });
      if (lastError && record?.state === "requested") throw new NetworkError("FAILED", lastError.message);
      if (!record) throw new NetworkError("FAILED", `No handshake for "${hostname}"`);
      return toPeerView(record);
    },
    async approve(ref, approveOptions = {}) {
      requireTransport();
      const by = approveOptions.by ?? "owner";
      let key = findPeer(ref);
      if (stateOf(key) !== "pendingApproval") {
        await network.reconcile();
        key = findPeer(ref);
      }
      const state = stateOf(key);
      const before = key ? getPeer(table(), key) : undefined;
      // A trusted peer's key on offer (an unverified peer's, a suspended peer's new one): approving pins it.
      const pinsKey = (state === "trusted" || state === "suspended") && (before?.offeredKey ?? null) !== null;
      if (!key || !before || (state !== "pendingApproval" && state !== "requested" && !pinsKey)) {
        throw new NetworkError(
          "NOT_PENDING",
          state === "trusted"
            ? `"${ref}" is already trusted, and no new key of theirs is waiting for approval`
            : `No pending handshake request from "${ref}"; list them with action "pending"`,
        );
      }
      const keyChange =
        (before.key ?? null) !== null &&
        (before.offeredKey ?? null) !== null &&
        before.key !== before.offeredKey;
      if (by === "agent" && (keyChange || pinsKey)) {
        throw new NetworkError(
          "OWNER_APPROVAL_REQUIRED",
          `"${ref}" offers a key you have not pinned (fingerprint ${fingerprint(before.offeredKey!)}); only your owner can approve a key, after comparing the fingerprint with ${ref}'s owner`,
        );
      }
      const { lastError, record } = await decide(refOf(before), { type: "APPROVE", at: Date.now(), by });
      if (record?.state !== "trusted") {
        throw new NetworkError("FAILED", lastError?.message ?? `Approving "${ref}" failed`);
      }
      log.info(
        `agent-registry: ${account.accountId} approved ${pinsKey ? "the key of" : "handshake with"} ${record.hostname ?? ref}` +
          (record.key ? ` (key ${fingerprint(record.key)})` : " (no key: unverified)"),
      );
      return toPeerView(record);
    },
    async reject(ref, reason) {
      requireTransport();
      let key = findPeer(ref);
      if (!key) {
        await network.reconcile();
        key = findPeer(ref);
      }
      if (!key || stateOf(key) !== "pendingApproval") {
        throw new NetworkError(
          "NOT_PENDING",
          `No pending handshake request from "${ref}"; see action "pending"`,
        );
      }
      const { lastError, record } = await decide(refOf(getPeer(table(), key)!), {
        type: "REJECT",
        ...(reason ? { reason } : {}),
        at: Date.now(),
      });
      if (record?.state !== "rejected") {
        throw new NetworkError("FAILED", lastError?.message ?? `Rejecting "${ref}" failed`);
      }
      return toPeerView(record);
    },
    async untrust(ref) {
      requireTransport();
      const key = findPeer(ref);
      if (!key || (stateOf(key) !== "trusted" && stateOf(key) !== "suspended")) {
        throw new NetworkError("NOT_TRUSTED", `"${ref}" is not a trusted peer; see action "peers"`);
      }
      const { lastError, record } = await decide(refOf(getPeer(table(), key)!), {
        type: "UNTRUST",
        at: Date.now(),
      });
      if (record?.state !== "revoked") {
        throw new NetworkError("FAILED", lastError?.message ?? `Untrusting "${ref}" failed`);
      }
      return toPeerView(record);
    },
    async send(hostname, text, sendOptions = {}) {
      const result = await submit(hostname, text, {
        origin: sendOptions.origin ?? "send",
        sessionKey: sendOptions.sessionKey ?? null,
      });
      options.onDeliberateSend?.(hostname);
      return result;
    },
    sendReply: (hostname, text, replyTo = null) => submit(hostname, text, { origin: "reply", replyTo }),
    outbox: (listOptions) => outbox.list(listOptions),
    outboxQueue: outbox,
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
      outbox: outbox.counts(),
    }),
    async observe() {
      const transport = options.transport();
      if (!transport) return null;
      const at = Date.now();
      const [pending, trusted] = await Promise.all([transport.listPending(), transport.listTrusted()]);
      if (sameReading(pending, trusted) && (unnamed === null || at < unnamed.retryAt)) return null;
      // Names the table knows first (one index for the whole reading), then the registry's for the rest.
      const index = indexPeers(table());
      const known = (peer: PeerRef): PeerRef => {
        if (peer.hostname) return peer;
        const key = index.find(peer);
        return { ...peer, hostname: (key ? getPeer(table(), key)?.hostname : null) ?? null };
      };
      const named = await names.name([...pending, ...trusted].map((entry) => known(entry.peer)));
      if (named.some((ref) => !ref.hostname && (ref.nodeId !== null || ref.installationId !== null))) {
        const attempts = (unnamed?.attempts ?? 0) + 1;
        const wait = Math.min(PEER_NAME_TTL_MS, PEER_NAME_MISS_TTL_MS * 2 ** Math.min(attempts - 1, 20));
        unnamed = { retryAt: at + wait, attempts };
      } else {
        unnamed = null;
      }
      // A requester's key comes from its verified record (approving pins it); one already on offer is kept. A
      // pinned peer asking again is looked up too: a record under another key is ignored, counted and told.
      const keys: Array<{ peer: PeerRef; key: string }> = [];
      for (const peer of named.slice(0, pending.length)) {
        const record = recordOf(peer);
        if (!peer.hostname || record?.offeredKey) continue;
        const key = await requesterKey(peer.hostname);
        if (key && !record?.key) keys.push({ peer, key });
      }
      // Transport "auto" lists a peer once per path (Pilot by node id, the relay by relay id): named, they merge
      // into one entry with both ids.
      return {
        pending: mergeByHostname([
          pending.map((request, i) => ({
            peer: named[i]!,
            justification: request.introduction ?? "",
            receivedAt: Date.parse(request.receivedAt) || at,
            assistantName: request.assistantName,
            humanName: request.humanName,
          })),
        ]),
        trusted: mergeByHostname([trusted.map((_, i) => ({ peer: named[pending.length + i]! }))]).map(
          (entry) => entry.peer,
        ),
        ...(keys.length > 0 ? { keys } : {}),
        at,
      };
    },
    async reconcile() {
      const root = options.root();
      const loop = root.getSnapshot().children.peers as ActorRefFrom<PollMachine> | undefined;
      if (loop?.getSnapshot().status !== "active") {
        const observation = await network.observe();
        if (observation) root.send({ type: "PEERS.OBSERVED", observation });
        return;
      }
      // A cycle in flight began before this request: the reading that counts is the one after it.
      let cyclesToWait = loop.getSnapshot().hasTag("busy") ? 2 : 1;
      let seen = {
        summary: loop.getSnapshot().context.lastSummary,
        error: loop.getSnapshot().context.lastError,
      };
      let failed = false;
      root.send({ type: "PEERS.WAKE" });
      const after = await waitFor(
        loop,
        (s) => {
          if (s.status !== "active") return true;
          const { lastSummary, lastError } = s.context;
          if (lastSummary === seen.summary && lastError === seen.error) return false;
          failed = lastError !== null && lastError !== seen.error;
          seen = { summary: lastSummary, error: lastError };
          return --cyclesToWait === 0;
        },
        { timeout: RECONCILE_WAIT_MS },
      ).catch(() => null);
      // This reading failed: say why (the loop retries on its own backoff).
      if (failed && after?.context.lastError) {
        throw new NetworkError(
          "FAILED",
          `Reading pending requests and the trust list failed: ${after.context.lastError.message}`,
        );
      }
    },
    isTrusted(peer) {
      return stateOf(findPeerKey(table(), peer)) === "trusted";
    },
    recipientOf(peer) {
      const record = recordOf(peer);
      return record?.key ?? record?.hostname ?? peer.hostname ?? fallbackHostname(peer);
    },
    identify(from, key) {
      const peers = table();
      const pinnedKey = key ? indexOf(peers).keys.get(key) : undefined;
      const pinned = pinnedKey ? getPeer(peers, pinnedKey) : undefined;
      const transportPeer = recordOf(from);
      return {
        pinnedTo: pinned
          ? {
              hostname: pinned.hostname ?? fallbackHostname(refOf(pinned)),
              suspended: pinned.state === "suspended",
            }
          : null,
        transportPeer: transportPeer
          ? { key: transportPeer.key ?? null, suspended: transportPeer.state === "suspended" }
          : null,
      };
    },
    suspended(key) {
      const record = getPeer(table(), key);
      if (record?.offeredKey)
        alert(record.hostname ?? fallbackHostname(refOf(record)), "suspended", record.offeredKey);
    },
    noteKey(peer, key, changed, noteOptions = {}) {
      const record = recordOf(peer);
      // A peer not in the table yet gets a record only on our own first contact, with the key on offer.
      if (!record && (changed || !noteOptions.create)) return;
      const news = !record
        ? true
        : changed
          ? (record.key ?? null) !== null &&
            record.key !== key &&
            !(record.state === "suspended" && record.offeredKey === key)
          : (record.key ?? null) === null && record.offeredKey !== key;
      if (!news) return;
      options.root().send({ type: "PEERS.KEYS", keys: [{ peer, key, changed, at: Date.now() }] });
    },
    knownHostname,
    introductionFor(hostname) {
      const key = findPeerKey(table(), { hostname, nodeId: null, installationId: null });
      return key ? (getPeer(table(), key)?.justification ?? null) : null;
    },
  };
  return network;
}

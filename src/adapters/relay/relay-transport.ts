// The registry's HTTP relay as a `Transport`: outbound envelopes are posted to the registry (the envelope id is
// the relay message id, so a resend after a timeout is stored once) and trust runs through the registry's trust
// endpoints; trust lists come from a copy kept in step by change (trust-mirror.ts). Used where the Pilot daemon
// is unusable; the inbound side is relay-inbox.ts.

import { isMissingRoute, type RegistryClient } from "../registry/client.js";
import { RegistryError } from "../registry/errors.js";
import type { CallOptions, TrustPeer } from "../registry/types.js";
import { type Envelope, encodeEnvelope } from "../transport/envelope.js";
import {
  type PeerRef,
  type PendingTrustRequest,
  type Transport,
  TransportError,
  type TrustedPeer,
} from "../transport/transport.js";
import { createTrustMirror, type TrustWatch } from "./trust-mirror.js";

/** Who this installation is on the relay. The token is read on every call: re-registration replaces it. */
export interface RelaySelf {
  /** Our own installation id: a secret, sent only as ourselves (with our token). */
  installationId: string;
  /**
   * Our public peer id from the last registration (null on the original registry, which has none): trust lists
   * of registries with peer ids name our own side by it. Read on every call, like the token.
   */
  peerId?: () => string | null;
  hostname: string;
  agentToken: () => string | null;
  assistantName?: string;
  humanName?: string;
}

export interface RelayTransportOptions {
  client: RegistryClient;
  self: RelaySelf;
  /**
   * Finds a peer by hostname (the composition root passes its cache + registry lookup). Defaults to the
   * registry's by-hostname lookup.
   */
  resolvePeer?: (hostname: string) => Promise<PeerRef | null>;
  /** How long a peer's hostname, once looked up, is reused (default 10 min; a miss is retried after 1 min). */
  hostnameTtlMs?: number;
  /** How often the trust list is read from the start rather than by change (default 10 min). */
  trustResyncMs?: number;
  /** Trust records one page of changes asks for (default 500; the registry allows 1-1000). */
  trustPageSize?: number;
  /** Live trust records kept at most (default 200,000); an account with more gets an error, not unbounded memory. */
  maxTrustRecords?: number;
  /** How long the registry's "your trust did not change" (from the relay inbox) spares a trust read (default 40 s). */
  trustConfirmedForMs?: number;
  /** The trust copy's cursor moved (the relay inbox then has the registry watch the new one). */
  onTrustCursor?: () => void;
  now?: () => number;
}

/** The relay transport, and its trust copy's cursor for the relay inbox to have watched (see TrustWatch). */
export interface RelayTransport extends Transport {
  trustWatch: TrustWatch;
}

export const RELAY_TRUST_RESYNC_MS = 10 * 60_000;
/**
 * A long-poll of the relay inbox waits at most 30 s and the next follows its answer at once, ending early on any
 * trust change: so its "nothing changed" stands until the next answer is due, with some slack.
 */
export const RELAY_TRUST_CONFIRMED_MS = 40_000;
export const RELAY_TRUST_PAGE_SIZE = 500;
export const RELAY_MAX_TRUST_RECORDS = 200_000;

export const RELAY_HOSTNAME_TTL_MS = 10 * 60_000;
/** A relay id the registry did not name (offline, unknown): asked again sooner than a known one. */
const MISSING_HOSTNAME_TTL_MS = 60_000;
/** Names kept at most: a bound on memory whatever the trust list's size (a full cache starts over). */
const HOSTNAME_CACHE_MAX = 100_000;

/** Relay bodies are capped by the registry at 64 KiB. */
export const RELAY_MAX_BODY_BYTES = 64 * 1024;

function peerLabel(peer: PeerRef): string {
  return (
    peer.hostname ?? peer.installationId ?? (peer.nodeId === null ? "unknown peer" : `node-${peer.nodeId}`)
  );
}

/** Registry failures in the words of the transport, each saying what to do next. */
export function toTransportError(operation: string, peer: PeerRef | null, err: unknown): TransportError {
  if (err instanceof TransportError) return err;
  const who = peer ? peerLabel(peer) : "the peer";
  if (!(err instanceof RegistryError)) {
    const message = err instanceof Error ? err.message : String(err);
    return new TransportError(operation, "failed", `relay ${operation} failed: ${message}`, { cause: err });
  }
  const cause = { cause: err };
  // A registry without the route (the original has no relay or trust routes) is not a missing peer.
  if (isMissingRoute(err)) {
    return new TransportError(
      operation,
      "unavailable",
      `this registry has no relay (its ${operation} route answered ${err.status ?? 404}); point registryUrl at a registry with relay support (e.g. \`npx agent-registry serve\`) or set transport to "pilot"`,
      cause,
    );
  }
  switch (err.kind) {
    case "forbidden":
      return operation === "send"
        ? new TransportError(
            operation,
            "not_trusted",
            `${who} has not approved trust with this agent on the relay; do a handshake first (request trust and wait for approval). If trust was approved, re-register to refresh the agent token.`,
            cause,
          )
        : new TransportError(
            operation,
            "rejected",
            `the registry refused ${operation} with ${who}: ${err.message}`,
            cause,
          );
    case "not_found":
      return new TransportError(
        operation,
        "peer_unknown",
        `${who} is not registered on the relay (or is offline); search the registry for its current hostname`,
        cause,
      );
    case "too_large":
      return new TransportError(
        operation,
        "invalid",
        `the message is too large for the relay (at most ${RELAY_MAX_BODY_BYTES} bytes); shorten or split it`,
        cause,
      );
    case "invalid":
      return new TransportError(
        operation,
        "invalid",
        `the registry rejected ${operation}: ${err.message}`,
        cause,
      );
    case "inbox_full":
      return new TransportError(operation, "inbox_full", `${who}'s inbox is full; try again later`, cause);
    case "rate_limited": {
      const after = err.retryAfterSeconds ?? 60;
      return new TransportError(
        operation,
        "rate_limited",
        `sending too fast; retry after ${after} s (the registry limits how many messages an agent sends a minute)`,
        cause,
      );
    }
    case "http":
      // A 4xx we have no better name for, or the original registry's `200 {ok:false}`: a refusal, not an outage.
      if (err.status !== undefined && err.status < 500) {
        return new TransportError(
          operation,
          "rejected",
          `the registry refused ${operation} to ${who}: ${err.message}`,
          cause,
        );
      }
      return new TransportError(
        operation,
        "unavailable",
        `the registry relay is unavailable (${err.message}); retry later`,
        cause,
      );
    case "unreachable":
    case "bad_response":
      return new TransportError(
        operation,
        "unavailable",
        `the registry relay is unavailable (${err.message}); retry later`,
        cause,
      );
    case "timeout":
      return new TransportError(
        operation,
        "timeout",
        `the registry relay did not answer ${operation} in time; retry later (a resend is safe, the relay dedupes by message id)`,
        cause,
      );
    case "unauthorized":
      return new TransportError(
        operation,
        "failed",
        `the registry refused our credentials for ${operation}; check registryApiKey, or re-register to get a fresh agent token`,
        cause,
      );
    case "conflict":
      return new TransportError(
        operation,
        "invalid",
        `the registry reported a conflict: ${err.message}`,
        cause,
      );
    case "aborted":
      return new TransportError(operation, "failed", `relay ${operation} was cancelled`, cause);
  }
}

export function createRelayTransport(options: RelayTransportOptions): RelayTransport {
  const { client, self } = options;
  const resolveByHostname =
    options.resolvePeer ??
    (async (hostname: string): Promise<PeerRef | null> => {
      const record = await client.byHostname(hostname);
      if (!record) return null;
      return { hostname: record.hostname, nodeId: null, installationId: record.installationId };
    });

  const call = (signal?: AbortSignal): CallOptions => {
    const opts: CallOptions = { token: self.agentToken() };
    if (signal) opts.signal = signal;
    return opts;
  };

  /**
   * Our peer id as learned from our own public record, when the caller did not know it (see ownPeerId);
   * undefined until a lookup found the record (null then means the registry has no peer ids).
   */
  let learnedPeerId: string | null | undefined;
  const isSelf = (id: string, own: string | null) => id === self.installationId || own === id;

  /**
   * Our own peer id, for telling our side from theirs in trust lists. Usually persisted from the registration;
   * when it is not known (state written before peer ids, or a transport built without it), our own public record
   * carries it. Null on the original registry, which names us by installation id.
   */
  async function ownPeerId(): Promise<string | null> {
    const known = self.peerId?.() ?? null;
    if (known) return known;
    if (learnedPeerId !== undefined) return learnedPeerId;
    try {
      const record = await client.byHostname(self.hostname);
      if (record) learnedPeerId = record.peerId;
    } catch {
      // Why safe: without it our own side is not recognised in this one list; the next call tries again.
    }
    return learnedPeerId ?? null;
  }

  /**
   * The peer's relay id (PeerRef.installationId: its peer id, or its installation id on the original registry):
   * given, or looked up by hostname.
   */
  async function installationIdOf(operation: string, peer: PeerRef): Promise<string> {
    if (peer.installationId) return peer.installationId;
    if (!peer.hostname) {
      throw new TransportError(
        operation,
        "invalid",
        "the relay needs the peer's hostname or installation id; search the registry for the agent first",
      );
    }
    let resolved: PeerRef | null;
    try {
      resolved = await resolveByHostname(peer.hostname);
    } catch (err) {
      throw toTransportError(operation, peer, err);
    }
    if (!resolved?.installationId) {
      throw new TransportError(
        operation,
        "peer_unknown",
        `${peer.hostname} is not registered on the relay (or is offline, or registered without an installation id); search the registry for its current hostname`,
      );
    }
    return resolved.installationId;
  }

  const hostnameTtlMs = options.hostnameTtlMs ?? RELAY_HOSTNAME_TTL_MS;
  const now = options.now ?? Date.now;
  /** Relay id -> hostname (null: the registry had none), until when it is reused. */
  const hostnames = new Map<string, { hostname: string | null; until: number }>();

  /**
   * Hostnames of relay ids, best effort: a failed lookup leaves the hostname null. Each id is looked up once per
   * TTL, so an idle account's trust list costs the registry one request per poll, not one per peer.
   */
  async function hostnamesOf(ids: readonly string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    for (const id of new Set(ids)) {
      const cached = hostnames.get(id);
      if (cached && cached.until > now()) {
        out.set(id, cached.hostname);
        continue;
      }
      try {
        const page = await client.list({ installationId: id, includeOffline: true, limit: 1 });
        const hostname = page.agents[0]?.hostname ?? null;
        if (hostnames.size >= HOSTNAME_CACHE_MAX) hostnames.clear();
        hostnames.set(id, { hostname, until: now() + (hostname ? hostnameTtlMs : MISSING_HOSTNAME_TTL_MS) });
        out.set(id, hostname);
      } catch {
        // Why safe: the hostname is a convenience for display and routing; the relay id still names the peer.
        out.set(id, cached?.hostname ?? null);
      }
    }
    return out;
  }

  const trust = createTrustMirror({
    readPage: (after) =>
      client.listTrustChanges(
        self.installationId,
        { after, limit: options.trustPageSize ?? RELAY_TRUST_PAGE_SIZE },
        call(),
      ),
    now,
    resyncMs: options.trustResyncMs ?? RELAY_TRUST_RESYNC_MS,
    maxRecords: options.maxTrustRecords ?? RELAY_MAX_TRUST_RECORDS,
    confirmedForMs: options.trustConfirmedForMs ?? RELAY_TRUST_CONFIRMED_MS,
    ...(options.onTrustCursor ? { onCursor: options.onTrustCursor } : {}),
  });

  /** Our trust records, read by change (one shared read when listPending and listTrusted run together). */
  async function trustSnapshot(operation: "listPending" | "listTrusted") {
    try {
      return await trust.sync();
    } catch (err) {
      throw toTransportError(operation, null, err);
    }
  }

  /** Pending requests from the registry's pending route: for registries that do not read trust by change. */
  async function pendingFromEndpoint(): Promise<PendingTrustRequest[]> {
    let requests: Awaited<ReturnType<RegistryClient["pendingTrust"]>>["requests"];
    try {
      ({ requests } = await client.pendingTrust(self.installationId, call()));
    } catch (err) {
      throw toTransportError("listPending", null, err);
    }
    const names = await hostnamesOf(requests.map((r) => r.fromId));
    return requests.map((r) => ({
      peer: { hostname: names.get(r.fromId) ?? null, nodeId: null, installationId: r.fromId },
      introduction: r.introduction,
      assistantName: r.fromAssistantName,
      humanName: r.fromHumanName,
      receivedAt: r.createdAt ?? new Date().toISOString(),
    }));
  }

  /**
   * Trusted peers by relay id, with the earliest approval time and the registry's name for them. Trust is
   * symmetric once approved, and the registry lists records in both directions: one entry per peer. A block in
   * either direction wins over an approval (the registry refuses relay traffic then).
   */
  function trustedPeers(
    records: readonly TrustPeer[],
    own: string | null,
  ): Map<string, { since: string | null; hostname: string | null }> {
    const trusted = new Map<string, { since: string | null; hostname: string | null }>();
    const blocked = new Set<string>();
    for (const p of records) {
      const other = isSelf(p.requesterId, own) ? p.targetId : p.requesterId;
      if (isSelf(other, own)) continue;
      if (p.status === "blocked") blocked.add(other);
      if (p.status !== "approved") continue;
      const at = p.approvedAt ?? p.createdAt;
      const known = trusted.get(other);
      if (!known) {
        trusted.set(other, { since: at, hostname: p.peerHostname });
        continue;
      }
      if (at !== null && (known.since === null || at < known.since)) known.since = at;
      known.hostname ??= p.peerHostname;
    }
    for (const id of blocked) trusted.delete(id);
    return trusted;
  }

  /** Requests made to us, oldest first. */
  function pendingOf(records: readonly TrustPeer[], own: string | null): PendingTrustRequest[] {
    return records
      .filter((p) => p.status === "pending" && isSelf(p.targetId, own) && !isSelf(p.requesterId, own))
      .sort(
        (a, b) =>
          (a.createdAt ?? "").localeCompare(b.createdAt ?? "") || a.requesterId.localeCompare(b.requesterId),
      )
      .map((p) => ({
        peer: { hostname: p.peerHostname, nodeId: null, installationId: p.requesterId },
        introduction: p.introduction,
        assistantName: p.assistantName,
        humanName: p.humanName,
        receivedAt: p.createdAt ?? p.updatedAt ?? new Date(now()).toISOString(),
      }));
  }

  /**
   * The lists derived from one copy of the records, kept while the copy is the same array (nothing changed since
   * the last read): an idle poll of 10,000 peers hands back the same lists, which the reader recognises.
   */
  let lists: {
    records: readonly TrustPeer[];
    own: string | null;
    pending?: PendingTrustRequest[];
    trusted?: TrustedPeer[];
  } | null = null;
  function derived<K extends "pending" | "trusted">(
    records: readonly TrustPeer[],
    own: string | null,
    kind: K,
    build: () => NonNullable<NonNullable<typeof lists>[K]>,
  ): NonNullable<NonNullable<typeof lists>[K]> {
    if (lists?.records !== records || lists.own !== own) lists = { records, own };
    const list = lists[kind] ?? build();
    lists[kind] = list;
    return list;
  }

  const decide = async (operation: "approve" | "reject" | "block", peer: PeerRef): Promise<void> => {
    const fromId = await installationIdOf(operation, peer);
    const decision = { fromId, toId: self.installationId };
    try {
      if (operation === "approve") await client.approveTrust(decision, call());
      else if (operation === "reject") await client.rejectTrust(decision, call());
      else await client.blockTrust(decision, call());
    } catch (err) {
      throw toTransportError(operation, peer, err);
    }
  };

  return {
    kind: "relay",
    trustWatch: {
      cursor: () => trust.cursor(),
      confirm: (...args) => trust.confirm(...args),
      watch: (cursor) => trust.watch(cursor),
    },

    async send(to: PeerRef, envelope: Envelope, signal?: AbortSignal) {
      const body = encodeEnvelope(envelope);
      // The registry measures the body as stored: JSON-escaped (the envelope's quotes count twice), unquoted.
      if (Buffer.byteLength(JSON.stringify(body), "utf8") - 2 > RELAY_MAX_BODY_BYTES) {
        throw new TransportError(
          "send",
          "invalid",
          `the message is too large for the relay (at most ${RELAY_MAX_BODY_BYTES} bytes with its envelope, as stored: JSON-escaped, so quotes count twice and control characters six times); shorten or split it`,
        );
      }
      const toInstallationId = await installationIdOf("send", to);
      try {
        const result = await client.sendMessage(
          {
            fromInstallationId: self.installationId,
            fromHostname: self.hostname,
            toInstallationId,
            ...(to.hostname ? { toHostname: to.hostname } : {}),
            body,
            messageId: envelope.id,
          },
          call(signal),
        );
        return { messageId: result.messageId ?? envelope.id };
      } catch (err) {
        throw toTransportError("send", to, err);
      }
    },

    async requestTrust(peer: PeerRef, introduction: string) {
      const toId = await installationIdOf("requestTrust", peer);
      try {
        await client.requestTrust(
          {
            fromId: self.installationId,
            toId,
            introduction,
            ...(self.assistantName === undefined ? {} : { assistantName: self.assistantName }),
            ...(self.humanName === undefined ? {} : { humanName: self.humanName }),
          },
          call(),
        );
      } catch (err) {
        throw toTransportError("requestTrust", peer, err);
      }
    },

    async listPending(): Promise<PendingTrustRequest[]> {
      const snapshot = await trustSnapshot("listPending");
      if (!snapshot.byChange) return pendingFromEndpoint();
      const own = snapshot.records.length > 0 ? await ownPeerId() : null;
      return derived(snapshot.records, own, "pending", () => pendingOf(snapshot.records, own));
    },

    async listTrusted(): Promise<TrustedPeer[]> {
      const snapshot = await trustSnapshot("listTrusted");
      const own = snapshot.records.length > 0 ? await ownPeerId() : null;
      if (snapshot.byChange) {
        return derived(snapshot.records, own, "trusted", () =>
          [...trustedPeers(snapshot.records, own)].map(([id, t]) => ({
            peer: { hostname: t.hostname, nodeId: null, installationId: id },
            since: t.since,
          })),
        );
      }
      const trusted = trustedPeers(snapshot.records, own);
      // A registry that does not read by change may not name its peers: they are named by lookups (cached, see
      // hostnamesOf).
      const unnamed = [...trusted].filter(([, t]) => t.hostname === null);
      const names = await hostnamesOf(unnamed.map(([id]) => id));
      return [...trusted.entries()].map(([id, t]) => ({
        peer: { hostname: t.hostname ?? names.get(id) ?? null, nodeId: null, installationId: id },
        since: t.since,
      }));
    },

    approve: (peer: PeerRef) => decide("approve", peer),
    // The registry's trust API carries no reason; it is for our own logs only.
    reject: (peer: PeerRef, _reason?: string) => decide("reject", peer),

    async untrust(peer: PeerRef) {
      // The registry's revoke ends trust both ways whichever side asked first.
      const toId = await installationIdOf("untrust", peer);
      try {
        await client.revokeTrust({ fromId: self.installationId, toId }, call());
        return;
      } catch (err) {
        const legacy = err instanceof RegistryError && (err.status === 404 || err.status === 405);
        if (!legacy) throw toTransportError("untrust", peer, err);
      }
      // The original registry has no revoke. Rejecting the peer's request revokes trust both ways. When only our own request exists (we asked, they
      // approved) there is nothing of theirs to reject: blocking is the registry's only way to revoke then.
      try {
        await decide("reject", peer);
      } catch (err) {
        if (!(err instanceof TransportError && err.code === "peer_unknown")) throw err;
        await decide("block", peer);
      }
    },
  };
}

// The inbound pipeline shared by every transport: parse a raw message, authenticate it (its signature, its
// recipient, its age, the sender's key against the pinned one), drop what was already handled, admit it (trusted,
// not blocked, allowed, small enough, within the per-peer rate), name the sender, dispatch it, and only then record
// its key. Transport receivers act on the outcome (delete, keep for a retry, or dead-letter the
// source). Deps are plain functions injected by the composition root; nothing here knows OpenClaw.

import type { Log } from "../../log.js";
import { type BackoffPolicy, baseDelay } from "../../machines/backoff.js";
import type { Envelope } from "../transport/envelope.js";
import {
  type DecodedMessage,
  decodeMessage,
  isEnvelope,
  messageKey,
  type Receipt,
  verifyEnvelope,
} from "../transport/envelope.js";
import type {
  AdmittedMessage,
  InboundOutcome,
  InboundSink,
  PeerRef,
  RawInbound,
} from "../transport/transport.js";
import type { ProcessedKeys } from "./processed-keys.js";

/** Why admission refused a message (counted per reason in status). */
export type RefusalReason = "untrusted" | "blocked" | "not_allowed" | "too_large" | "rate_limited";

export const REFUSAL_REASONS: readonly RefusalReason[] = [
  "untrusted",
  "blocked",
  "not_allowed",
  "too_large",
  "rate_limited",
];

/**
 * Why authentication refused a message (counted per reason in status, next to admission's). None of these is
 * recorded as handled: a forged copy must not take the id of a real message.
 * - `bad_signature`: `sig` is not `from_key`'s signature over the envelope (forged or altered on the way);
 * - `wrong_recipient`: signed for someone else (`to` is neither our key nor our hostname);
 * - `stale`: signed too long ago or in the future (a replay of an old message; the sender resends a fresh copy);
 * - `unsigned`: no signature from a peer whose key is pinned (a downgrade);
 * - `key_changed`: signed by another key than the one pinned for this peer (the peer is suspended);
 * - `suspended`: from a peer suspended until the owner approves its new key.
 */
export type AuthRefusal =
  | "bad_signature"
  | "wrong_recipient"
  | "stale"
  | "unsigned"
  | "key_changed"
  | "suspended";

export const AUTH_REFUSALS: readonly AuthRefusal[] = [
  "bad_signature",
  "wrong_recipient",
  "stale",
  "unsigned",
  "key_changed",
  "suspended",
];

/** What the account knows of the key a message was signed with, and of the peer the transport names. */
export interface KeyLookup {
  /** The peer this key is pinned to: the message is theirs whatever the transport says. */
  pinnedTo: { hostname: string; suspended: boolean } | null;
  /** The peer the transport names (node id, relay id), if known: its pinned key, if any. */
  transportPeer: { key: string | null; suspended: boolean } | null;
}

/** Message authentication (src/identity): without it the pipeline takes envelopes on the transport's word. */
export interface InboundIdentity {
  /** Our public key and hostname: what `to` must name. */
  publicKey: string;
  hostname: string;
  /** Oldest signature accepted (ms); a resend is signed afresh. Default 1 hour. */
  maxAgeMs?: number;
  /** How far ahead of our clock a signature may be (ms). Default 5 min. */
  maxSkewMs?: number;
  lookup(from: PeerRef, key: string | null): KeyLookup;
  /** A pinned peer's message came under another key: suspend it and tell the owner. */
  keyChanged(from: PeerRef, key: string): void;
  /** An unpinned peer signs with this key: remember it on offer (pinned only by approval). */
  offered(from: PeerRef, key: string): void;
}

/** The admission part of the account's `inbound` config (same field names as `inboundSchema`). */
export interface InboundPolicy {
  /** Hostnames (or `node-<id>`) allowed to write; empty = any trusted peer. */
  allowFrom: readonly string[];
  blockFrom: readonly string[];
  maxMessageBytes: number;
  ratePerMinute: number;
}

export type InboundLog = Pick<Log, "info" | "warn" | "debug">;

export interface InboundPipelineDeps {
  /**
   * Keys of the messages already handled (dispatched or refused), e.g. the account database's
   * `processedKeys()`. The pipeline owns the handle from here on: its `close()` closes it.
   */
  processedKeys: ProcessedKeys;
  policy: InboundPolicy;
  /** Whether the transport trusts this peer (Pilot trust list, relay: registry trust). May throw: retried. */
  isTrusted(peer: PeerRef): boolean | Promise<boolean>;
  /** The registry's hostname for a peer (`?pilot_node_id=` for Pilot); null when unknown. May throw. */
  lookupHostname(peer: PeerRef): Promise<string | null>;
  /** Hands the message to the peer's session; rejects to have it retried. */
  dispatch(message: AdmittedMessage): Promise<void>;
  log?: InboundLog;
  now?: () => number;
  /** Failed dispatches of one message before it is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** Wait before the next attempt of a failed message. Default 1 s doubling up to 60 s. */
  retryBackoff?: BackoffPolicy;
  /** How long a registry hostname lookup is reused. Default 10 min (1 min for "unknown"). */
  hostnameCacheTtlMs?: number;
  /**
   * End-to-end receipts (see envelope.ts). Without it, receipts are neither sent nor taken (a receipt envelope is
   * still never dispatched).
   */
  receipts?: {
    /** Sends a receipt to the peer; best effort, never throws and never holds the pipeline. */
    send(to: PeerRef, receipt: Receipt): void;
    /** A receipt for one of our messages, from this trusted peer (its verified hostname). */
    take(receipt: Receipt, from: string): void;
  };
  identity?: InboundIdentity;
}

export interface InboundCounters {
  dispatched: number;
  duplicates: number;
  refused: Record<RefusalReason | AuthRefusal, number>;
  deadLettered: number;
  /** Failed attempts that were kept for a later retry. */
  retries: number;
  /** Receipts for our own messages, taken by the outbox. */
  receipts: number;
  /** Dispatched messages signed by the sender's pinned key (the rest came from unverified peers). */
  verified: number;
  /** ms since the epoch of the last message that was not a duplicate. */
  lastInboundAt: number | null;
}

export interface InboundPipeline extends InboundSink {
  counters(): InboundCounters;
  /** Applies a new admission policy (config reload) without losing counters or processed keys. */
  setPolicy(policy: InboundPolicy): void;
  /** Flushes the processed keys to disk and closes their handle. */
  close(): void;
}

const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000, factor: 2 };
const RATE_WINDOW_MS = 60_000;
// Bounds on per-key and per-peer memory: a message moved away by another tool must not pin an entry forever.
const MAX_TRACKED = 10_000;

interface RetryState {
  attempts: number;
  nextAt: number;
}

interface CachedName {
  hostname: string | null;
  until: number;
}

/** The stable identity of a peer for rate limits and the name cache. */
export function peerId(peer: PeerRef): string {
  if (peer.nodeId !== null) return `node:${peer.nodeId}`;
  if (peer.installationId !== null) return `inst:${peer.installationId}`;
  return `host:${peer.hostname ?? "?"}`;
}

/** Last-resort name of a peer the registry does not know: the full 32-bit node id (never only its low half). */
export function fallbackHostname(peer: PeerRef): string {
  if (peer.nodeId !== null) return `node-${peer.nodeId >>> 0}`;
  if (peer.installationId !== null) return `agent-${peer.installationId}`;
  return "unknown-peer";
}

class TransientError extends Error {
  override name = "TransientError";
}

function setBounded<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_TRACKED) map.delete(map.keys().next().value as K);
}

export function createInboundPipeline(deps: InboundPipelineDeps): InboundPipeline {
  const now = deps.now ?? Date.now;
  const log = deps.log;
  const maxAttempts = Math.max(1, deps.maxAttempts ?? 5);
  const backoff = deps.retryBackoff ?? DEFAULT_BACKOFF;
  const nameTtl = deps.hostnameCacheTtlMs ?? 600_000;
  let policy = normalize(deps.policy);
  const processed = deps.processedKeys;
  const retryState = new Map<string, RetryState>();
  const rateWindows = new Map<string, number[]>();
  const names = new Map<string, CachedName>();
  const counters: InboundCounters = {
    dispatched: 0,
    duplicates: 0,
    refused: {
      untrusted: 0,
      blocked: 0,
      not_allowed: 0,
      too_large: 0,
      rate_limited: 0,
      bad_signature: 0,
      wrong_recipient: 0,
      stale: 0,
      unsigned: 0,
      key_changed: 0,
      suspended: 0,
    },
    deadLettered: 0,
    retries: 0,
    receipts: 0,
    verified: 0,
    lastInboundAt: null,
  };

  /** The registry's name for the peer (transport-given, cached, or looked up); throws TransientError on failure. */
  async function verifiedHostname(peer: PeerRef): Promise<string | null> {
    if (peer.hostname) return peer.hostname;
    const id = peerId(peer);
    const cached = names.get(id);
    if (cached && cached.until > now()) return cached.hostname;
    let hostname: string | null;
    try {
      hostname = await deps.lookupHostname(peer);
    } catch (err) {
      throw new TransientError(`hostname lookup failed: ${(err as Error).message}`, { cause: err });
    }
    setBounded(names, id, { hostname, until: now() + (hostname ? nameTtl : Math.min(nameTtl, 60_000)) });
    return hostname;
  }

  /** Every name the peer is known by that it did not choose itself. */
  function verifiedNames(peer: PeerRef, hostname: string | null): string[] {
    const out = [fallbackHostname(peer)];
    if (hostname) out.push(hostname.toLowerCase());
    if (peer.nodeId !== null) out.push(String(peer.nodeId >>> 0));
    if (peer.installationId !== null) out.push(peer.installationId.toLowerCase());
    return out;
  }

  async function admit(raw: RawInbound, claimedHostname: string | null): Promise<RefusalReason | null> {
    let trusted: boolean;
    try {
      trusted = await deps.isTrusted(raw.from);
    } catch (err) {
      throw new TransientError(`trust check failed: ${(err as Error).message}`, { cause: err });
    }
    if (!trusted) return "untrusted";
    const needsName = policy.allowFrom.size > 0 || policy.blockFrom.size > 0;
    const known = needsName ? verifiedNames(raw.from, await verifiedHostname(raw.from)) : [];
    // A peer may claim any hostname in its envelope: a claim can get it blocked, never allowed.
    const claimed = claimedHostname ? [claimedHostname.toLowerCase()] : [];
    if ([...known, ...claimed].some((n) => policy.blockFrom.has(n))) return "blocked";
    if (policy.allowFrom.size > 0 && !known.some((n) => policy.allowFrom.has(n))) return "not_allowed";
    if (Buffer.byteLength(raw.data) > policy.maxMessageBytes) return "too_large";
    const id = peerId(raw.from);
    const t = now();
    const window = rateWindows.get(id) ?? [];
    let expired = 0;
    while (expired < window.length && (window[expired] ?? 0) <= t - RATE_WINDOW_MS) expired++;
    window.splice(0, expired);
    if (window.length >= policy.ratePerMinute) {
      setBounded(rateWindows, id, window);
      return "rate_limited";
    }
    window.push(t);
    setBounded(rateWindows, id, window);
    return null;
  }

  /**
   * The peer's session name. A name the transport verified (relay) wins; otherwise the name the registry or our
   * trust list gives this node. The envelope's `from_hostname` is the sender's own claim: it is used only when it
   * matches that verified name, so a trusted peer cannot write into another peer's session by claiming its name.
   */
  async function resolveHostname(raw: RawInbound, claimedHostname: string | null): Promise<string> {
    if (raw.from.hostname) return raw.from.hostname;
    let verified: string | null = null;
    try {
      verified = await verifiedHostname(raw.from);
    } catch (err) {
      // Naming only: a registry outage must not hold messages back, the node id still identifies the peer.
      log?.debug?.(`inbound: ${(err as Error).message}; naming the peer ${fallbackHostname(raw.from)}`);
    }
    if (claimedHostname && verified && claimedHostname.toLowerCase() !== verified.toLowerCase()) {
      log?.warn(
        `inbound: ${fallbackHostname(raw.from)} claims to be "${claimedHostname}" but is registered as "${verified}"; using "${verified}"`,
      );
    }
    return verified ?? fallbackHostname(raw.from);
  }

  type Authenticated = { ok: true; hostname: string | null } | { ok: false; reason: AuthRefusal };

  /**
   * Signature, recipient, age, then the key against the pinned ones. A message under a pinned key belongs to that
   * peer, and takes its name (a Pilot node id that moved, or a registry that lies about names, cannot redirect
   * it); one from a pinned peer under no key or another key is refused.
   */
  async function authenticate(raw: RawInbound, decoded: DecodedMessage): Promise<Authenticated> {
    const identity = deps.identity;
    if (!identity) return { ok: true, hostname: null };
    const envelope = isEnvelope(decoded) ? decoded.envelope : null;
    let key: string | null = null;
    if (envelope?.sig !== undefined && isEnvelope(decoded)) {
      if (!envelope.from_key || !(await verifyEnvelope(decoded.received))) {
        return { ok: false, reason: "bad_signature" };
      }
      const to = envelope.to ?? "";
      if (to !== identity.publicKey && to.toLowerCase() !== identity.hostname.toLowerCase()) {
        return { ok: false, reason: "wrong_recipient" };
      }
      key = envelope.from_key;
    }
    const { pinnedTo, transportPeer } = identity.lookup(raw.from, key);
    if (pinnedTo) {
      if (pinnedTo.suspended) return { ok: false, reason: "suspended" };
    } else if (transportPeer?.key) {
      if (key === null) return { ok: false, reason: "unsigned" };
      identity.keyChanged(raw.from, key);
      return { ok: false, reason: "key_changed" };
    } else if (transportPeer?.suspended) {
      return { ok: false, reason: "suspended" };
    }
    if (key !== null && envelope) {
      const sentAt = Date.parse(envelope.sent_at);
      const t = now();
      if (
        !Number.isFinite(sentAt) ||
        t - sentAt > (identity.maxAgeMs ?? 3_600_000) ||
        sentAt - t > (identity.maxSkewMs ?? 300_000)
      ) {
        return { ok: false, reason: "stale" };
      }
      if (!pinnedTo) identity.offered(raw.from, key);
    }
    return { ok: true, hostname: pinnedTo?.hostname ?? null };
  }

  async function remember(key: string): Promise<void> {
    try {
      await processed.record(key);
    } catch (err) {
      // Still in memory, and the source is deleted next: only a crash before that deletion could repeat it.
      log?.warn(`inbound: could not persist processed key ${key}: ${(err as Error).message}`);
    }
  }

  function failed(key: string, attempts: number, why: string): InboundOutcome {
    if (attempts >= maxAttempts) {
      retryState.delete(key);
      counters.deadLettered++;
      log?.warn(
        `inbound: message ${key} failed ${attempts} times (${why}); moving it to the dead-letter folder`,
      );
      return "dead-lettered";
    }
    const delay = baseDelay(backoff, attempts);
    setBounded(retryState, key, { attempts, nextAt: now() + delay });
    counters.retries++;
    log?.info(
      `inbound: message ${key} failed (${why}); attempt ${attempts}/${maxAttempts}, retrying in ${delay} ms`,
    );
    return "retry";
  }

  /** A refusal is remembered with its reason, so a resent copy gets the same refusal receipt. */
  const refusalKey = (reason: RefusalReason, key: string) => `refused:${reason}:${key}`;

  /** Answers a message that asked for a receipt (an older sender never asks). */
  function answer(raw: RawInbound, envelope: Envelope | null, receipt: Omit<Receipt, "for">): void {
    if (!envelope?.ack || !deps.receipts) return;
    deps.receipts.send(raw.from, { for: envelope.id, ...receipt });
  }

  /** Receipts for ours: taken from a trusted peer only, never dispatched, never answered. */
  async function takeReceipts(
    raw: RawInbound,
    envelope: Envelope,
    receipts: readonly Receipt[],
    pinnedName: string | null,
  ): Promise<InboundOutcome> {
    counters.receipts += receipts.length;
    let trusted = false;
    try {
      trusted = await deps.isTrusted(raw.from);
    } catch (err) {
      log?.debug?.(`inbound: ${receipts.length} receipt(s) dropped: ${(err as Error).message}`);
      return "receipt";
    }
    if (!trusted) {
      log?.debug?.(`inbound: receipts from untrusted ${fallbackHostname(raw.from)} dropped`);
      return "receipt";
    }
    const from = pinnedName ?? (await resolveHostname(raw, envelope.from_hostname));
    for (const receipt of receipts) deps.receipts?.take(receipt, from);
    return "receipt";
  }

  /**
   * Keys being processed now. Two inboxes feed one pipeline (transport "auto"): a copy resent over the other path
   * may arrive while the first is still in dispatch; it waits for that one, then meets its recorded key.
   */
  const inFlight = new Map<string, Promise<InboundOutcome>>();

  const pipeline: InboundPipeline = {
    async process(raw) {
      const decoded = decodeMessage(raw.data);
      const envelope = isEnvelope(decoded) ? decoded.envelope : null;
      const auth = await authenticate(raw, decoded);
      if (!auth.ok) {
        counters.refused[auth.reason]++;
        log?.info(
          `inbound: refused ${envelope ? `envelope ${envelope.id}` : "a plain message"} from ${fallbackHostname(raw.from)}: ${auth.reason}`,
        );
        // Only a genuine but old copy is answered: its sender resends the message signed afresh.
        if (auth.reason === "stale" && !envelope?.receipts) {
          answer(raw, envelope, { status: "refused", reason: "stale" });
        }
        return "refused";
      }
      if (envelope?.receipts) return takeReceipts(raw, envelope, envelope.receipts, auth.hostname);
      const key = messageKey({ name: raw.name, data: raw.data }, decoded);
      const earlier = inFlight.get(key);
      if (earlier) {
        // Why safe: only the order matters here; the earlier copy's own caller handles its outcome.
        await earlier.catch(() => undefined);
        return pipeline.process(raw);
      }
      const outcome = processKey(raw, envelope, key, auth.hostname);
      inFlight.set(key, outcome);
      try {
        return await outcome;
      } finally {
        inFlight.delete(key);
      }
    },
    counters: () => ({ ...counters, refused: { ...counters.refused } }),
    setPolicy(next) {
      policy = normalize(next);
    },
    close: () => processed.close(),
  };
  return pipeline;

  async function processKey(
    raw: RawInbound,
    envelope: Envelope | null,
    key: string,
    pinnedName: string | null,
  ): Promise<InboundOutcome> {
    if (processed.has(key)) {
      counters.duplicates++;
      log?.debug?.(`inbound: duplicate ${key} skipped`);
      // A resend: our receipt was lost or late. Answer again, with what happened the first time.
      const refused = REFUSAL_REASONS.find((reason) => processed.has(refusalKey(reason, key)));
      answer(raw, envelope, refused ? { status: "refused", reason: refused } : { status: "delivered" });
      return "duplicate";
    }
    const retry = retryState.get(key);
    if (retry && retry.nextAt > now()) return "retry";
    counters.lastInboundAt = now();
    const claimed = envelope?.from_hostname ?? null;
    const attempts = (retry?.attempts ?? 0) + 1;

    // A message admitted once is not re-admitted on a retry (its rate-limit slot is already taken).
    if (!retry) {
      let refusal: RefusalReason | null;
      try {
        refusal = await admit(raw, claimed);
      } catch (err) {
        if (!(err instanceof TransientError)) throw err;
        return failed(key, attempts, err.message);
      }
      if (refusal) {
        counters.refused[refusal]++;
        log?.info(
          `inbound: refused ${key} from ${fallbackHostname(raw.from)} (${claimed ?? "no hostname"}): ${refusal}`,
        );
        await remember(key);
        if (envelope?.ack) await remember(refusalKey(refusal, key));
        answer(raw, envelope, { status: "refused", reason: refusal });
        return "refused";
      }
    }

    const hostname = pinnedName ?? (await resolveHostname(raw, claimed));
    const message: AdmittedMessage = {
      key,
      transport: raw.transport,
      peer: { ...raw.from, hostname },
      text: envelope ? envelope.body : raw.data,
      envelope,
      receivedAt: raw.receivedAt,
    };
    try {
      await deps.dispatch(message);
    } catch (err) {
      return failed(key, attempts, `dispatch failed: ${(err as Error).message}`);
    }
    retryState.delete(key);
    // Record before the caller deletes the source: a crash in between leaves a file we recognise as done.
    await remember(key);
    counters.dispatched++;
    if (pinnedName !== null) counters.verified++;
    answer(raw, envelope, { status: "delivered" });
    return "dispatched";
  }
}

interface NormalizedPolicy {
  allowFrom: Set<string>;
  blockFrom: Set<string>;
  maxMessageBytes: number;
  ratePerMinute: number;
}

function normalize(policy: InboundPolicy): NormalizedPolicy {
  return {
    allowFrom: new Set(policy.allowFrom.map((h) => h.trim().toLowerCase()).filter((h) => h !== "")),
    blockFrom: new Set(policy.blockFrom.map((h) => h.trim().toLowerCase()).filter((h) => h !== "")),
    maxMessageBytes: policy.maxMessageBytes,
    ratePerMinute: policy.ratePerMinute,
  };
}

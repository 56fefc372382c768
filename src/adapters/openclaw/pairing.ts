// Incoming handshake requests as OpenClaw pairing requests of this channel: `openclaw pairing list/approve
// agent-registry` and the Control UI's "DM access requests" queue show and decide them like any DM sender.
//
// What grants trust stays the handshake: a pairing approval only adds an approval token to OpenClaw's allow list
// (in the CLI's process or the gateway's); the bridge below reads that list, approves the handshake as the owner
// (which pins the key the owner saw in the request) and removes the token. The allow list never admits a peer.
import type { ChannelPlugin } from "openclaw/plugin-sdk/channel-core";
import type { Log } from "../../log.js";
import type { PeerView } from "../../runtime/account-network.js";

/** OpenClaw drops a pending pairing request this long after it was created (its CHANNEL_PAIRING_PENDING_TTL_MS). */
export const PAIRING_REQUEST_TTL_MS = 3_600_000;
/** Longest quoted introduction shown in a pairing request. */
export const INTRODUCTION_MAX_CHARS = 280;
const FIELD_MAX_CHARS = 120;
const UNVERIFIED = "unverified";
const TOKEN_PREFIX = "handshake:";

/** A pending pairing request as OpenClaw's store holds it. */
export interface PairingRequestRow {
  id: string;
  code: string;
  createdAt: string;
}

/** The part of OpenClaw's pairing store one account uses (see pairing-store.ts). */
export interface PairingStore {
  upsert(id: string, meta: Record<string, string>): Promise<{ code: string; created: boolean }>;
  /** The account's pairing allow list: approval tokens written by `pairing approve` or the Control UI. */
  approvals(): Promise<string[]>;
  consume(entry: string): Promise<void>;
  /** Pending requests of the account, or null when this OpenClaw's store cannot be listed. */
  requests(): PairingRequestRow[] | null;
  /** Removes the account's request for `id`; false when there was none or the store cannot remove it. */
  remove(id: string): boolean;
}

/** What the bridge needs from the account's peer network. */
export interface PairingNetwork {
  view(key: string): PeerView | null;
  peers(): PeerView[];
  approve(ref: string): Promise<PeerView>;
  reject(ref: string, reason?: string): Promise<PeerView>;
}

/** Control characters (C0, C1), bidi overrides and zero-width marks: another agent's text must not steer a terminal. */
const UNSAFE = /[\p{Cc}\u200B-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]/gu;

/** One line of untrusted text, bounded: control characters become spaces, runs of space collapse. */
export function cleanText(text: string, max: number): string {
  const flat = text.replace(UNSAFE, " ").replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1).trimEnd()}…` : flat;
}

/** A fingerprint as an allow-list token carries it: digits only (six five-digit groups), or "unverified". */
function compactFingerprint(fingerprint: string | null | undefined): string {
  const digits = (fingerprint ?? "").replace(/\D/g, "");
  return digits.length > 0 ? digits : UNVERIFIED;
}

/** The peer key a request stands for: its hostname, else the node id the handshake knows it by. */
export function pairingId(peer: PeerView): string | null {
  return peer.hostname ?? (peer.nodeId !== null ? `node-${peer.nodeId}` : null);
}

/** The allow-list entry an approval writes: the request's peer and the key fingerprint the owner saw. */
export function approvalToken(id: string, fingerprint: string | null | undefined): string {
  return `${TOKEN_PREFIX}${id.trim().toLowerCase()}:${compactFingerprint(fingerprint)}`;
}

/** An allow-list entry read back: a token, or a bare id (an OpenClaw that wrote the request id instead). */
export function parseApproval(entry: string): { id: string; fingerprint: string | null } | null {
  const value = entry.trim().toLowerCase();
  if (!value.startsWith(TOKEN_PREFIX)) {
    return /^[a-z0-9][a-z0-9._-]{0,252}$/.test(value) ? { id: value, fingerprint: null } : null;
  }
  const rest = value.slice(TOKEN_PREFIX.length);
  const cut = rest.lastIndexOf(":");
  if (cut <= 0) return null;
  return { id: rest.slice(0, cut), fingerprint: rest.slice(cut + 1) };
}

/** The request's metadata as `pairing list` and the Control UI show it: all of it untrusted peer text, cleaned. */
export function pairingMeta(peer: PeerView): Record<string, string> {
  const meta: Record<string, string> = {
    hostname: cleanText(pairingId(peer) ?? "?", FIELD_MAX_CHARS),
    fingerprint: peer.offeredFingerprint ?? `${UNVERIFIED} (no key offered: approving pins none)`,
  };
  const name = peer.assistantName ?? peer.humanName;
  if (name) meta.displayName = cleanText(name, FIELD_MAX_CHARS);
  if (peer.humanName && peer.assistantName) meta.owner = cleanText(peer.humanName, FIELD_MAX_CHARS);
  const intro = peer.introduction ? cleanText(peer.introduction, INTRODUCTION_MAX_CHARS) : "";
  if (intro) meta.introduction = `"${intro}"`;
  return meta;
}

/** The channel's pairing adapter: approvals become tokens the gateway consumes. */
export function pairingAdapter(options: {
  /** Wakes the account's bridge when the approval happens in the gateway process (Control UI with notify). */
  wake?: (accountId: string | undefined) => void;
}): NonNullable<ChannelPlugin["pairing"]> {
  return {
    idLabel: "Agent hostname",
    normalizeAllowEntry: (entry) => entry.trim().toLowerCase(),
    resolveApprovalStoreEntry: ({ id, meta }) => approvalToken(id, meta?.fingerprint),
    // OpenClaw calls this only with --notify (CLI) or the Control UI's "notify" box. The handshake approval
    // itself tells the peer; here the gateway only looks at the allow list at once instead of on its next tick.
    notifyApproval: async ({ accountId }) => options.wake?.(accountId),
  };
}

interface Tracked {
  code: string;
  /** The offered key's fingerprint when the request was written (what the owner approves). */
  fingerprint: string;
  createdAtMs: number;
}

export interface PairingBridge {
  /** A peer's handshake request was announced: write (or refresh) its pairing request. */
  announce(key: string): void;
  /** Looks at the allow list and the requests now (approvals, dismissals, expiries, decided peers). */
  reconcile(): Promise<void>;
  /** The peer table changed: requests of peers decided elsewhere (gateway method, tool) go at once. */
  settle(): void;
  /** Pending pairing requests this bridge wrote, by peer key. */
  tracked(): ReadonlyMap<string, Readonly<Tracked>>;
}

export interface PairingBridgeOptions {
  accountId: string;
  store: PairingStore;
  network: () => PairingNetwork | null;
  log: Log;
  now?: () => number;
}

export function createPairingBridge(options: PairingBridgeOptions): PairingBridge {
  const { store, log, accountId } = options;
  const now = options.now ?? Date.now;
  const tracked = new Map<string, Tracked>();
  const toAnnounce = new Set<string>();
  let seeded = false;
  let running: Promise<void> | null = null;
  let again = false;
  const failedEntries = new Set<string>();

  const isPending = (key: string) => options.network()?.view(key)?.state === "pendingApproval";

  const write = async (network: PairingNetwork, key: string) => {
    const peer = network.view(key);
    if (peer?.state !== "pendingApproval") return;
    const { code, created } = await store.upsert(key, pairingMeta(peer));
    if (!code) {
      // OpenClaw keeps at most three pending requests per account; the rest wait in `agent-registry pending`.
      log.warn(
        `agent-registry: ${accountId}: OpenClaw's pairing queue is full (3 per account); approve ${key} with \`openclaw agent-registry approve ${key} --account ${accountId}\``,
      );
      return;
    }
    const previous = tracked.get(key);
    tracked.set(key, {
      code,
      fingerprint: compactFingerprint(peer.offeredFingerprint),
      createdAtMs: created || !previous ? now() : previous.createdAtMs,
    });
    if (created) {
      log.info(
        `agent-registry: ${accountId}: pairing request ${code} for ${key} (openclaw pairing approve agent-registry ${code} --account ${accountId})`,
      );
    }
  };

  const applyApproval = async (network: PairingNetwork, entry: string) => {
    const parsed = parseApproval(entry);
    if (!parsed) return; // Not ours to interpret (a hand-written entry); it admits nothing here either.
    const peer = network.view(parsed.id);
    const mine = tracked.get(parsed.id);
    const approvedKey = parsed.fingerprint ?? mine?.fingerprint ?? null;
    const offered = peer ? compactFingerprint(peer.offeredFingerprint) : null;
    if (peer?.state !== "pendingApproval" || approvedKey === null || approvedKey !== offered) {
      await store.consume(entry);
      tracked.delete(parsed.id);
      log.warn(
        peer?.state === "pendingApproval"
          ? `agent-registry: ${accountId}: the pairing approval for ${parsed.id} was for another key than it offers now; nothing approved, a new request follows`
          : `agent-registry: ${accountId}: the pairing approval for ${parsed.id} came after its handshake was decided (${peer?.state ?? "unknown peer"}); nothing changed`,
      );
      if (peer?.state === "pendingApproval") toAnnounce.add(parsed.id);
      return;
    }
    try {
      await network.approve(parsed.id);
    } catch (error) {
      // Kept for the next tick (e.g. the transport is down); said once per entry.
      if (!failedEntries.has(entry)) {
        failedEntries.add(entry);
        log.warn(
          `agent-registry: ${accountId}: approving ${parsed.id} from its pairing approval failed, retrying: ${(error as Error).message}`,
        );
      }
      return;
    }
    failedEntries.delete(entry);
    await store.consume(entry);
    tracked.delete(parsed.id);
    log.info(`agent-registry: ${accountId}: ${parsed.id} approved through OpenClaw pairing`);
  };

  const run = async () => {
    const network = options.network();
    if (!network) return;
    if (!seeded) {
      seeded = true;
      // Requests announced before a restart are not announced again: write them all once.
      for (const peer of network.peers()) {
        const key = peer.state === "pendingApproval" ? pairingId(peer) : null;
        if (key) toAnnounce.add(key);
      }
    }
    for (const key of [...toAnnounce]) {
      toAnnounce.delete(key);
      await write(network, key);
    }
    // The requests before the allow list: an approval removes the request and adds its token in one
    // transaction, so a request missing here has its token in the list read after it, or was dismissed.
    const rows = store.requests();
    const approvals = await store.approvals();
    const approved = new Set<string>();
    for (const entry of approvals) {
      const parsed = parseApproval(entry);
      if (parsed) approved.add(parsed.id);
      await applyApproval(network, entry);
    }
    for (const [key, request] of [...tracked]) {
      if (!isPending(key)) {
        store.remove(key);
        tracked.delete(key);
        continue;
      }
      if (approved.has(key)) continue;
      const row = rows?.find((r) => r.id === key);
      if (row) {
        request.code = row.code;
        continue;
      }
      const expired = now() - request.createdAtMs >= PAIRING_REQUEST_TTL_MS - 5_000;
      if (rows === null || expired) {
        // OpenClaw dropped it after its hour (or cannot say): the handshake still waits, so ask again.
        if (expired) await write(network, key);
        continue;
      }
      tracked.delete(key);
      try {
        await network.reject(key, "dismissed by the owner");
        log.info(`agent-registry: ${accountId}: ${key}'s request was dismissed in OpenClaw: rejected`);
      } catch (error) {
        log.warn(
          `agent-registry: ${accountId}: rejecting dismissed ${key} failed: ${(error as Error).message}`,
        );
      }
    }
  };

  const reconcile = async (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await run();
        } while (again);
      } catch (error) {
        log.warn(`agent-registry: ${accountId}: pairing reconciliation failed: ${(error as Error).message}`);
      } finally {
        running = null;
      }
    })();
    return running;
  };

  return {
    announce(key) {
      toAnnounce.add(key);
      void reconcile();
    },
    reconcile,
    settle() {
      for (const key of [...tracked.keys()]) {
        if (isPending(key)) continue;
        store.remove(key);
        tracked.delete(key);
      }
    },
    tracked: () => tracked,
  };
}

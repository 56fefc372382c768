// The account's table of peers: one plain record per peer (its handshake's persisted snapshot), kept by the
// account root (persisted in the account's database, read by status, the tool and the gateway methods).
//
// The table is immutable like all context, and built for 10,000 peers: records sit in buckets by a hash of
// their key, so a change copies one bucket (about 1/256 of the table) and the bucket index, never the whole
// table. Copying a 10,000-key object per change made settling 10,000 peers quadratic (47 s of spreads alone).
import type { PeerState } from "./handshake.machine.js";
import { type PeerRef, peerKey } from "./types.js";

const BUCKETS = 256;

/** Peer key -> the persisted record of its handshake, in buckets (read it through the functions below). */
export interface PeerTable {
  readonly size: number;
  /** Bucket number -> (peer key -> record). Only non-empty buckets are present. */
  readonly buckets: Readonly<Record<string, Readonly<Record<string, PeerState>>>>;
}

/** One change of the table, as the store writes it: a new or changed record, or null for a removed peer. */
export interface PeerChange {
  key: string;
  record: PeerState | null;
}

export const EMPTY_PEERS: PeerTable = { size: 0, buckets: {} };

/** FNV-1a over the key's UTF-16 units: cheap, and spreads similar hostnames over the buckets. */
function bucketOf(key: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return String((hash >>> 0) % BUCKETS);
}

export function getPeer(table: PeerTable, key: string): PeerState | undefined {
  return table.buckets[bucketOf(key)]?.[key];
}

/** Every record with its key (bucket order: stable for a given table, not insertion order). */
export function* peerEntries(table: PeerTable): Generator<[string, PeerState]> {
  for (const bucket of Object.values(table.buckets)) yield* Object.entries(bucket);
}

export function peerRecords(table: PeerTable): PeerState[] {
  return Object.values(table.buckets).flatMap((bucket) => Object.values(bucket));
}

const counted = new WeakMap<PeerTable, Record<PeerState["state"], number>>();

/** How many peers are in each state; counted once per table (status reads it on every call). */
export function countPeers(table: PeerTable): Readonly<Record<PeerState["state"], number>> {
  let counts = counted.get(table);
  if (!counts) {
    counts = {
      unknown: 0,
      requested: 0,
      pendingApproval: 0,
      trusted: 0,
      suspended: 0,
      rejected: 0,
      revoked: 0,
    };
    for (const [, record] of peerEntries(table)) counts[record.state]++;
    counted.set(table, counts);
  }
  return counts;
}

/** The table with these records set; each touched bucket is copied once however many records it receives. */
export function withPeers(table: PeerTable, entries: Iterable<readonly [string, PeerState]>): PeerTable {
  let buckets: Record<string, Record<string, PeerState>> | null = null;
  const copied = new Set<string>();
  let size = table.size;
  for (const [key, record] of entries) {
    buckets ??= { ...table.buckets };
    const id = bucketOf(key);
    if (!copied.has(id)) {
      buckets[id] = { ...buckets[id] };
      copied.add(id);
    }
    const bucket = buckets[id]!;
    if (!(key in bucket)) size += 1;
    bucket[key] = record;
  }
  return buckets ? { size, buckets } : table;
}

export function peerTableOf(entries: Iterable<readonly [string, PeerState]>): PeerTable {
  return withPeers(EMPTY_PEERS, entries);
}

/**
 * What changed from `before` to `after` (for the store): only buckets that are not the same object are
 * compared, so a change costs its bucket, not the table.
 */
export function peerChanges(before: PeerTable, after: PeerTable): PeerChange[] {
  if (before === after) return [];
  const changes: PeerChange[] = [];
  const ids = new Set([...Object.keys(before.buckets), ...Object.keys(after.buckets)]);
  for (const id of ids) {
    const old = before.buckets[id] ?? {};
    const now = after.buckets[id] ?? {};
    if (old === now) continue;
    for (const [key, record] of Object.entries(now)) {
      if (old[key] !== record) changes.push({ key, record });
    }
    for (const key of Object.keys(old)) if (!(key in now)) changes.push({ key, record: null });
  }
  return changes;
}

/** The child id of a peer's handshake actor. */
export function handshakeId(key: string): string {
  return `handshake:${key}`;
}

/** The peer key of a handshake actor's id, or null for another child. */
export function peerKeyOfChild(id: string): string | null {
  return id.startsWith("handshake:") ? id.slice("handshake:".length) : null;
}

/** Finds peers by hostname (the `node-<id>` name included), node id or relay id. */
export interface PeerIndex {
  find(ref: PeerRef): string | null;
  /** A record added while the index is in use (a peer first seen in the same reading). */
  add(key: string, record: PeerState): void;
}

function nodeIdOfRef(ref: PeerRef): number | null {
  const node = ref.hostname ? /^node-(\d+)$/.exec(ref.hostname)?.[1] : undefined;
  return node === undefined ? ref.nodeId : Number(node);
}

/** An index over the table, built once for a batch of look-ups (a trust list of 10,000 peers). */
export function indexPeers(table: PeerTable): PeerIndex {
  const byHostname = new Map<string, string>();
  const byNode = new Map<number, string>();
  const byRelay = new Map<string, string>();
  const add = (key: string, record: PeerState) => {
    if (record.hostname !== null && !byHostname.has(record.hostname)) byHostname.set(record.hostname, key);
    if (record.nodeId !== null && !byNode.has(record.nodeId)) byNode.set(record.nodeId, key);
    if (record.installationId !== null && !byRelay.has(record.installationId)) {
      byRelay.set(record.installationId, key);
    }
  };
  for (const [key, record] of peerEntries(table)) add(key, record);
  const keys = new Set<string>();
  return {
    find(ref) {
      const own = peerKey(ref);
      if (keys.has(own) || getPeer(table, own)) return own;
      const nodeId = nodeIdOfRef(ref);
      return (
        (ref.hostname ? byHostname.get(ref.hostname) : undefined) ??
        (nodeId !== null ? byNode.get(nodeId) : undefined) ??
        (ref.installationId ? byRelay.get(ref.installationId) : undefined) ??
        null
      );
    },
    add(key, record) {
      keys.add(key);
      add(key, record);
    },
  };
}

/**
 * The key under which the table knows this peer: its own key, else a record with the same hostname (the
 * `node-<id>` name included), node id or relay id. null: a peer not seen before. One look-up scans the table
 * when the peer's own key misses; for many, use `indexPeers`.
 */
export function findPeerKey(table: PeerTable, ref: PeerRef): string | null {
  const own = peerKey(ref);
  if (getPeer(table, own)) return own;
  const nodeId = nodeIdOfRef(ref);
  for (const [key, record] of peerEntries(table)) {
    if (ref.hostname && record.hostname === ref.hostname) return key;
    if (nodeId !== null && record.nodeId === nodeId) return key;
    if (ref.installationId && record.installationId === ref.installationId) return key;
  }
  return null;
}

/** Does `ref` add something the record does not know (a node id, a newer relay id)? */
export function addsToRecord(record: PeerState, ref: PeerRef): boolean {
  return (
    (record.hostname === null && ref.hostname !== null) ||
    (record.nodeId === null && ref.nodeId !== null) ||
    (ref.installationId !== null && ref.installationId !== record.installationId)
  );
}

/** The record of a peer that has no handshake yet. */
export function newPeerRecord(ref: PeerRef): PeerState {
  return {
    hostname: ref.hostname,
    nodeId: ref.nodeId,
    installationId: ref.installationId,
    state: "unknown",
    introduction: null,
    justification: null,
    announcedAt: null,
    updatedAt: null,
    assistantName: null,
    humanName: null,
    key: null,
    offeredKey: null,
  };
}

/** Field by field: is `next` what the table already holds for this peer? */
export function samePeerState(current: PeerState | undefined, next: PeerState): boolean {
  if (!current) return false;
  return (Object.keys(next) as Array<keyof PeerState>).every(
    (field) => (current[field] ?? null) === (next[field] ?? null),
  );
}

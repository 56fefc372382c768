// The account's table of peers: one plain record per handshake actor, kept by the account root from its
// children's snapshots (persisted as peers.json, read by status, the tool and the gateway methods).
import type { PeerState } from "./handshake.machine.js";
import { type PeerRef, peerKey } from "./types.js";

/** Peer key -> the persisted record of its handshake actor (`handshake:<key>`). */
export type PeerTable = Record<string, PeerState>;

/** The child id of a peer's handshake actor. */
export function handshakeId(key: string): string {
  return `handshake:${key}`;
}

/**
 * The key under which the table knows this peer: its own key, else a record with the same hostname (the
 * `node-<id>` name included), node id or relay id. null: a peer not seen before.
 */
export function findPeerKey(peers: PeerTable, ref: PeerRef): string | null {
  const own = peerKey(ref);
  if (peers[own]) return own;
  const node = ref.hostname ? /^node-(\d+)$/.exec(ref.hostname)?.[1] : undefined;
  const nodeId = node === undefined ? ref.nodeId : Number(node);
  for (const [key, record] of Object.entries(peers)) {
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

/** The record of a peer that has no handshake actor yet. */
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
  };
}

/** Field by field: is `next` what the table already holds for this peer? */
export function samePeerState(current: PeerState | undefined, next: PeerState): boolean {
  if (!current) return false;
  return (Object.keys(next) as Array<keyof PeerState>).every(
    (field) => (current[field] ?? null) === (next[field] ?? null),
  );
}

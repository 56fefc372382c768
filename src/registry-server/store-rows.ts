// Rows as both stores read them back: the two schemas name their columns alike, so one mapping serves both. A
// store passes its own reading of the one column they keep differently (capabilities: JSON text in SQLite, a
// text array in PostgreSQL).
import type { ListedTrust, StoredAgent, StoredMessage, StoredTrust, TrustStatus } from "./store.js";

/** A row as a driver returns it: column name to value. */
export type Row = Record<string, unknown>;

export const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
export const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function agentFromRow(row: Row, capabilities: string[]): StoredAgent {
  return {
    id: String(row.id),
    hostname: String(row.hostname),
    installationId: str(row.installation_id),
    peerId: str(row.peer_id),
    pilotNodeId: num(row.pilot_node_id),
    pilotAddress: str(row.pilot_address),
    displayName: str(row.display_name),
    description: str(row.description),
    capabilities,
    tokenHash: str(row.token_hash),
    publicKey: str(row.public_key),
    signedRecord: str(row.signed_record),
    lastSeen: Number(row.last_seen),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export function messageFromRow(row: Row): StoredMessage {
  return {
    seq: Number(row.seq),
    messageId: String(row.message_id),
    toInstallationId: String(row.to_installation_id),
    fromInstallationId: String(row.from_installation_id),
    fromHostname: String(row.from_hostname),
    bodyJson: String(row.body_json),
    createdAt: Number(row.created_at),
  };
}

export function trustFromRow(row: Row): StoredTrust {
  return {
    changeSeq: Number(row.change_seq ?? 0),
    requesterId: String(row.requester_id),
    targetId: String(row.target_id),
    status: String(row.status) as TrustStatus,
    introduction: str(row.introduction),
    assistantName: str(row.assistant_name),
    humanName: str(row.human_name),
    createdAt: Number(row.created_at),
    approvedAt: num(row.approved_at),
    updatedAt: Number(row.updated_at),
  };
}

export const listedTrustFromRow = (row: Row): ListedTrust => ({
  ...trustFromRow(row),
  peerHostname: str(row.peer_hostname),
});

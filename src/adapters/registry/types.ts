// Domain types of the registry client (camelCase); the wire format (snake_case) lives in schemas.ts.

/** What this agent tells the registry about itself. */
export interface AgentMetadata {
  hostname: string;
  installationId: string;
  pilotNodeId?: string | null;
  pilotAddress?: string | null;
  displayName?: string | null;
  description?: string | null;
  capabilities: string[];
  /** The installation's Ed25519 public key (base64url), bound to the record by the registry. */
  publicKey?: string | null;
  /** The agent's JWS over its public fields (src/identity/signed-record.ts). */
  signedRecord?: string | null;
}

/**
 * "unknown": the registry sent no status (the original registry never does), so the client cannot tell
 * whether the agent is online; it is never shown or used as online.
 */
export type AgentStatus = "online" | "offline" | "unknown";

export interface AgentRecord {
  id: string;
  hostname: string;
  /**
   * The id other agents address this agent by on the relay and in trust: its public `peer_id` on registries
   * that have one, else (the original registry) its `installation_id`. Never another agent's secret.
   */
  installationId: string | null;
  /** The registry's public peer id; null on the original registry. */
  peerId: string | null;
  pilotNodeId: string | null;
  pilotAddress: string | null;
  displayName: string | null;
  description: string | null;
  capabilities: string[];
  status: AgentStatus;
  lastSeen: string | null;
  createdAt: string | null;
  updatedAt: string | null;
  /** The agent's public key, on registries with key support; untrusted until its signed record verifies. */
  publicKey?: string | null;
  /** The agent's JWS over its public fields; absent on registries without key support. */
  signedRecord?: string | null;
  /** What the plugin made of the signature (src/runtime/record-check.ts); absent until checked. */
  verification?: RecordVerification;
}

/**
 * A record's signature as checked: `verified` (signed by the key it names, as served, not older than one seen,
 * and the pinned key if the peer has one), `unsigned` (a registry or agent without keys), or ignored: `invalid`
 * (forged or rewritten), `stale` (older than one seen), `key_mismatch` (another key than the pinned one).
 */
export interface RecordVerification {
  status: "verified" | "unsigned" | "invalid" | "stale" | "key_mismatch";
  key: string | null;
  fingerprint: string | null;
  /** Why it is ignored, in words. */
  reason: string | null;
}

export interface AgentPage {
  agents: AgentRecord[];
  total: number;
  /**
   * What the registry could not do as asked (an older registry that ignores `offset` or `match: "all"`), in
   * words for the user or agent; absent when it did everything. The client works around what it can
   * (filtering `all` itself, cutting pages from the first results), so the agents are right, but `total`
   * and later pages may be incomplete.
   */
  caveats?: string[];
}

export interface RegisterResult {
  record: AgentRecord;
  /** null when the server issues no agent tokens (the original registry). */
  agentToken: string | null;
  /** true on 201 (new record); false when an existing record was refreshed. */
  created: boolean;
}

export interface HeartbeatResult {
  /** null when the server does not say (the original registry answers `{ok:true}` or nothing). */
  lastSeen: string | null;
  ttlSeconds: number | null;
}

export interface PatchResult {
  record: AgentRecord;
  via: "patch" | "upsert";
  /** A fresh token when the fallback upsert issued one (the old token is then void); null otherwise. */
  agentToken: string | null;
}

export interface DeregisterResult {
  /** false when the registry did not know the agent any more (already expired or deleted). */
  removed: boolean;
}

export interface ListFilters {
  hostname?: string;
  installationId?: string;
  pilotNodeId?: string;
  includeOffline?: boolean;
  limit?: number;
  offset?: number;
}

/** Agents to look up in one batch (extension): by Pilot node id (decimal) and by public peer id. */
export interface AgentLookupQuery {
  pilotNodeIds?: readonly string[];
  peerIds?: readonly string[];
}

export interface SearchQuery {
  q?: string;
  capabilities?: string[];
  match?: "any" | "all";
  limit?: number;
  offset?: number;
  includeOffline?: boolean;
}

export interface RelayMessageToSend {
  fromInstallationId: string;
  fromHostname: string;
  toInstallationId?: string;
  toHostname?: string;
  body: string;
  messageId?: string;
}

export interface SendMessageResult {
  messageId: string | null;
}

export interface InboxQuery {
  installationId: string;
  after?: string | null;
  limit?: number;
  /** Long-poll seconds (0-30); the request timeout is extended by this much. */
  wait?: number;
  /**
   * The caller's trust-list cursor: the registry then says whether its trust records changed after it
   * (`trustChanged`), and ends a long-poll as soon as they do (extension of the reference registry).
   */
  trustAfter?: string | null;
}

/** Why an inbox message could not be taken (counted per reason in the receiver's status). */
export type UnreadableReason = "body_not_string" | "too_large" | "malformed";

/**
 * A message of an inbox page that failed validation on its own. The rest of the page is still delivered; the
 * receiver dead-letters this one by id (or skips it by cursor when it has no id), so it never stalls the inbox.
 */
export interface UnreadableRelayMessage {
  /** Index in the page as the registry sent it: readable messages fill the other positions, in order. */
  position: number;
  messageId: string | null;
  cursor: string | null;
  fromHostname: string | null;
  fromInstallationId: string | null;
  reason: UnreadableReason;
  /** What was wrong, for logs and the dead-letter file. */
  detail: string;
  /** The message as received (for the dead-letter copy; bodies are bounded by the response-size limit). */
  raw: unknown;
}

export interface RelayMessage {
  messageId: string;
  fromInstallationId: string | null;
  fromHostname: string | null;
  body: string;
  createdAt: string | null;
  cursor: string | null;
}

export interface InboxPage {
  messages: RelayMessage[];
  /** Messages that failed validation; see UnreadableRelayMessage.position for where they stood. */
  unreadable: UnreadableRelayMessage[];
  nextCursor: string | null;
  /** With `trustAfter`: whether the caller's trust changed after it; absent when the registry does not say. */
  trustChanged?: boolean;
}

export interface AckRequest {
  installationId: string;
  messageIds: string[];
}

export interface AckResult {
  acked: number;
}

export type TrustStatus = "pending" | "approved" | "rejected" | "blocked" | "unknown";

export interface TrustRequest {
  fromId: string;
  toId: string;
  introduction?: string;
  assistantName?: string;
  humanName?: string;
}

export interface TrustDecision {
  /** The requester. */
  fromId: string;
  /** Self: the installation deciding. */
  toId: string;
}

export interface TrustStatusResult {
  status: TrustStatus;
}

export interface TrustRevocation {
  /** One side of the relationship (either may be the caller's own id). */
  fromId: string;
  toId: string;
}

export interface PendingTrustRequest {
  fromId: string;
  fromAssistantName: string | null;
  fromHumanName: string | null;
  introduction: string | null;
  createdAt: string | null;
}

export interface TrustPeer {
  requesterId: string;
  targetId: string;
  status: TrustStatus;
  createdAt: string | null;
  approvedAt: string | null;
  /** When the record last changed (null from registries that do not say). */
  updatedAt: string | null;
  /** Hostname of the other side's agent, as the registry names it (null: none, or the registry does not say). */
  peerHostname: string | null;
  /** A pending request's text, shown to its target only (null otherwise, or from registries without it). */
  introduction: string | null;
  assistantName: string | null;
  humanName: string | null;
}

/** Where to read trust changes from, and how many records a page may hold at most. */
export interface TrustChangesQuery {
  /** A `nextCursor` from an earlier read; null or absent reads from the start. */
  after?: string | null;
  limit?: number;
}

/** One page of a caller's trust records changed after a cursor. */
export interface TrustChangesPage {
  peers: TrustPeer[];
  /**
   * Where the next read continues. Null when the registry does not read by change (the original ignores the
   * parameters): `peers` is then the whole list, every time.
   */
  nextCursor: string | null;
  /** Another page follows at once. */
  hasMore: boolean;
}

/** Options every call accepts last. `token` is the agent token for calls that act as an agent. */
export interface CallOptions {
  signal?: AbortSignal;
  token?: string | null;
}

// Storage interface of the reference registry server. The service holds the rules (upsert, liveness, trust,
// tokens); a store only persists rows. Calls are asynchronous because PostgreSQL is (a network round trip);
// the SQLite store answers at once. A read-modify-write is atomic only inside transaction(): each store makes
// a transaction behave as if transactions ran one at a time (SQLite: one at a time; PostgreSQL: SERIALIZABLE
// with retries), so the service's rules hold with any number of concurrent requests and replicas.

/** An agent row as stored. Times are epoch milliseconds. */
export interface StoredAgent {
  id: string;
  hostname: string;
  /** Secret of the owner's installation: never in public records (see peerId). */
  installationId: string | null;
  /** Public, one-way id derived from installationId (peerIdOf); null for anonymous registrations. */
  peerId: string | null;
  pilotNodeId: number | null;
  pilotAddress: string | null;
  displayName: string | null;
  description: string | null;
  /** Lowercase, de-duplicated, in registration order. */
  capabilities: string[];
  /** sha256 (hex) of the current agent token; null when none was issued. */
  tokenHash: string | null;
  /**
   * The Ed25519 public key the record is bound to (base64url), or null: once set, only requests signed with it
   * may re-register, change or delete the record (the operator's release unbinds it).
   */
  publicKey: string | null;
  /** The agent's JWS over the record's public fields, as it sent it; null exactly when publicKey is. */
  signedRecord: string | null;
  lastSeen: number;
  createdAt: number;
  updatedAt: number;
}

export type AgentLiveness = Pick<StoredAgent, "tokenHash" | "lastSeen">;

export interface AgentListQuery {
  hostname?: string;
  installationId?: string;
  peerId?: string;
  pilotNodeId?: number;
  /** Only agents with lastSeen >= this (online cut-off); undefined = include offline. */
  seenSince?: number;
  limit: number;
  offset: number;
}

/** A batched lookup by ids: agents announcing any of the node ids, or holding any of the peer ids. */
export interface AgentLookupQuery {
  pilotNodeIds: number[];
  peerIds: string[];
  /**
   * Most agents returned per node id (node ids are announced, not proven, so many records may claim one):
   * those seen most recently.
   */
  perNodeId: number;
}

export interface AgentSearchQuery {
  /** Whole query, trimmed and lowercased ("" when absent): an exact hostname or capability hit ranks first. */
  phrase: string;
  /**
   * Lowercase words of the query; each must be a prefix of a word of the agent (hostname, display name,
   * description, capabilities); a word with punctuation must also occur verbatim.
   */
  terms: string[];
  /** Lowercase capability filter. */
  capabilities: string[];
  match: "any" | "all";
  seenSince?: number;
  limit: number;
  offset: number;
}

export interface Page<T> {
  items: T[];
  total: number;
  /** False when `total` is an estimate (a search too broad to count in full); absent or true: exact. */
  totalExact?: boolean;
}

/**
 * A relay message row. `seq` is the inbox cursor: strictly increasing, never reused. `fromInstallationId`
 * holds the sender's PEER id (never its secret installation id); the name stays that of the wire field.
 */
export interface StoredMessage {
  seq: number;
  messageId: string;
  toInstallationId: string;
  fromInstallationId: string;
  fromHostname: string;
  /** JSON text of the body as sent (a string or an object). */
  bodyJson: string;
  createdAt: number;
}

export type NewMessage = Omit<StoredMessage, "seq">;

/** A message row without its body, and the body's size in UTF-8 bytes. */
export interface StoredMessageHead extends Omit<StoredMessage, "bodyJson"> {
  bodyBytes: number;
}

/** What one inbox holds: the figures the per-recipient quota is checked against. */
export interface InboxUsage {
  messages: number;
  /** UTF-8 bytes of the stored bodies (`bodyJson`). */
  bytes: number;
}

export type TrustStatus = "pending" | "approved" | "rejected" | "blocked";

/**
 * One directed trust record: `requesterId` asked `targetId`; the status is the target's decision. Both ids
 * are peer ids (public), so lists can be shown to either side without revealing installation ids.
 *
 * Records are never deleted: ending trust is a status change (rejected, blocked), so a reader that follows
 * `changeSeq` sees every change, including the end of a relationship.
 */
export interface StoredTrust {
  /**
   * Change sequence: registry-wide, strictly increasing, assigned by putTrust on every write of the record
   * (never by the caller, never reused). Readers of changes continue from the highest one they saw.
   */
  changeSeq: number;
  requesterId: string;
  targetId: string;
  status: TrustStatus;
  introduction: string | null;
  assistantName: string | null;
  humanName: string | null;
  createdAt: number;
  approvedAt: number | null;
  updatedAt: number;
}

/** What putTrust writes: the store assigns the change sequence. */
export type TrustWrite = Omit<StoredTrust, "changeSeq">;

/** A trust record as listed to one side: with the hostname of the other side's agent (null when none). */
export interface ListedTrust extends StoredTrust {
  peerHostname: string | null;
}

export interface RegistryStore {
  /**
   * Runs `fn` atomically (all or nothing, durable on return), isolated from concurrent transactions as if they
   * ran one after the other. Nested calls join the outer transaction. `fn` may run more than once (PostgreSQL
   * retries a transaction that lost a race), so it must only touch the store.
   */
  transaction<T>(fn: () => Promise<T>): Promise<T>;

  getAgentById(id: string): Promise<StoredAgent | undefined>;
  /** Just what a heartbeat checks (the hot path: no full row). */
  getAgentLiveness(id: string): Promise<AgentLiveness | undefined>;
  getAgentByHostname(hostname: string): Promise<StoredAgent | undefined>;
  getAgentByInstallation(installationId: string): Promise<StoredAgent | undefined>;
  getAgentByPeerId(peerId: string): Promise<StoredAgent | undefined>;
  insertAgent(agent: StoredAgent): Promise<void>;
  /** Replaces every column of the row with `agent.id`. */
  updateAgent(agent: StoredAgent): Promise<void>;
  /**
   * Updates only lastSeen (the hot path of heartbeats). Returns false when the id is unknown, or (when
   * `ifSeenSince` is given and the store honours it) when the row's lastSeen moved below it since the caller read
   * it: a deregistration or release on another replica, which a heartbeat checked before it must not undo.
   */
  touchAgent(id: string, lastSeen: number, ifSeenSince?: number): Promise<boolean>;
  /**
   * A heartbeat as one write, for a store that shares writes between requests (PostgreSQL): lastSeen becomes at
   * least `lastSeen` if the agent is online (its lastSeen is at least `onlineSince`) and, when `tokenHash` is
   * given, holds that token hash. False when anything of that fails: the caller reads the record to say why.
   */
  touchOnlineAgent?(
    id: string,
    lastSeen: number,
    onlineSince: number,
    tokenHash: string | null,
  ): Promise<boolean>;
  deleteAgent(id: string): Promise<boolean>;
  listAgents(query: AgentListQuery): Promise<Page<StoredAgent>>;
  /** Agents matching a lookup, offline ones too, each once, oldest registration first (indexed reads only). */
  lookupAgents(query: AgentLookupQuery): Promise<StoredAgent[]>;
  searchAgents(query: AgentSearchQuery): Promise<Page<StoredAgent>>;
  /** Deletes agents last seen before `lastSeenBefore`, and their inboxes; returns how many agents. */
  purgeAgents(lastSeenBefore: number): Promise<number>;

  /** Stores a message unless (toInstallationId, messageId) exists; returns the stored or the existing row. */
  insertMessage(message: NewMessage): Promise<{ message: StoredMessage; duplicate: boolean }>;
  listMessages(
    toInstallationId: string,
    afterSeq: number,
    createdSince: number,
    limit: number,
  ): Promise<StoredMessage[]>;
  /** The rows listMessages returns without their bodies: enough to plan an inbox page in bytes. */
  listMessageHeads(
    toInstallationId: string,
    afterSeq: number,
    createdSince: number,
    limit: number,
  ): Promise<StoredMessageHead[]>;
  /** One stored body (`bodyJson`); undefined when the message is gone (acknowledged or purged meanwhile). */
  getMessageBody(toInstallationId: string, seq: number): Promise<string | undefined>;
  /** Unacknowledged messages held for one installation and their stored body bytes (a cheap, kept-up count). */
  inboxUsage(toInstallationId: string): Promise<InboxUsage>;
  hasMessage(toInstallationId: string, messageId: string): Promise<boolean>;
  deleteMessages(toInstallationId: string, messageIds: string[]): Promise<number>;
  /** Deletes a whole inbox (its agent was purged or gave way); returns how many messages. */
  deleteInbox(toInstallationId: string): Promise<number>;
  purgeMessages(createdBefore: number): Promise<number>;

  getTrust(requesterId: string, targetId: string): Promise<StoredTrust | undefined>;
  /** Inserts or replaces the record and gives it the next change sequence, in one transaction. */
  putTrust(trust: TrustWrite): Promise<void>;
  /** Records where the peer is requester or target, oldest first. */
  listTrust(peerId: string): Promise<ListedTrust[]>;
  /**
   * Records where the peer is requester or target whose changeSeq is above `afterSeq`, in changeSeq order, at
   * most `limit`: a page of what changed for that peer since a reader's cursor.
   */
  listTrustChanges(peerId: string, afterSeq: number, limit: number): Promise<ListedTrust[]>;
  /** The highest change sequence given so far, registry-wide (0 before the first trust write). */
  lastTrustChange(): Promise<number>;
  /** Pending records addressed to the installation, oldest first. */
  listPendingTrust(targetId: string): Promise<StoredTrust[]>;

  close(): Promise<void>;
}

// Default RegistryStore on node:sqlite (DatabaseSync). WAL with synchronous=FULL so that a write acknowledged
// with a 2xx survives kill -9; heartbeats (last_seen only) may opt into unsynced commits written behind,
// several per commit, because losing the last one is harmless. Search runs on an in-memory SearchIndex loaded
// from the rows at open (in slices between requests once the table is large, see #loadIndexSlice) and kept in
// step with every committed write.
import { AsyncLocalStorage } from "node:async_hooks";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { tooBusy } from "./errors.js";
import { isPeerId, peerIdOf } from "./peer-id.js";
import { type IndexedAgent, SearchIndex } from "./search-index.js";
import type {
  AgentListQuery,
  AgentLiveness,
  AgentLookupQuery,
  AgentSearchQuery,
  InboxUsage,
  ListedTrust,
  NewMessage,
  Page,
  RegistryStore,
  StoredAgent,
  StoredMessage,
  StoredMessageHead,
  StoredTrust,
  TrustWrite,
} from "./store.js";
import { StoreNotReadyError, type StoreOperationsHooks, type StoreTelemetry } from "./store-hooks.js";
import { agentFromRow, listedTrustFromRow, messageFromRow, str, trustFromRow } from "./store-rows.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS agents (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  hostname TEXT NOT NULL UNIQUE,
  installation_id TEXT UNIQUE,
  pilot_node_id INTEGER,
  pilot_address TEXT,
  display_name TEXT,
  description TEXT,
  capabilities TEXT NOT NULL,
  token_hash TEXT,
  public_key TEXT,
  signed_record TEXT,
  last_seen INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS agents_last_seen ON agents(last_seen);
CREATE INDEX IF NOT EXISTS agents_created ON agents(created_at, id);
CREATE INDEX IF NOT EXISTS agents_node ON agents(pilot_node_id);
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
  to_installation_id TEXT NOT NULL,
  from_installation_id TEXT NOT NULL,
  from_hostname TEXT NOT NULL,
  body_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  body_bytes INTEGER,
  UNIQUE (to_installation_id, message_id)
);
CREATE INDEX IF NOT EXISTS messages_inbox ON messages(to_installation_id, seq);
CREATE INDEX IF NOT EXISTS messages_created ON messages(created_at);
CREATE TABLE IF NOT EXISTS trust (
  requester_id TEXT NOT NULL,
  target_id TEXT NOT NULL,
  status TEXT NOT NULL,
  introduction TEXT,
  assistant_name TEXT,
  human_name TEXT,
  created_at INTEGER NOT NULL,
  approved_at INTEGER,
  updated_at INTEGER NOT NULL,
  change_seq INTEGER,
  PRIMARY KEY (requester_id, target_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trust_target ON trust(target_id, status);
`;

/**
 * Trust change sequences (see StoredTrust.changeSeq): a counter bumped in the same transaction as every trust
 * write, and indexes that read one peer's changes after a cursor in order from either side. Run after the
 * trust table has its change_seq column. A counter rather than MAX(change_seq) + 1 so that a number, once
 * given, is never given again whatever happens to the rows.
 */
const TRUST_CHANGES_SCHEMA = `
CREATE TABLE IF NOT EXISTS counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value)
  VALUES ('trust_change', (SELECT COALESCE(MAX(change_seq), 0) FROM trust));
CREATE INDEX IF NOT EXISTS trust_requester_change ON trust(requester_id, change_seq);
CREATE INDEX IF NOT EXISTS trust_target_change ON trust(target_id, change_seq);
`;

/**
 * Per-inbox counts for the relay quota, kept by triggers in the same transaction as every insert and delete
 * (sends, acks, purges, other connections). Run after the messages table has its body_bytes column.
 */
const INBOX_USAGE_SCHEMA = `
CREATE TABLE IF NOT EXISTS inbox_usage (
  to_installation_id TEXT PRIMARY KEY,
  messages INTEGER NOT NULL,
  bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS messages_usage_insert AFTER INSERT ON messages BEGIN
  INSERT INTO inbox_usage (to_installation_id, messages, bytes)
  VALUES (NEW.to_installation_id, 1, COALESCE(NEW.body_bytes, length(CAST(NEW.body_json AS BLOB))))
  ON CONFLICT (to_installation_id) DO UPDATE
  SET messages = messages + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS messages_usage_delete AFTER DELETE ON messages BEGIN
  UPDATE inbox_usage
  SET messages = messages - 1, bytes = bytes - COALESCE(OLD.body_bytes, length(CAST(OLD.body_json AS BLOB)))
  WHERE to_installation_id = OLD.to_installation_id;
END;
`;

/**
 * One row holding the number of stored relay messages, kept by triggers like inbox_usage: the metrics read it
 * in O(1), where summing inbox_usage walks one row per inbox that ever held a message (about 220 ms, on the
 * event loop, at 1,000,000 inboxes).
 */
const HELD_MESSAGES_SCHEMA = `
CREATE TABLE held_messages (id INTEGER PRIMARY KEY CHECK (id = 1), messages INTEGER NOT NULL);
CREATE TRIGGER held_messages_insert AFTER INSERT ON messages BEGIN
  UPDATE held_messages SET messages = messages + 1 WHERE id = 1;
END;
CREATE TRIGGER held_messages_delete AFTER DELETE ON messages BEGIN
  UPDATE held_messages SET messages = messages - 1 WHERE id = 1;
END;
INSERT INTO held_messages (id, messages) SELECT 1, COUNT(*) FROM messages;
`;

type Row = Record<string, SQLInputValue>;

const AGENT_COLUMNS =
  "a.seq, a.id, a.hostname, a.installation_id, a.pilot_node_id, a.pilot_address, a.display_name, " +
  "a.description, a.capabilities, a.token_hash, a.last_seen, a.created_at, a.updated_at, a.peer_id, " +
  "a.public_key, a.signed_record";

/** An agent's columns after id, in AGENT_COLUMNS' order: the values of its INSERT (after id) and UPDATE. */
const agentFields = (agent: StoredAgent): SQLInputValue[] => [
  agent.hostname,
  agent.installationId,
  agent.pilotNodeId,
  agent.pilotAddress,
  agent.displayName,
  agent.description,
  JSON.stringify(agent.capabilities),
  agent.tokenHash,
  agent.lastSeen,
  agent.createdAt,
  agent.updatedAt,
  agent.peerId,
  agent.publicKey,
  agent.signedRecord,
];

const toAgent = (row: Row): StoredAgent =>
  agentFromRow(row, JSON.parse(String(row.capabilities)) as string[]);
const toMessage = (row: Row): StoredMessage => messageFromRow(row);
const toTrust = (row: Row): StoredTrust => trustFromRow(row);
const toListedTrust = (row: Row): ListedTrust => listedTrustFromRow(row);

/**
 * The SELECT of trust rows seen from one peer: `other_id` is the other side, whose agent names the peer's
 * hostname (an indexed lookup by peer id per row). `rows` yields the caller's rows with `other_id`.
 */
const withPeerHostname = (rows: string) =>
  `SELECT t.*, a.hostname AS peer_hostname FROM (${rows}) t LEFT JOIN agents a ON a.peer_id = t.other_id`;

export interface SqliteStoreOptions {
  /** File path or ":memory:". */
  path: string;
  /** SQLite page cache in MiB (default 16): search runs in memory, SQLite serves point lookups. */
  cacheMiB?: number;
  /**
   * Write heartbeats behind, without fsync (default true): last_seen updates wait up to
   * `heartbeatWriteDelayMs` (or for the next other agent read or write, whichever is first) and go to disk
   * together in one unsynced commit. Registrations, messages and trust always commit with fsync before they
   * return.
   */
  fastHeartbeats?: boolean;
  /**
   * How long heartbeats may wait to be written (default 1000 ms; 0 = at the end of the event-loop turn).
   * Waiting lets the many heartbeats of one agent become one row write and those of neighbours share pages;
   * a crash loses at most this much of them, which only makes agents look older by one interval.
   */
  heartbeatWriteDelayMs?: number;
  /**
   * How long opening may spend loading the search index before it returns (default 500 ms): a small table
   * is loaded at once, a larger one (19 s at 1,000,000 agents) goes on in slices of INDEX_SLICE_MS between
   * requests, and searches answer 503 with Retry-After until it is complete (everything else answers from
   * the rows meanwhile). See searchReady / whenSearchReady.
   */
  indexLoadSyncMs?: number;
  /** Longest slice of the background load (default INDEX_SLICE_MS; tests make it 0: one batch a turn). */
  indexLoadSliceMs?: number;
  /** Rows per batch of the load (default INDEX_BATCH_ROWS; tests make it small). */
  indexLoadBatchRows?: number;
}

/** Longest run of index loading between two turns of the event loop (requests wait at most about this). */
const INDEX_SLICE_MS = 20;
/** Rows read per statement while loading (by seq ranges, so writes in between are never missed). */
const INDEX_BATCH_ROWS = 1_000;

/** Agents whose heartbeat facts are kept in memory at most (a cache: cleared when full). */
const HEARTBEAT_CACHE_SIZE = 50_000;

/** The store's synchronous core: every call answers at once, on the one connection. */
export class SqliteDatabaseStore {
  readonly #db: DatabaseSync;
  #telemetry: StoreTelemetry | undefined;
  readonly #statements = new Map<string, StatementSync>();
  readonly #fastHeartbeats: boolean;
  readonly #heartbeatWriteDelayMs: number;
  readonly #index = new SearchIndex();
  /** Index updates of the open transaction: applied on COMMIT, dropped on ROLLBACK. */
  #pendingIndex: Array<() => void> = [];
  #depth = 0;
  /** Heartbeats not yet written (fastHeartbeats): agent id -> its seq and new last_seen. */
  readonly #pendingTouches = new Map<string, { seq: number; lastSeen: number }>();
  /**
   * Seq and token digest of agents that heartbeat, so a heartbeat reads no row (last_seen comes from the
   * index); an entry is dropped when its agent is updated (a new token) or deleted.
   */
  readonly #heartbeatCache = new Map<string, { seq: number; tokenHash: string | null }>();
  #touchWriteScheduled = false;
  /** Highest seq loaded into the index so far; Infinity once the load is complete. */
  #loadedThrough = -1;
  #loadStartedAt = 0;
  /** Highest seq at open: how far the load has to go (for Retry-After). */
  #loadTarget = 0;
  #loadTimer: NodeJS.Immediate | undefined;
  readonly #loadWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  readonly #loadSliceMs: number;
  readonly #loadBatchRows: number;

  constructor(options: SqliteStoreOptions) {
    this.#db = new DatabaseSync(options.path);
    this.#fastHeartbeats = options.fastHeartbeats ?? true;
    this.#heartbeatWriteDelayMs = options.heartbeatWriteDelayMs ?? 1000;
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec("PRAGMA synchronous = FULL");
    this.#db.exec("PRAGMA foreign_keys = OFF");
    this.#db.exec("PRAGMA busy_timeout = 5000");
    this.#db.exec(`PRAGMA cache_size = -${Math.round((options.cacheMiB ?? 16) * 1024)}`);
    // The quota counts live in inbox_usage, kept by triggers in the same transaction as every insert and delete
    // (acks, purges, other connections), so a send checks its quota with one primary-key read. A database from
    // before the table existed gets its counts once, here.
    const hadUsage = this.#db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbox_usage'")
      .get();
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      this.#db.exec(SCHEMA);
      // body_bytes lets an inbox page be planned in bytes without reading bodies; older rows have NULL there
      // and are measured from body_json instead.
      const columns = this.#db.prepare("PRAGMA table_info(messages)").all();
      if (!columns.some((c) => c.name === "body_bytes")) {
        this.#db.exec("ALTER TABLE messages ADD COLUMN body_bytes INTEGER");
      }
      // Records bound to a key: databases from before keys get the two columns empty (no record is keyed).
      const agentColumns = this.#db.prepare("PRAGMA table_info(agents)").all();
      for (const column of ["public_key", "signed_record"]) {
        if (!agentColumns.some((c) => c.name === column)) {
          this.#db.exec(`ALTER TABLE agents ADD COLUMN ${column} TEXT`);
        }
      }
      this.#db.exec(INBOX_USAGE_SCHEMA);
      if (!hadUsage) {
        this.#db.exec(
          "INSERT INTO inbox_usage (to_installation_id, messages, bytes) SELECT to_installation_id, COUNT(*), " +
            "SUM(length(CAST(body_json AS BLOB))) FROM messages GROUP BY to_installation_id",
        );
      }
      // Created with its count in the same transaction, so no insert or delete is missed.
      if (
        !this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'held_messages'").get()
      ) {
        this.#db.exec(HELD_MESSAGES_SCHEMA);
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
    this.#migratePeerIds();
    this.#migrateTrustChanges();
    this.#loadSliceMs = options.indexLoadSliceMs ?? INDEX_SLICE_MS;
    this.#loadBatchRows = Math.max(1, options.indexLoadBatchRows ?? INDEX_BATCH_ROWS);
    this.#loadStartedAt = performance.now();
    this.#loadTarget = Number(
      this.#db.prepare("SELECT COALESCE(MAX(seq), -1) AS m FROM agents").get()?.m ?? -1,
    );
    if (!this.#loadIndexSlice(options.indexLoadSyncMs ?? 500)) this.#scheduleIndexSlice();
  }

  /** Whether the search index holds every agent (searches answer 503 until then). */
  get searchReady(): boolean {
    return this.#loadedThrough === Number.POSITIVE_INFINITY;
  }

  /** Resolves once the search index holds every agent (at once when it does); rejects if closed first. */
  whenSearchReady(): Promise<void> {
    if (this.searchReady) return Promise.resolve();
    return new Promise((resolve, reject) => this.#loadWaiters.push({ resolve, reject }));
  }

  #scheduleIndexSlice(): void {
    this.#loadTimer = setImmediate(() => {
      this.#loadTimer = undefined;
      if (!this.#db.isOpen) return;
      if (!this.#loadIndexSlice(this.#loadSliceMs)) this.#scheduleIndexSlice();
    });
  }

  /**
   * Loads agents into the index in seq order for about `budgetMs`; returns true once every agent is in.
   * Writes between slices keep the index current for every seq, loaded or not (an add is a replace, a remove
   * of an absent seq does nothing), so a row read later only re-adds what the index may already hold;
   * pending heartbeats are written first so that the rows read carry the latest last_seen.
   */
  #loadIndexSlice(budgetMs: number): boolean {
    const deadline = performance.now() + budgetMs;
    this.#writeTouches();
    // Only the indexed columns: loading many rows should leave little garbage behind for the heap to keep.
    const batch = this.#stmt(
      "SELECT seq, id, hostname, display_name, description, capabilities, last_seen FROM agents " +
        "WHERE seq > ? ORDER BY seq LIMIT ?",
    );
    for (;;) {
      const rows = batch.all(this.#loadedThrough, this.#loadBatchRows);
      this.#index.load(
        rows.map((row): [number, IndexedAgent] => [
          Number(row.seq),
          {
            id: String(row.id),
            hostname: String(row.hostname),
            displayName: str(row.display_name),
            description: str(row.description),
            capabilities: JSON.parse(String(row.capabilities)) as string[],
            lastSeen: Number(row.last_seen),
          },
        ]),
      );
      if (rows.length < this.#loadBatchRows) {
        this.#loadedThrough = Number.POSITIVE_INFINITY;
        for (const waiter of this.#loadWaiters.splice(0)) waiter.resolve();
        return true;
      }
      this.#loadedThrough = Number(rows.at(-1)!.seq);
      if (performance.now() >= deadline) return false;
    }
  }

  /** Seconds the index load probably still needs, from its pace so far (at least 1). */
  #loadSecondsLeft(): number {
    const elapsed = (performance.now() - this.#loadStartedAt) / 1000;
    const done = Math.max(1, this.#loadedThrough + 1);
    const left = Math.max(0, this.#loadTarget - this.#loadedThrough);
    return Math.min(60, Math.max(1, Math.ceil((elapsed * left) / done)));
  }

  /**
   * Databases written before peer ids existed: add the column and its index, fill it, and re-key messages'
   * senders and trust records from installation ids to peer ids (installation ids are secrets now). Runs once:
   * the column's presence marks a migrated database.
   */
  #migratePeerIds(): void {
    const columns = this.#db.prepare("PRAGMA table_info(agents)").all();
    if (!columns.some((c) => c.name === "peer_id")) {
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        this.#db.exec("ALTER TABLE agents ADD COLUMN peer_id TEXT");
        const setPeer = this.#db.prepare("UPDATE agents SET peer_id = ? WHERE seq = ?");
        for (const row of this.#db
          .prepare("SELECT seq, installation_id FROM agents WHERE installation_id IS NOT NULL")
          .all()) {
          setPeer.run(peerIdOf(String(row.installation_id)), Number(row.seq));
        }
        const toPeer = (id: string) => (isPeerId(id) ? id : peerIdOf(id));
        const setSender = this.#db.prepare("UPDATE messages SET from_installation_id = ? WHERE seq = ?");
        for (const row of this.#db.prepare("SELECT seq, from_installation_id FROM messages").all()) {
          setSender.run(toPeer(String(row.from_installation_id)), Number(row.seq));
        }
        const trust = this.#db.prepare("SELECT * FROM trust").all().map(toTrust);
        this.#db.exec("DELETE FROM trust");
        const put = this.#db.prepare(
          "INSERT OR REPLACE INTO trust (requester_id, target_id, status, introduction, assistant_name, human_name, " +
            "created_at, approved_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        for (const t of trust) {
          put.run(
            toPeer(t.requesterId),
            toPeer(t.targetId),
            t.status,
            t.introduction,
            t.assistantName,
            t.humanName,
            t.createdAt,
            t.approvedAt,
            t.updatedAt,
          );
        }
        this.#db.exec("COMMIT");
      } catch (error) {
        this.#db.exec("ROLLBACK");
        throw error;
      }
    }
    // Peer ids are looked up on every relay send and trust call: unique and indexed.
    this.#db.exec("CREATE UNIQUE INDEX IF NOT EXISTS agents_peer ON agents(peer_id)");
  }

  /**
   * Databases written before trust change sequences: add the column and number the existing records in a
   * stable order (oldest change first), then the counter and indexes. Runs after the peer id migration, which
   * rewrites trust rows without the column.
   */
  #migrateTrustChanges(): void {
    const columns = this.#db.prepare("PRAGMA table_info(trust)").all();
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      if (!columns.some((c) => c.name === "change_seq")) {
        this.#db.exec("ALTER TABLE trust ADD COLUMN change_seq INTEGER");
        this.#db.exec(
          "UPDATE trust SET change_seq = n.seq FROM (SELECT requester_id, target_id, ROW_NUMBER() OVER " +
            "(ORDER BY updated_at, created_at, requester_id, target_id) AS seq FROM trust) AS n " +
            "WHERE trust.requester_id = n.requester_id AND trust.target_id = n.target_id",
        );
      }
      this.#db.exec(TRUST_CHANGES_SCHEMA);
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  #indexLater(update: () => void): void {
    if (this.#depth > 0) this.#pendingIndex.push(update);
    else update();
  }

  /** A cached prepared statement; dynamic search SQL has few shapes, so the cache stays small. */
  #stmt(sql: string): StatementSync {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      if (this.#statements.size > 500) this.#statements.clear();
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /**
   * Writes pending heartbeats in one commit. Every agent read that can see last_seen, and every
   * transaction, runs this first, so nothing ever reads a last_seen older than a heartbeat already answered.
   */
  #writeTouches(): void {
    if (this.#pendingTouches.size === 0 || !this.#db.isOpen) return;
    const update = this.#stmt("UPDATE agents SET last_seen = ? WHERE seq = ?");
    // Why unsynced: a heartbeat lost to a crash or power cut only makes the agent look older by one
    // interval, and an fsync per heartbeat would cap throughput at the disk's flush rate. The next synced
    // commit (or a WAL checkpoint) makes it durable anyway.
    this.#stmt("PRAGMA synchronous = NORMAL").run();
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        for (const { seq, lastSeen } of this.#pendingTouches.values()) update.run(lastSeen, seq);
        this.#db.exec("COMMIT");
        this.#telemetry?.heartbeatBatch(this.#pendingTouches.size);
      } catch (error) {
        this.#db.exec("ROLLBACK");
        throw error;
      }
      this.#pendingTouches.clear();
    } finally {
      this.#stmt("PRAGMA synchronous = FULL").run();
    }
  }

  transaction<T>(fn: () => T): T {
    if (this.#depth > 0) return fn();
    this.begin();
    let result: T;
    try {
      result = fn();
    } catch (error) {
      this.rollback();
      throw error;
    }
    this.commit();
    return result;
  }

  /** Opens the outermost transaction (the async store's transaction spans awaits, so it cannot pass a fn). */
  begin(): void {
    this.#writeTouches();
    this.#db.exec("BEGIN IMMEDIATE");
    this.#depth++;
  }

  /** Commits the outermost transaction, then applies its index updates; a failed commit rolls back. */
  commit(): void {
    const updates = this.#pendingIndex;
    this.#pendingIndex = [];
    try {
      this.#db.exec("COMMIT");
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    } finally {
      this.#depth--;
    }
    for (const update of updates) update();
  }

  rollback(): void {
    this.#depth--;
    this.#pendingIndex = [];
    this.#db.exec("ROLLBACK");
  }

  /** Reads the row and lays a pending heartbeat over it (the heartbeat path reads by id: no write here). */
  getAgentById(id: string): StoredAgent | undefined {
    const row = this.#stmt(`SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.id = ?`).get(id);
    if (!row) return undefined;
    const agent = toAgent(row);
    const pending = this.#pendingTouches.get(id);
    if (pending) agent.lastSeen = pending.lastSeen;
    return agent;
  }

  getAgentLiveness(id: string): AgentLiveness | undefined {
    if (this.#depth > 0) {
      // In a transaction the index may lag an uncommitted change: read the row.
      const row = this.#stmt("SELECT token_hash, last_seen FROM agents WHERE id = ?").get(id);
      return row ? { tokenHash: str(row.token_hash), lastSeen: Number(row.last_seen) } : undefined;
    }
    const cached = this.#cachedForHeartbeat(id);
    if (!cached) return undefined;
    if (!this.#index.has(cached.seq)) {
      // The index is still loading and has not reached this agent: a pending heartbeat, else the row.
      const pending = this.#pendingTouches.get(id);
      const row = pending
        ? undefined
        : this.#stmt("SELECT last_seen FROM agents WHERE seq = ?").get(cached.seq);
      if (!pending && !row) return undefined;
      return { tokenHash: cached.tokenHash, lastSeen: pending ? pending.lastSeen : Number(row!.last_seen) };
    }
    return { tokenHash: cached.tokenHash, lastSeen: this.#index.lastSeenOf(cached.seq) };
  }

  #cachedForHeartbeat(id: string): { seq: number; tokenHash: string | null } | undefined {
    let cached = this.#heartbeatCache.get(id);
    if (!cached) {
      const row = this.#stmt("SELECT seq, token_hash FROM agents WHERE id = ?").get(id);
      if (!row) return undefined;
      cached = { seq: Number(row.seq), tokenHash: str(row.token_hash) };
      if (this.#heartbeatCache.size >= HEARTBEAT_CACHE_SIZE) this.#heartbeatCache.clear();
      this.#heartbeatCache.set(id, cached);
    }
    return cached;
  }

  getAgentByHostname(hostname: string): StoredAgent | undefined {
    this.#writeTouches();
    const row = this.#stmt(`SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.hostname = ?`).get(hostname);
    return row ? toAgent(row) : undefined;
  }

  getAgentByInstallation(installationId: string): StoredAgent | undefined {
    this.#writeTouches();
    const row = this.#stmt(`SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.installation_id = ?`).get(
      installationId,
    );
    return row ? toAgent(row) : undefined;
  }

  getAgentByPeerId(peerId: string): StoredAgent | undefined {
    this.#writeTouches();
    const row = this.#stmt(`SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.peer_id = ?`).get(peerId);
    return row ? toAgent(row) : undefined;
  }

  insertAgent(agent: StoredAgent): void {
    this.transaction(() => {
      const result = this.#stmt(
        "INSERT INTO agents (id, hostname, installation_id, pilot_node_id, pilot_address, display_name, " +
          "description, capabilities, token_hash, last_seen, created_at, updated_at, peer_id, public_key, " +
          "signed_record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ).run(agent.id, ...agentFields(agent));
      const seq = Number(result.lastInsertRowid);
      this.#indexLater(() => this.#index.add(seq, agent));
    });
  }

  updateAgent(agent: StoredAgent): void {
    this.transaction(() => {
      const row = this.#stmt("SELECT seq FROM agents WHERE id = ?").get(agent.id);
      if (!row) throw new Error(`updateAgent: unknown agent id ${agent.id}`);
      const seq = Number(row.seq);
      this.#heartbeatCache.delete(agent.id);
      this.#stmt(
        "UPDATE agents SET hostname = ?, installation_id = ?, pilot_node_id = ?, pilot_address = ?, " +
          "display_name = ?, description = ?, capabilities = ?, token_hash = ?, last_seen = ?, " +
          "created_at = ?, updated_at = ?, peer_id = ?, public_key = ?, signed_record = ? WHERE seq = ?",
      ).run(...agentFields(agent), seq);
      this.#indexLater(() => this.#index.add(seq, agent));
    });
  }

  touchAgent(id: string, lastSeen: number): boolean {
    if (!this.#fastHeartbeats || this.#depth > 0) {
      const row = this.#stmt("UPDATE agents SET last_seen = ? WHERE id = ? RETURNING seq").get(lastSeen, id);
      if (!row) return false;
      this.#telemetry?.heartbeatBatch(1);
      const seq = Number(row.seq);
      this.#indexLater(() => this.#index.touch(seq, lastSeen));
      return true;
    }
    const cached = this.#cachedForHeartbeat(id);
    if (!cached) return false;
    this.#pendingTouches.set(id, { seq: cached.seq, lastSeen });
    this.#index.touch(cached.seq, lastSeen);
    if (!this.#touchWriteScheduled) {
      this.#touchWriteScheduled = true;
      const write = () => {
        this.#touchWriteScheduled = false;
        try {
          this.#writeTouches();
        } catch {
          // Why safe: the heartbeats stay pending; the next heartbeat or agent read writes them again and a
          // persistent failure then reaches that caller as an error.
        }
      };
      if (this.#heartbeatWriteDelayMs > 0) setTimeout(write, this.#heartbeatWriteDelayMs).unref();
      else setImmediate(write);
    }
    return true;
  }

  deleteAgent(id: string): boolean {
    return this.transaction(() => {
      const row = this.#stmt("SELECT seq FROM agents WHERE id = ?").get(id);
      if (!row) return false;
      const seq = Number(row.seq);
      this.#heartbeatCache.delete(id);
      this.#stmt("DELETE FROM agents WHERE seq = ?").run(seq);
      this.#indexLater(() => this.#index.remove(seq));
      return true;
    });
  }

  listAgents(query: AgentListQuery): Page<StoredAgent> {
    this.#writeTouches();
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    if (query.hostname !== undefined) {
      where.push("a.hostname = ?");
      params.push(query.hostname);
    }
    if (query.installationId !== undefined) {
      where.push("a.installation_id = ?");
      params.push(query.installationId);
    }
    if (query.peerId !== undefined) {
      where.push("a.peer_id = ?");
      params.push(query.peerId);
    }
    if (query.pilotNodeId !== undefined) {
      where.push("a.pilot_node_id = ?");
      params.push(query.pilotNodeId);
    }
    if (query.seenSince !== undefined) {
      where.push("a.last_seen >= ?");
      params.push(query.seenSince);
    }
    const whereSql = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const total = Number(this.#stmt(`SELECT COUNT(*) AS n FROM agents a ${whereSql}`).get(...params)?.n ?? 0);
    const rows = this.#stmt(
      `SELECT ${AGENT_COLUMNS} FROM agents a ${whereSql} ORDER BY a.created_at, a.id LIMIT ? OFFSET ?`,
    ).all(...params, query.limit, query.offset);
    return { items: rows.map(toAgent), total };
  }

  lookupAgents(query: AgentLookupQuery): StoredAgent[] {
    this.#writeTouches();
    // Each id is one probe of its index (agents_node, agents_peer): json_each feeds the IN lists, so the
    // statement has one shape whatever the number of ids. The window keeps the freshest records of a node id.
    const rows = this.#stmt(
      `SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.seq IN (` +
        "SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER (PARTITION BY pilot_node_id ORDER BY last_seen DESC, id) AS n " +
        "FROM agents WHERE pilot_node_id IN (SELECT value FROM json_each(?))) WHERE n <= ? " +
        "UNION SELECT seq FROM agents WHERE peer_id IN (SELECT value FROM json_each(?))" +
        ") ORDER BY a.created_at, a.id",
    ).all(JSON.stringify(query.pilotNodeIds), query.perNodeId, JSON.stringify(query.peerIds));
    return rows.map(toAgent);
  }

  searchAgents(query: AgentSearchQuery): Page<StoredAgent> {
    if (!this.searchReady) {
      throw tooBusy(
        503,
        "search agents",
        "the registry is loading its search index after a restart; retry after the time in Retry-After",
        this.#loadSecondsLeft(),
      );
    }
    this.#writeTouches();
    // The agent the whole query names, if any: ranked first even when the query is too broad to walk.
    const named = query.phrase
      ? this.#stmt("SELECT seq FROM agents WHERE hostname = ?").get(query.phrase)
      : undefined;
    const { seqs, total, exact } = this.#index.search(query, named ? { hostnameSeq: Number(named.seq) } : {});
    if (seqs.length === 0) return { items: [], total, totalExact: exact };
    const rows = this.#stmt(
      `SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.seq IN (SELECT value FROM json_each(?))`,
    ).all(JSON.stringify(seqs));
    const bySeq = new Map(rows.map((row) => [Number(row.seq), toAgent(row)]));
    return {
      items: seqs.map((seq) => bySeq.get(seq)).filter((a) => a !== undefined),
      total,
      totalExact: exact,
    };
  }

  purgeAgents(lastSeenBefore: number): number {
    return this.transaction(() => {
      const rows = this.#stmt("SELECT id, installation_id FROM agents WHERE last_seen < ? LIMIT 10000").all(
        lastSeenBefore,
      );
      for (const row of rows) {
        this.deleteAgent(String(row.id));
        // Messages held for a purged agent go with it: its hostname is free now, and a newcomer under it
        // must never read them (inboxes are keyed by installation, so it could not anyway).
        if (row.installation_id !== null) this.deleteInbox(String(row.installation_id));
      }
      return rows.length;
    });
  }

  insertMessage(message: NewMessage): { message: StoredMessage; duplicate: boolean } {
    return this.transaction(() => {
      const existing = this.#stmt(
        "SELECT * FROM messages WHERE to_installation_id = ? AND message_id = ?",
      ).get(message.toInstallationId, message.messageId);
      if (existing) return { message: toMessage(existing), duplicate: true };
      const result = this.#stmt(
        "INSERT INTO messages (message_id, to_installation_id, from_installation_id, from_hostname, body_json, " +
          "created_at, body_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
      ).run(
        message.messageId,
        message.toInstallationId,
        message.fromInstallationId,
        message.fromHostname,
        message.bodyJson,
        message.createdAt,
        Buffer.byteLength(message.bodyJson),
      );
      return { message: { ...message, seq: Number(result.lastInsertRowid) }, duplicate: false };
    });
  }

  listMessages(
    toInstallationId: string,
    afterSeq: number,
    createdSince: number,
    limit: number,
  ): StoredMessage[] {
    return this.#stmt(
      "SELECT * FROM messages WHERE to_installation_id = ? AND seq > ? AND created_at >= ? ORDER BY seq LIMIT ?",
    )
      .all(toInstallationId, afterSeq, createdSince, limit)
      .map(toMessage);
  }

  listMessageHeads(
    toInstallationId: string,
    afterSeq: number,
    createdSince: number,
    limit: number,
  ): StoredMessageHead[] {
    return this.#stmt(
      "SELECT seq, message_id, to_installation_id, from_installation_id, from_hostname, created_at, " +
        "COALESCE(body_bytes, length(CAST(body_json AS BLOB))) AS body_bytes FROM messages " +
        "WHERE to_installation_id = ? AND seq > ? AND created_at >= ? ORDER BY seq LIMIT ?",
    )
      .all(toInstallationId, afterSeq, createdSince, limit)
      .map((row) => ({
        seq: Number(row.seq),
        messageId: String(row.message_id),
        toInstallationId: String(row.to_installation_id),
        fromInstallationId: String(row.from_installation_id),
        fromHostname: String(row.from_hostname),
        createdAt: Number(row.created_at),
        bodyBytes: Number(row.body_bytes),
      }));
  }

  getMessageBody(toInstallationId: string, seq: number): string | undefined {
    const row = this.#stmt("SELECT body_json FROM messages WHERE seq = ? AND to_installation_id = ?").get(
      seq,
      toInstallationId,
    );
    return row ? String(row.body_json) : undefined;
  }

  inboxUsage(toInstallationId: string): InboxUsage {
    const row = this.#stmt("SELECT messages, bytes FROM inbox_usage WHERE to_installation_id = ?").get(
      toInstallationId,
    );
    return row ? { messages: Number(row.messages), bytes: Number(row.bytes) } : { messages: 0, bytes: 0 };
  }

  hasMessage(toInstallationId: string, messageId: string): boolean {
    return (
      this.#stmt("SELECT 1 FROM messages WHERE to_installation_id = ? AND message_id = ?").get(
        toInstallationId,
        messageId,
      ) !== undefined
    );
  }

  deleteMessages(toInstallationId: string, messageIds: string[]): number {
    return this.transaction(() => {
      const stmt = this.#stmt("DELETE FROM messages WHERE to_installation_id = ? AND message_id = ?");
      let deleted = 0;
      for (const id of new Set(messageIds)) deleted += Number(stmt.run(toInstallationId, id).changes);
      return deleted;
    });
  }

  deleteInbox(toInstallationId: string): number {
    return Number(
      this.#stmt("DELETE FROM messages WHERE to_installation_id = ?").run(toInstallationId).changes,
    );
  }

  purgeMessages(createdBefore: number): number {
    return this.transaction(() => {
      const purged = Number(
        this.#stmt("DELETE FROM messages WHERE created_at < ?").run(createdBefore).changes,
      );
      // Empty inboxes' counters go too, so the table stays as small as the set of inboxes holding messages.
      this.#stmt("DELETE FROM inbox_usage WHERE messages <= 0").run();
      return purged;
    });
  }

  getTrust(requesterId: string, targetId: string): StoredTrust | undefined {
    const row = this.#stmt("SELECT * FROM trust WHERE requester_id = ? AND target_id = ?").get(
      requesterId,
      targetId,
    );
    return row ? toTrust(row) : undefined;
  }

  putTrust(trust: TrustWrite): void {
    this.transaction(() => {
      const changeSeq = this.#stmt(
        "UPDATE counters SET value = value + 1 WHERE name = 'trust_change' RETURNING value",
      ).get()?.value;
      this.#stmt(
        "INSERT INTO trust (requester_id, target_id, status, introduction, assistant_name, human_name, created_at, " +
          "approved_at, updated_at, change_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) " +
          "ON CONFLICT (requester_id, target_id) DO UPDATE " +
          "SET status = excluded.status, introduction = excluded.introduction, assistant_name = excluded.assistant_name, " +
          "human_name = excluded.human_name, created_at = excluded.created_at, approved_at = excluded.approved_at, " +
          "updated_at = excluded.updated_at, change_seq = excluded.change_seq",
      ).run(
        trust.requesterId,
        trust.targetId,
        trust.status,
        trust.introduction,
        trust.assistantName,
        trust.humanName,
        trust.createdAt,
        trust.approvedAt,
        trust.updatedAt,
        Number(changeSeq),
      );
    });
  }

  listTrust(peerId: string): ListedTrust[] {
    return this.#stmt(
      `${withPeerHostname(
        "SELECT *, target_id AS other_id FROM trust WHERE requester_id = ? UNION ALL " +
          "SELECT *, requester_id AS other_id FROM trust WHERE target_id = ? AND requester_id <> ?",
      )} ORDER BY t.created_at, t.requester_id, t.target_id`,
    )
      .all(peerId, peerId, peerId)
      .map(toListedTrust);
  }

  listTrustChanges(peerId: string, afterSeq: number, limit: number): ListedTrust[] {
    // Each side reads at most `limit` rows from its own (peer, change_seq) index; the merge keeps the first
    // `limit` of both, so a page costs O(limit) whatever the peer's record count.
    return this.#stmt(
      `${withPeerHostname(
        "SELECT * FROM (SELECT *, target_id AS other_id FROM trust WHERE requester_id = ? AND change_seq > ? " +
          "ORDER BY change_seq LIMIT ?) UNION ALL " +
          "SELECT * FROM (SELECT *, requester_id AS other_id FROM trust WHERE target_id = ? AND requester_id <> ? " +
          "AND change_seq > ? ORDER BY change_seq LIMIT ?)",
      )} ORDER BY t.change_seq LIMIT ?`,
    )
      .all(peerId, afterSeq, limit, peerId, peerId, afterSeq, limit, limit)
      .map(toListedTrust);
  }

  lastTrustChange(): number {
    return Number(this.#stmt("SELECT value FROM counters WHERE name = 'trust_change'").get()?.value ?? 0);
  }

  listPendingTrust(targetId: string): StoredTrust[] {
    return this.#stmt(
      "SELECT * FROM trust WHERE target_id = ? AND status = 'pending' ORDER BY created_at, requester_id",
    )
      .all(targetId)
      .map(toTrust);
  }

  /** Ready while the database is open and answers (the schema is migrated at open, before this can run). */
  ready(): void {
    if (!this.#db.isOpen) throw new StoreNotReadyError("the database is closed");
    this.#stmt("SELECT 1").get();
  }

  /** Unacknowledged relay messages in all inboxes: one row kept up by triggers (O(1), for the metrics). */
  heldMessages(): number {
    if (!this.#db.isOpen) throw new StoreNotReadyError("the database is closed");
    return Number(this.#stmt("SELECT messages FROM held_messages WHERE id = 1").get()?.messages ?? 0);
  }

  /** Heartbeat writes are reported as batches: one per write-behind commit, or 1 for a direct write. */
  attachTelemetry(telemetry: StoreTelemetry): void {
    this.#telemetry = telemetry;
  }

  close(): void {
    if (this.#loadTimer) clearImmediate(this.#loadTimer);
    this.#loadTimer = undefined;
    for (const waiter of this.#loadWaiters.splice(0)) {
      waiter.reject(new Error("load the search index: the store was closed before the index was complete"));
    }
    if (!this.#db.isOpen) return;
    this.#writeTouches();
    this.#statements.clear();
    this.#db.close();
  }
}

/**
 * The RegistryStore on SQLite: the synchronous core behind the asynchronous interface. A transaction spans
 * awaits, and every request shares the one connection, so a transaction holds the store: calls from outside it
 * wait until it ends (nested calls and calls made inside it, found through AsyncLocalStorage, go on). When no
 * transaction is open, which is nearly always (their callbacks only touch the store, so they end within one
 * turn of the event loop), a call costs one check and a resolved promise.
 */
export class SqliteRegistryStore implements RegistryStore, StoreOperationsHooks {
  readonly #core: SqliteDatabaseStore;
  readonly #inside = new AsyncLocalStorage<object>();
  /** The open transaction: its token (held in #inside by the calls it makes) and its end. */
  #open: { token: object; ended: Promise<void> } | undefined;

  constructor(options: SqliteStoreOptions) {
    this.#core = new SqliteDatabaseStore(options);
  }

  /** Runs `op` now, or once the transaction another caller holds has ended. */
  #run<T>(op: (core: SqliteDatabaseStore) => T): Promise<T> {
    const open = this.#open;
    if (open && this.#inside.getStore() !== open.token) return open.ended.then(() => this.#run(op));
    try {
      return Promise.resolve(op(this.#core));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const open = this.#open;
    if (open && this.#inside.getStore() === open.token) return fn();
    while (this.#open) await this.#open.ended;
    let end!: () => void;
    const token = {};
    this.#open = { token, ended: new Promise<void>((resolve) => (end = resolve)) };
    try {
      this.#core.begin();
      let result: T;
      try {
        result = await this.#inside.run(token, fn);
      } catch (error) {
        this.#core.rollback();
        throw error;
      }
      this.#core.commit();
      return result;
    } finally {
      this.#open = undefined;
      end();
    }
  }

  getAgentById(id: string) {
    return this.#run((core) => core.getAgentById(id));
  }
  getAgentLiveness(id: string) {
    return this.#run((core) => core.getAgentLiveness(id));
  }
  getAgentByHostname(hostname: string) {
    return this.#run((core) => core.getAgentByHostname(hostname));
  }
  getAgentByInstallation(installationId: string) {
    return this.#run((core) => core.getAgentByInstallation(installationId));
  }
  getAgentByPeerId(peerId: string) {
    return this.#run((core) => core.getAgentByPeerId(peerId));
  }
  insertAgent(agent: StoredAgent) {
    return this.#run((core) => core.insertAgent(agent));
  }
  updateAgent(agent: StoredAgent) {
    return this.#run((core) => core.updateAgent(agent));
  }
  touchAgent(id: string, lastSeen: number) {
    return this.#run((core) => core.touchAgent(id, lastSeen));
  }
  deleteAgent(id: string) {
    return this.#run((core) => core.deleteAgent(id));
  }
  listAgents(query: AgentListQuery) {
    return this.#run((core) => core.listAgents(query));
  }
  lookupAgents(query: AgentLookupQuery) {
    return this.#run((core) => core.lookupAgents(query));
  }
  searchAgents(query: AgentSearchQuery) {
    return this.#run((core) => core.searchAgents(query));
  }
  purgeAgents(lastSeenBefore: number) {
    return this.#run((core) => core.purgeAgents(lastSeenBefore));
  }
  insertMessage(message: NewMessage) {
    return this.#run((core) => core.insertMessage(message));
  }
  listMessages(toInstallationId: string, afterSeq: number, createdSince: number, limit: number) {
    return this.#run((core) => core.listMessages(toInstallationId, afterSeq, createdSince, limit));
  }
  listMessageHeads(toInstallationId: string, afterSeq: number, createdSince: number, limit: number) {
    return this.#run((core) => core.listMessageHeads(toInstallationId, afterSeq, createdSince, limit));
  }
  getMessageBody(toInstallationId: string, seq: number) {
    return this.#run((core) => core.getMessageBody(toInstallationId, seq));
  }
  inboxUsage(toInstallationId: string) {
    return this.#run((core) => core.inboxUsage(toInstallationId));
  }
  hasMessage(toInstallationId: string, messageId: string) {
    return this.#run((core) => core.hasMessage(toInstallationId, messageId));
  }
  deleteMessages(toInstallationId: string, messageIds: string[]) {
    return this.#run((core) => core.deleteMessages(toInstallationId, messageIds));
  }
  deleteInbox(toInstallationId: string) {
    return this.#run((core) => core.deleteInbox(toInstallationId));
  }
  purgeMessages(createdBefore: number) {
    return this.#run((core) => core.purgeMessages(createdBefore));
  }
  getTrust(requesterId: string, targetId: string) {
    return this.#run((core) => core.getTrust(requesterId, targetId));
  }
  putTrust(trust: TrustWrite) {
    return this.#run((core) => core.putTrust(trust));
  }
  listTrust(peerId: string) {
    return this.#run((core) => core.listTrust(peerId));
  }
  listTrustChanges(peerId: string, afterSeq: number, limit: number) {
    return this.#run((core) => core.listTrustChanges(peerId, afterSeq, limit));
  }
  lastTrustChange() {
    return this.#run((core) => core.lastTrustChange());
  }
  listPendingTrust(targetId: string) {
    return this.#run((core) => core.listPendingTrust(targetId));
  }
  ready(): Promise<void> | void {
    return this.#run((core) => core.ready());
  }
  /** Whether the search index is complete (it loads in slices after a large database opens). */
  get searchReady(): boolean {
    return this.#core.searchReady;
  }
  /** Resolves once the search index is complete; rejects when the store closes first. */
  whenSearchReady(): Promise<void> {
    return this.#core.whenSearchReady();
  }
  heldMessages(): Promise<number> | number {
    return this.#run((core) => core.heldMessages());
  }
  attachTelemetry(telemetry: StoreTelemetry): void {
    this.#core.attachTelemetry(telemetry);
  }
  async close(): Promise<void> {
    while (this.#open) await this.#open.ended;
    this.#core.close();
  }
}

// RegistryStore on PostgreSQL, for registries that outgrow one machine: any number of server processes
// (replicas) share one database. Driver: `pg` (node-postgres), because it is pure JavaScript (no native build
// on install), has a pool whose clients can be held for a whole transaction, and speaks LISTEN/NOTIFY on a
// dedicated client, which cross-replica wake-ups of long-polls will use. Transactions run SERIALIZABLE and are
// retried when they lose a race (two replicas registering one hostname, two sends into one inbox): the service's
// read-modify-write rules then hold as if requests ran one at a time, as they do on SQLite. Search takes its
// candidates from a words table (prefix ranges on a btree) and checks and ranks them in the database, in
// statements of fixed shape planned once per connection, so no replica keeps an index in memory and every
// replica sees every write at once.
import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import pg from "pg";
import { HeartbeatBatcher } from "./heartbeat-batcher.js";
import { KeyStatistics } from "./key-statistics.js";
import { peerIdOf } from "./peer-id.js";
import { applyPostgresMigrations, postgresSchemaIsCurrent } from "./postgres-migrations.js";
import { ReadBatcher } from "./read-batcher.js";
import type { SharedStore, SweepTurn } from "./replica.js";
import { INBOX_CHANNEL, ReplicaBus } from "./replica-bus.js";
import { isPlainWord, searchTextOf, WORD, wordsOf } from "./search-words.js";
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
import {
  agentFromRow,
  listedTrustFromRow,
  messageFromRow,
  type Row,
  str,
  trustFromRow,
} from "./store-rows.js";

export interface PostgresStoreOptions {
  /** postgres:// or postgresql:// URL (or anything `pg` takes as a connection string). */
  connectionString: string;
  /** Pooled connections at most (default 10), besides the search's own (maxSearchConnections). */
  maxConnections?: number;
  /** Pooled connections of searches at most (default 4): they plan each search statement once (see #search). */
  maxSearchConnections?: number;
  /** Apply pending migrations at open (default true); false expects `agent-registry migrate` to have run. */
  migrate?: boolean;
  /** Heartbeats wait this long for others to share their write (default 0: only those arriving together). */
  heartbeatLingerMs?: number;
  /** Told the rows of every heartbeat write (metrics: heartbeat batch sizes). */
  onHeartbeatBatch?: (rows: number) => void;
  /** See SEARCH_EXACT (tests make it small). */
  searchExact?: number;
  /** See SEARCH_SAMPLE (tests make it small). */
  searchSample?: number;
}

/**
 * A search whose most selective source (a query word's prefix range, or a capability's holders) holds at most
 * this many agents walks all of them: exact page, exact total. Each candidate costs a primary-key probe and its
 * filters (5-20 us each on a busy 2-core machine), so this bounds an exact search to a few ms.
 */
const SEARCH_EXACT = 500;
/**
 * A broader search ranks the first SEARCH_SAMPLE agents of its source (in the words table's (word, seq) order:
 * stable, whatever plan runs; a union of capability ranges, for match=any, shares them among its ranges), plus
 * the exact hostname and the first SEARCH_SAMPLE holders of a capability named by the query (ranking tiers 0
 * and 1); when fewer than SEARCH_FULL_PAGE match, once more with twice the sample (at once for a query that
 * filters its driver's candidates further). Its total is estimated: the
 * sample's match rate times the planner's estimate of the source's size. A broad query's pages thus reach at
 * least its first 100 matches; the size trades that reach against the cost of each search (each candidate is a
 * row read; at 1,000,000 agents, 100 against 200 was 15-17 ms against 17-23 ms p50 with 8 clients).
 */
const SEARCH_SAMPLE = 100;
const SEARCH_SAMPLE_MAX_FACTOR = 2;
/** Query words whose sources are sized to choose the driver (the longest ones). */
const SEARCH_SIZED_WORDS = 8;
/** Matches a sample must yield not to be widened (the default page size). */
const SEARCH_FULL_PAGE = 20;
/**
 * How long a range found beyond the exact bound is taken as broad without counting it again (its estimate is the
 * planner's, which changes only when ANALYZE runs), and how many ranges are remembered at most (all are forgotten
 * at once beyond that). A broad range that shrinks below the bound (a mass purge) is thus answered from a sample,
 * with an estimated total, for up to this long; its matches stay correct.
 */
const BROAD_RANGE_TTL_MS = 60_000;
const BROAD_RANGES_KEPT = 10_000;
/**
 * A range whose common keys the planner's statistics put at this many times the exact bound or more is broad
 * without counting it (far beyond the sampling error of a common key's frequency); and so is every agent when
 * the table's row estimate is. The statistics are read again at most every BROAD_RANGE_TTL_MS.
 */
const STATISTICS_BROAD_FACTOR = 2;
/** Key prefix of a capability's entries in agent_words (migration 0003): below every letter and digit. */
const CAPABILITY_KEY = "\u0001";

/** A key range of agent_words: a query word's prefix range, or one capability's key. */
interface WordRange {
  lo: string;
  hi: string;
}
const wordRange = (word: string): WordRange => ({ lo: word, hi: word + PREFIX_END });
// No key holds NUL, so the only key in [k, k + U+0001) is k itself.
const capabilityRange = (capability: string): WordRange => ({
  lo: CAPABILITY_KEY + capability,
  hi: `${CAPABILITY_KEY}${capability}\u0001`,
});

/** Advisory lock key of the purge sweep (arbitrary constant, distinct from the migrations' one). */
const SWEEP_LOCK = "6947560263766345576";

type Queryable = Pick<pg.PoolClient, "query">;

/**
 * How often a transaction that lost a race is run again before its error reaches the caller. SERIALIZABLE takes
 * predicate locks on index pages, so concurrent registrations that touch neighbouring keys conflict now and then
 * on a busy registry: 12 attempts were seen to run out at load 12 (bench:registry's fault phase), 30 with a backoff
 * growing to 250 ms give several seconds of retrying before a 500.
 */
const MAX_ATTEMPTS = 30;
/** Longest pause between two attempts (ms): each is random up to min(this, 2^attempt). */
const MAX_BACKOFF_MS = 250;
/**
 * SQLSTATEs of a lost race, after which running the transaction again gives the answer a sequential run would:
 * serialization_failure, deadlock_detected, and unique_violation (a concurrent insert of the same key that
 * committed first; the next attempt sees it).
 */
const RETRYABLE = new Set(["40001", "40P01", "23505"]);

/** Above every character of a word in byte order: `w <= word < w + PREFIX_END` holds the words starting with w. */
const PREFIX_END = "\u{10FFFF}";

const AGENT_COLUMNS =
  "a.id, a.hostname, a.installation_id, a.peer_id, a.pilot_node_id, a.pilot_address, a.display_name, " +
  "a.description, a.capabilities, a.token_hash, a.public_key, a.signed_record, a.last_seen, a.created_at, " +
  "a.updated_at";

/**
 * One search's page (see #rankedPage). Parameters: $1-$4 the candidate sources (low and high keys of
 * agent_words, whether each is the driver's sample, how many entries of each), $5 the exact hostname to add
 * (null: none), $6 every agent in seq order instead (no driver; $19 of them), $7 online since (null: offline
 * too), $8-$9 the query words' key ranges, $10 the word every sampled candidate starts already (null: none), $11
 * verbatim terms, $12 capabilities, $13 match=all, $14 the phrase, $15 the words of the capability tier, $16
 * count capability hits, $17 limit, $18 offset. Every row carries the counts; a page past the last match is one
 * row of counts alone (seq null).
 */
const RANKED_PAGE_SQL =
  "WITH s AS MATERIALIZED (SELECT u.seq, bool_or(u.sampled) AS sampled FROM (" +
  "SELECT w.seq, r.sampled FROM unnest($1::text[], $2::text[], $3::boolean[], $4::int[]) AS r(lo, hi, sampled, take) " +
  "CROSS JOIN LATERAL (SELECT seq FROM agent_words WHERE word >= r.lo AND word < r.hi ORDER BY word, seq LIMIT r.take) w " +
  "UNION ALL SELECT seq, false FROM agents WHERE hostname = $5::text " +
  "UNION ALL (SELECT seq, true FROM agents WHERE $6::boolean ORDER BY seq LIMIT $19::int)" +
  ") u GROUP BY u.seq), " +
  "c AS MATERIALIZED (SELECT a.seq, s.sampled, a.id, " +
  "CASE WHEN $14::text = '' THEN 3 WHEN a.hostname = $14::text THEN 0 WHEN a.capabilities && $15::text[] THEN 1 " +
  "WHEN strpos(a.hostname, $14::text) > 0 THEN 2 ELSE 3 END AS tier, " +
  "CASE WHEN $16::boolean THEN (SELECT count(*) FROM unnest(a.capabilities) x WHERE x = ANY($12::text[])) ELSE 0 END AS hits, " +
  "($7::bigint IS NULL OR a.last_seen >= $7::bigint) " +
  "AND (cardinality($12::text[]) = 0 OR CASE WHEN $13::boolean THEN a.capabilities @> $12::text[] " +
  "ELSE a.capabilities && $12::text[] END) " +
  "AND NOT EXISTS (SELECT 1 FROM unnest($11::text[]) t WHERE strpos(a.search_text, t) = 0) " +
  "AND NOT EXISTS (SELECT 1 FROM unnest($8::text[], $9::text[]) AS q(lo, hi) WHERE (NOT s.sampled OR q.lo IS DISTINCT FROM $10::text) " +
  "AND (strpos(a.search_text, q.lo) = 0 OR NOT (starts_with(a.search_text, q.lo) " +
  "OR strpos(a.search_text, ' ' || q.lo) > 0 OR strpos(a.search_text, chr(10) || q.lo) > 0 " +
  "OR strpos(a.search_text, '-' || q.lo) > 0 " +
  "OR EXISTS (SELECT 1 FROM agent_words x WHERE x.seq = a.seq AND x.word >= q.lo AND x.word < q.hi LIMIT 1)))) AS ok " +
  "FROM agents a JOIN s ON s.seq = a.seq WHERE a.seq = ANY(ARRAY(SELECT seq FROM s))), " +
  "n AS (SELECT count(*) FILTER (WHERE ok) AS found, count(*) FILTER (WHERE sampled) AS examined, " +
  "count(*) FILTER (WHERE ok AND sampled) AS matched FROM c), " +
  'p AS (SELECT seq, tier, hits, id FROM c WHERE ok ORDER BY tier, hits DESC, id COLLATE "C" LIMIT $17::int OFFSET $18::int) ' +
  `SELECT n.found, n.examined, n.matched, a.seq, ${AGENT_COLUMNS} FROM n ` +
  'LEFT JOIN (p JOIN agents a ON a.seq = p.seq) ON true ORDER BY p.tier, p.hits DESC, p.id COLLATE "C"';

const toAgent = (row: Row): StoredAgent => agentFromRow(row, (row.capabilities as string[]) ?? []);
const toMessage = messageFromRow;
const toTrust = trustFromRow;
const toListedTrust = listedTrustFromRow;

const TRUST_COLUMNS =
  "requester_id, target_id, status, introduction, assistant_name, human_name, created_at, approved_at, " +
  "updated_at, change_seq";

/**
 * The columns insertAgent writes (all but seq), with their types, in the order of agentRowValues: id first, so
 * updateAgent finds the row by $1. Anything that seeds agents without the store writes these.
 */
export const AGENT_WRITTEN = [
  ["id", "text"],
  ["hostname", "text"],
  ["installation_id", "text"],
  ["peer_id", "text"],
  ["pilot_node_id", "bigint"],
  ["pilot_address", "text"],
  ["display_name", "text"],
  ["description", "text"],
  ["capabilities", "text[]"],
  ["token_hash", "text"],
  ["public_key", "text"],
  ["signed_record", "text"],
  ["last_seen", "bigint"],
  ["created_at", "bigint"],
  ["updated_at", "bigint"],
  ["search_text", "text"],
] as const;

/** An agent's values for AGENT_WRITTEN, in its order (search_text derived from the agent). */
export function agentRowValues(agent: StoredAgent): unknown[] {
  return [
    agent.id,
    agent.hostname,
    agent.installationId,
    agent.peerId,
    agent.pilotNodeId,
    agent.pilotAddress,
    agent.displayName,
    agent.description,
    agent.capabilities,
    agent.tokenHash,
    agent.publicKey,
    agent.signedRecord,
    agent.lastSeen,
    agent.createdAt,
    agent.updatedAt,
    searchTextOf(agent),
  ];
}

const INSERT_AGENT_SQL =
  `INSERT INTO agents (${AGENT_WRITTEN.map(([c]) => c).join(", ")}) ` +
  `VALUES (${AGENT_WRITTEN.map((_, i) => `$${i + 1}`).join(", ")}) RETURNING seq`;

const UPDATE_AGENT_SQL = `UPDATE agents SET ${AGENT_WRITTEN.slice(1)
  .map(([column], i) => `${column} = $${i + 2}`)
  .join(", ")} WHERE id = $1 RETURNING seq`;

/**
 * The agent_words keys of an agent, as insertAgent writes them: its search words, and each capability under
 * CAPABILITY_KEY (migration 0003). Anything that seeds agent_words without the store must write these.
 */
export function agentWordsOf(agent: StoredAgent): string[] {
  return [...wordsOf(searchTextOf(agent)), ...agent.capabilities.map((c) => CAPABILITY_KEY + c)];
}

/** The connection string with its password (and any password parameter) replaced, for logs and errors. */
export function redactConnectionString(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass/i.test(key)) parsed.searchParams.set(key, "***");
    }
    return parsed.toString();
  } catch {
    // Why safe: not a URL (a libpq keyword string); say nothing of it rather than risk printing a secret.
    return "postgres (connection string not shown)";
  }
}

const hasNul = (value: unknown): boolean =>
  typeof value === "string" ? value.includes("\0") : Array.isArray(value) && value.some(hasNul);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const toLiveness = (row: Row): AgentLiveness => ({
  tokenHash: str(row.token_hash),
  lastSeen: Number(row.last_seen),
});

export class PostgresRegistryStore implements RegistryStore, StoreOperationsHooks {
  readonly #pool: pg.Pool;
  /** Connections that run search statements only, with generic plans (see #search). */
  readonly #searchPool: pg.Pool;
  /** The client of the transaction the current async context runs in (none outside transactions). */
  readonly #tx = new AsyncLocalStorage<pg.PoolClient>();
  readonly #heartbeats: HeartbeatBatcher;
  /** Liveness reads outside transactions (every heartbeat makes one), one statement for those arriving together. */
  readonly #liveness: ReadBatcher<string, AgentLiveness>;
  readonly #connectionString: string;
  readonly #searchExact: number;
  readonly #searchSample: number;
  readonly #buses = new Set<ReplicaBus>();
  /** Names of the search statements, by their text. */
  readonly #statementNames = new Map<string, string>();
  /** Search ranges found broad lately, by their low key, with their estimated sizes (see BROAD_RANGE_TTL_MS). */
  readonly #broadRanges = new Map<string, { estimate: number; until: number }>();
  /** The planner's statistics on agent_words' keys and the agents' row estimate (see #currentStatistics). */
  #statistics: { keys: KeyStatistics; agents: number; until: number } = {
    keys: KeyStatistics.EMPTY,
    agents: 0,
    until: 0,
  };
  #statisticsLoad: Promise<void> | undefined;
  #rangeCounts = 0;
  #closed = false;
  /** Where heartbeat batches and pool use are reported (the server's metrics), once attached. */
  #telemetry: StoreTelemetry | undefined;
  #schemaCurrent = false;
  /** What replicas share through this database besides rows (see replica.ts). */
  readonly shared: SharedStore;

  private constructor(pool: pg.Pool, searchPool: pg.Pool, options: PostgresStoreOptions) {
    this.#pool = pool;
    this.#searchPool = searchPool;
    this.#connectionString = options.connectionString;
    this.#searchExact = Math.max(1, options.searchExact ?? SEARCH_EXACT);
    this.#searchSample = Math.max(1, options.searchSample ?? SEARCH_SAMPLE);
    this.#heartbeats = new HeartbeatBatcher({
      write: (ids, times, since, tokenHashes) => this.#writeTouches(ids, times, since, tokenHashes),
      lingerMs: options.heartbeatLingerMs,
      onBatch: (rows) => {
        options.onHeartbeatBatch?.(rows);
        this.#telemetry?.heartbeatBatch(rows);
      },
    });
    this.#liveness = new ReadBatcher(async (ids) => {
      const rows = await this.#rows(
        "SELECT id, token_hash, last_seen FROM agents WHERE id = ANY($1::text[])",
        [ids],
      );
      return new Map(rows.map((row) => [String(row.id), toLiveness(row)]));
    });
    this.shared = {
      spend: (nonce, now, keepUntil) => this.#spendNonce(nonce, now, keepUntil),
      purgeNonces: (now) => this.#count("DELETE FROM proof_nonces WHERE expires_at <= $1", [now]),
      sweepTurn: (minIntervalMs, sweep) => this.#sweepTurn(minIntervalMs, sweep),
      listenInboxes: async (handlers) => {
        const bus = await ReplicaBus.start({ connectionString: this.#connectionString, ...handlers });
        this.#buses.add(bus);
        return bus;
      },
    };
  }

  /** Statements that counted search ranges so far (a range the statistics show broad is not counted). */
  get rangeCounts(): number {
    return this.#rangeCounts;
  }

  /** Heartbeat writes so far: statements and the rows they carried. */
  get heartbeatStats(): { batches: number; rows: number } {
    return this.#heartbeats.stats;
  }

  /** Opens the pool and (unless told not to) brings the schema up to date under an advisory lock. */
  static async open(options: PostgresStoreOptions): Promise<PostgresRegistryStore> {
    // Bigints (seq, times) come back as strings; the store converts them to numbers (all fit in 2^53).
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 10,
    });
    const searchPool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxSearchConnections ?? 4,
      options: "-c plan_cache_mode=force_generic_plan",
    });
    // An idle client that loses its connection (a database restart) must not crash the process; the pool
    // drops it and the next query opens a new one.
    for (const p of [pool, searchPool]) {
      p.on("error", () => {
        // Why safe: the pool drops a client whose idle connection broke; the next query opens a new one.
      });
    }
    try {
      if (options.migrate ?? true) await applyPostgresMigrations(pool);
    } catch (error) {
      await Promise.all([pool.end(), searchPool.end()]);
      throw error;
    }
    return new PostgresRegistryStore(pool, searchPool, options);
  }

  /** Where a statement runs: the transaction's client, or any pooled connection (autocommit). */
  #db(): Queryable {
    return this.#tx.getStore() ?? this.#pool;
  }

  async #rows(sql: string, params: unknown[] = []): Promise<Row[]> {
    // PostgreSQL text cannot hold NUL, so no stored value has one (writes are validated or JSON-escaped); a read
    // keyed by one (an id in a URL path, a search word) matches nothing, as on SQLite, instead of failing (and
    // aborting the transaction it runs in).
    if (params.some(hasNul) && sql.startsWith("SELECT")) return [];
    return (await this.#db().query(sql, params)).rows as Row[];
  }

  /**
   * A search statement (one of a few fixed shapes: words, ranges and flags are array parameters) as a named
   * prepared statement on the search pool, whose connections use generic plans (plan_cache_mode): each plans it
   * once. By default PostgreSQL plans a prepared statement anew for every call while its generic plan's estimate
   * (unknown array sizes) looks worse than the custom plans', and planning a search (0.2-0.4 ms at 1,000,000
   * agents) costs about as much as running it. The setting stays off the main pool, where one-off statements
   * keep their plans made for their values.
   */
  async #search(sql: string, params: unknown[]): Promise<Row[]> {
    let name = this.#statementNames.get(sql);
    if (!name) {
      name = `r${createHash("sha256").update(sql).digest("hex").slice(0, 24)}`;
      this.#statementNames.set(sql, name);
    }
    return (await this.#searchPool.query({ name, text: sql, values: params })).rows as Row[];
  }

  async #row(sql: string, params: unknown[] = []): Promise<Row | undefined> {
    return (await this.#rows(sql, params))[0];
  }

  async #count(sql: string, params: unknown[] = []): Promise<number> {
    return (await this.#db().query(sql, params)).rowCount ?? 0;
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#tx.getStore()) return fn();
    for (let attempt = 1; ; attempt++) {
      const client = await this.#pool.connect();
      let broken: Error | undefined;
      try {
        await client.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
        const result = await this.#tx.run(client, fn);
        await client.query("COMMIT");
        return result;
      } catch (error) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackError) {
          broken = rollbackError as Error;
        }
        const code = (error as { code?: unknown }).code;
        if (attempt >= MAX_ATTEMPTS || typeof code !== "string" || !RETRYABLE.has(code)) throw error;
      } finally {
        // A client whose rollback failed is in an unknown state: the pool closes it instead of reusing it.
        client.release(broken);
      }
      // Losers of a race back off a little, at random, so they do not collide again in step.
      await sleep(Math.random() * Math.min(MAX_BACKOFF_MS, 2 ** attempt));
    }
  }

  async getAgentById(id: string): Promise<StoredAgent | undefined> {
    const row = await this.#row(`SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.id = $1`, [id]);
    return row ? toAgent(row) : undefined;
  }

  async getAgentLiveness(id: string): Promise<AgentLiveness | undefined> {
    // Inside a transaction the read must see its snapshot; outside, reads arriving together share one statement.
    if (!this.#tx.getStore() && !hasNul(id)) return this.#liveness.get(id);
    const row = await this.#row("SELECT id, token_hash, last_seen FROM agents WHERE id = $1", [id]);
    return row ? toLiveness(row) : undefined;
  }

  /** Liveness reads so far outside transactions: statements and the reads they answered. */
  get livenessReadStats(): { batches: number; reads: number } {
    return this.#liveness.stats;
  }

  async getAgentByHostname(hostname: string): Promise<StoredAgent | undefined> {
    const row = await this.#row(`SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.hostname = $1`, [hostname]);
    return row ? toAgent(row) : undefined;
  }

  async getAgentByInstallation(installationId: string): Promise<StoredAgent | undefined> {
    const row = await this.#row(`SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.installation_id = $1`, [
      installationId,
    ]);
    return row ? toAgent(row) : undefined;
  }

  async getAgentByPeerId(peerId: string): Promise<StoredAgent | undefined> {
    const row = await this.#row(`SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.peer_id = $1`, [peerId]);
    return row ? toAgent(row) : undefined;
  }

  async #setWords(seq: number, agent: StoredAgent): Promise<void> {
    await this.#db().query("DELETE FROM agent_words WHERE seq = $1", [seq]);
    await this.#db().query(
      "INSERT INTO agent_words (word, seq) SELECT w, $2 FROM unnest($1::text[]) AS w ON CONFLICT DO NOTHING",
      [agentWordsOf(agent), seq],
    );
  }

  insertAgent(agent: StoredAgent): Promise<void> {
    return this.transaction(async () => {
      const row = await this.#row(INSERT_AGENT_SQL, agentRowValues(agent));
      await this.#setWords(Number(row?.seq), agent);
    });
  }

  updateAgent(agent: StoredAgent): Promise<void> {
    return this.transaction(async () => {
      const row = await this.#row(UPDATE_AGENT_SQL, agentRowValues(agent));
      if (!row) throw new Error(`updateAgent: unknown agent id ${agent.id}`);
      await this.#setWords(Number(row.seq), agent);
    });
  }

  async touchAgent(id: string, lastSeen: number, ifSeenSince?: number): Promise<boolean> {
    return this.#touch(id, lastSeen, ifSeenSince ?? Number.MIN_SAFE_INTEGER, null);
  }

  async touchOnlineAgent(
    id: string,
    lastSeen: number,
    onlineSince: number,
    tokenHash: string | null,
  ): Promise<boolean> {
    return this.#touch(id, lastSeen, onlineSince, tokenHash);
  }

  async #touch(id: string, lastSeen: number, since: number, tokenHash: string | null): Promise<boolean> {
    if (hasNul(id) || hasNul(tokenHash)) return false;
    // Inside a transaction the write must be part of it; outside, heartbeats share one statement (group commit).
    if (this.#tx.getStore()) {
      const n = await this.#count(
        "UPDATE agents SET last_seen = GREATEST(last_seen, $2) WHERE id = $1 AND last_seen >= $3 " +
          "AND ($4::text IS NULL OR token_hash = $4)",
        [id, lastSeen, since, tokenHash],
      );
      return n > 0;
    }
    return this.#heartbeats.touch(id, lastSeen, since, tokenHash);
  }

  /**
   * One statement for a batch of heartbeats. last_seen never moves back (two replicas' batches may commit in
   * either order); a row whose last_seen is below the heartbeat's bound (offline, or deregistered or released
   * since its check read it) is left alone, as is one that does not hold the heartbeat's token hash (when it
   * names one). A batch that loses a deadlock or serialization race is written again.
   */
  async #writeTouches(
    ids: string[],
    times: number[],
    since: number[],
    tokenHashes: Array<string | null>,
  ): Promise<Set<string>> {
    for (let attempt = 1; ; attempt++) {
      try {
        const rows = await this.#rows(
          "UPDATE agents a SET last_seen = GREATEST(a.last_seen, v.t) " +
            "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS v(id, t, since, th) " +
            "WHERE a.id = v.id AND a.last_seen >= v.since AND (v.th IS NULL OR a.token_hash = v.th) " +
            "RETURNING a.id",
          [ids, times, since, tokenHashes],
        );
        return new Set(rows.map((r) => String(r.id)));
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (attempt >= 3 || typeof code !== "string" || !RETRYABLE.has(code)) throw error;
        await sleep(Math.random() * 10 * attempt);
      }
    }
  }

  /** Records a spent proof nonce (as a hash) unless it is recorded and unexpired; true when it was fresh. */
  async #spendNonce(nonce: string, now: number, keepUntil: number): Promise<boolean> {
    const hash = createHash("sha256").update(nonce, "utf8").digest("hex");
    const n = await this.#count(
      "INSERT INTO proof_nonces (nonce_hash, expires_at) VALUES ($1, $2) ON CONFLICT (nonce_hash) DO UPDATE " +
        "SET expires_at = excluded.expires_at WHERE proof_nonces.expires_at <= $3",
      [hash, keepUntil, now],
    );
    return n > 0;
  }

  async #sweepTurn<T>(minIntervalMs: number, sweep: () => Promise<T>): Promise<SweepTurn<T>> {
    // The lock lives in this session: held on one pooled connection for the whole sweep, freed by the
    // database if this process dies mid-sweep.
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      const locked = await client.query("SELECT pg_try_advisory_lock($1::bigint) AS ok", [SWEEP_LOCK]);
      if (!locked.rows[0]?.ok) return { ran: false, reason: "busy" };
      try {
        const due = await client.query(
          "UPDATE registry_sweeps SET last_run = clock_timestamp(), runs = runs + 1 WHERE name = 'purge' " +
            "AND last_run <= clock_timestamp() - make_interval(secs => $1::double precision / 1000)",
          [minIntervalMs],
        );
        if (!due.rowCount) return { ran: false, reason: "not-due" };
        return { ran: true, result: await sweep() };
      } finally {
        await client.query("SELECT pg_advisory_unlock($1::bigint)", [SWEEP_LOCK]).catch((error: Error) => {
          // The session may still hold the lock: the pool must not hand this connection out again.
          broken = error;
        });
      }
    } finally {
      client.release(broken);
    }
  }

  async deleteAgent(id: string): Promise<boolean> {
    // agent_words go with the row (ON DELETE CASCADE).
    return (await this.#count("DELETE FROM agents WHERE id = $1", [id])) > 0;
  }

  async listAgents(query: AgentListQuery): Promise<Page<StoredAgent>> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace("?", `$${params.length}`));
    };
    if (query.hostname !== undefined) add("a.hostname = ?", query.hostname);
    if (query.installationId !== undefined) add("a.installation_id = ?", query.installationId);
    if (query.peerId !== undefined) add("a.peer_id = ?", query.peerId);
    if (query.pilotNodeId !== undefined) add("a.pilot_node_id = ?", query.pilotNodeId);
    if (query.seenSince !== undefined) add("a.last_seen >= ?", query.seenSince);
    const whereSql = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const total = Number((await this.#row(`SELECT COUNT(*) AS n FROM agents a ${whereSql}`, params))?.n ?? 0);
    const rows = await this.#rows(
      `SELECT ${AGENT_COLUMNS} FROM agents a ${whereSql} ORDER BY a.created_at, a.id ` +
        `LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
      [...params, query.limit, query.offset],
    );
    return { items: rows.map(toAgent), total };
  }

  async lookupAgents(query: AgentLookupQuery): Promise<StoredAgent[]> {
    // Each node id reads its records from agents_node and keeps the freshest (a lateral probe per id); peer ids
    // probe the unique index. Ids are bounded by the route's validation.
    const rows = await this.#rows(
      `SELECT ${AGENT_COLUMNS} FROM agents a WHERE a.seq IN (` +
        "SELECT n.seq FROM unnest($1::bigint[]) AS node(id) CROSS JOIN LATERAL (" +
        "SELECT seq FROM agents WHERE pilot_node_id = node.id ORDER BY last_seen DESC, id LIMIT $2) n " +
        "UNION SELECT seq FROM agents WHERE peer_id = ANY($3::text[])" +
        ") ORDER BY a.created_at, a.id",
      [query.pilotNodeIds, query.perNodeId, query.peerIds],
    );
    return rows.map(toAgent);
  }

  /**
   * Search in at most two statements of fixed shape (each connection plans them once, whatever the query). First
   * the size of each source of candidates (each query word's prefix range of agent_words, each capability's key
   * there), counted only up to the exact bound (an index-only scan that stops there), with the planner's estimate
   * for the ones beyond it. Then the candidates' rows from the most selective source (the driver): when it is
   * within the bound, all its agents, and the page and total are exact; beyond it, its first `sample` entries in
   * key order (see SEARCH_SAMPLE) and the total is estimated. The candidates are checked and ranked by the
   * in-memory index's rules in the same statement, which returns the page's rows (#rankedPage).
   */
  async searchAgents(query: AgentSearchQuery): Promise<Page<StoredAgent>> {
    if (query.terms.some(hasNul) || query.capabilities.some(hasNul) || hasNul(query.phrase)) {
      return { items: [], total: 0 };
    }
    const words = [...new Set(query.terms.flatMap((term) => term.match(WORD) ?? []))];
    const caps = query.capabilities;
    const all = query.match === "all";
    const exact = this.#searchExact;
    // The longest words are sized (likely the most selective; a hostile query may hold thousands of words); the
    // others are still checked on every candidate.
    const sized = [...words].sort((a, b) => b.length - a.length).slice(0, SEARCH_SIZED_WORDS);
    const ranges = [...sized.map(wordRange), ...caps.map(capabilityRange)];
    const sizes = await this.#rangeSizes(ranges);
    const wordSizes = sizes.slice(0, sized.length);
    const capSizes = sizes.slice(sized.length);
    if (wordSizes.some((s) => s.n === 0)) return { items: [], total: 0 };
    if (caps.length && (all ? capSizes.some((s) => s.n === 0) : capSizes.every((s) => s.n === 0))) {
      return { items: [], total: 0 };
    }

    // The driver: the smallest word or (match=all) capability; for match=any, the union of the capabilities
    // when that is smaller (or there is no word); with neither, every agent.
    type Driver = { ranges: WordRange[]; n: number; estimate: number };
    const single = (i: number): Driver => ({
      ranges: [ranges[i]!],
      n: sizes[i]!.n,
      estimate: sizes[i]!.estimate,
    });
    const size = (d: Driver) => d.estimate;
    let driver: Driver | undefined;
    for (let i = 0; i < sized.length; i++) {
      if (!driver || size(single(i)) < size(driver)) driver = single(i);
    }
    if (caps.length && all) {
      for (let i = sized.length; i < ranges.length; i++)
        if (!driver || size(single(i)) < size(driver)) driver = single(i);
    } else if (caps.length) {
      const held = capSizes.map((s, i) => ({ s, range: ranges[sized.length + i]! })).filter((c) => c.s.n > 0);
      const union: Driver = {
        ranges: held.map((c) => c.range),
        n: held.reduce((sum, c) => sum + c.s.n, 0),
        estimate: held.reduce((sum, c) => sum + c.s.estimate, 0),
      };
      if (!driver || size(union) < size(driver)) driver = union;
    }
    // Exact when the driver holds at most the bound: every one of its entries is then a candidate. A union counts
    // all its ranges together (each may be under the bound while they are not).
    const everyone = driver ? undefined : await this.#allAgentsSize();
    const complete = (driver ?? everyone!).n <= exact;
    const driverEstimate = driver ? driver.estimate : everyone!.estimate;
    // Candidates of a one-word driver start that word already.
    const sampledWord =
      driver?.ranges.length === 1 && words.includes(driver.ranges[0]!.lo) ? driver.ranges[0]!.lo : undefined;
    const rank = (take: number, early: boolean) =>
      this.#rankedPage(query, words, driver?.ranges, take, early, sampledWord);
    if (complete) {
      const ranked = await rank(exact + 1, false);
      return { items: ranked.page, total: ranked.found };
    }
    // A query that filters the driver's candidates further (more words, or capabilities beside a word) keeps only
    // a share of them: it takes the wider sample at once rather than after a first one fell short.
    const driverIsCapabilities = driver?.ranges.every((r) => r.lo.startsWith(CAPABILITY_KEY)) ?? false;
    const filtered = driverIsCapabilities
      ? words.length > 0 || (all && caps.length > 1)
      : words.length > 1 || caps.length > 0;
    let sample = this.#searchSample * (filtered ? SEARCH_SAMPLE_MAX_FACTOR : 1);
    for (;;) {
      const ranked = await rank(sample, true);
      // Whether to widen depends on the query only, never on its offset or limit: every page of one query comes
      // from one candidate set, so pages follow each other without gaps or repeats.
      if (ranked.found >= SEARCH_FULL_PAGE || sample >= this.#searchSample * SEARCH_SAMPLE_MAX_FACTOR) {
        // The sample's match rate times the source's size, and never fewer than the matches seen.
        const estimate =
          ranked.examined > 0 ? Math.round((ranked.matched / ranked.examined) * driverEstimate) : 0;
        return {
          items: ranked.page,
          total: Math.max(ranked.found, estimate),
          totalExact: false,
        };
      }
      sample *= SEARCH_SAMPLE_MAX_FACTOR;
    }
  }

  /**
   * Entries of each range, counted up to the exact bound + 1, in one statement; beyond it, the planner's estimate
   * (at least that). A range found beyond the bound is remembered as broad, with its estimate, for
   * BROAD_RANGE_TTL_MS: it is neither counted nor estimated again meanwhile. A range whose common keys the
   * planner's statistics put far beyond the bound (STATISTICS_BROAD_FACTOR) is broad without being counted, on
   * every replica from its first search: the common words and capabilities are the broad ones.
   */
  async #rangeSizes(ranges: WordRange[]): Promise<Array<{ n: number; estimate: number }>> {
    const now = Date.now();
    const bound = this.#searchExact + 1;
    const statistics = (await this.#currentStatistics()).keys;
    const sizes = ranges.map((range) => {
      const known = this.#broadRanges.get(range.lo);
      if (known && known.until > now) return { n: bound, estimate: Math.max(bound, known.estimate) };
      const common = statistics.estimate(range.lo, range.hi);
      return common >= STATISTICS_BROAD_FACTOR * bound ? { n: bound, estimate: common } : undefined;
    });
    const unknown = ranges.filter((_, i) => !sizes[i]);
    if (!unknown.length) return sizes as Array<{ n: number; estimate: number }>;
    this.#rangeCounts++;
    const rows = await this.#search(
      "SELECT c.n, CASE WHEN c.n >= $3 THEN registry_words_estimate(c.lo, c.hi) END AS e FROM (" +
        "SELECT r.i, r.lo, r.hi, (SELECT count(*) FROM (SELECT 1 FROM agent_words " +
        "WHERE word >= r.lo AND word < r.hi LIMIT $3) s) AS n " +
        // OFFSET 0: counted once, not once for each use of n.
        "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r(lo, hi, i) OFFSET 0) c ORDER BY c.i",
      [unknown.map((r) => r.lo), unknown.map((r) => r.hi), bound],
    );
    if (this.#broadRanges.size > BROAD_RANGES_KEPT) this.#broadRanges.clear();
    let next = 0;
    return ranges.map((range, i) => {
      const cached = sizes[i];
      if (cached) return cached;
      const row = rows[next++];
      const n = Number(row?.n ?? 0);
      if (n < bound) return { n, estimate: n };
      const estimate = Math.max(n, Number(row?.e ?? 0));
      this.#broadRanges.set(range.lo, { estimate, until: now + BROAD_RANGE_TTL_MS });
      return { n, estimate };
    });
  }

  /** Agents counted up to the exact bound + 1, and the planner's estimate of all of them beyond it. */
  async #allAgentsSize(): Promise<{ n: number; estimate: number }> {
    const bound = this.#searchExact + 1;
    const { agents } = await this.#currentStatistics();
    if (agents >= STATISTICS_BROAD_FACTOR * bound) return { n: bound, estimate: agents };
    const row = await this.#row(
      "SELECT (SELECT count(*) FROM (SELECT 1 FROM agents LIMIT $1) s) AS n, " +
        "(SELECT reltuples FROM pg_class WHERE oid = 'agents'::regclass) AS e",
      [this.#searchExact + 1],
    );
    const n = Number(row?.n ?? 0);
    return { n, estimate: Math.max(n, Number(row?.e ?? 0)) };
  }

  /**
   * The planner's statistics: read on the first search, then again in the background once BROAD_RANGE_TTL_MS
   * old (searches meanwhile use the previous ones). Unreadable (no ANALYZE yet, no right to pg_stats): none, and
   * every range is counted.
   */
  async #currentStatistics(): Promise<{ keys: KeyStatistics; agents: number }> {
    const current = this.#statistics;
    if (current.until > Date.now()) return current;
    this.#statisticsLoad ??= this.#loadStatistics().finally(() => {
      this.#statisticsLoad = undefined;
    });
    if (current.until === 0) await this.#statisticsLoad;
    return this.#statistics;
  }

  async #loadStatistics(): Promise<void> {
    const until = Date.now() + BROAD_RANGE_TTL_MS;
    try {
      const row = await this.#row(
        "SELECT s.most_common_vals::text::text[] AS keys, s.most_common_freqs AS freqs, w.reltuples AS words, " +
          "a.reltuples AS agents FROM pg_class w JOIN pg_namespace n ON n.oid = w.relnamespace " +
          "CROSS JOIN pg_class a LEFT JOIN pg_stats s " +
          "ON s.schemaname = n.nspname AND s.tablename = 'agent_words' AND s.attname = 'word' " +
          "WHERE w.oid = 'agent_words'::regclass AND a.oid = 'agents'::regclass",
      );
      this.#statistics = {
        keys: KeyStatistics.of(row?.keys, row?.freqs, row?.words),
        agents: Math.max(0, Number(row?.agents ?? 0)),
        until,
      };
    } catch {
      // Why safe: without statistics every range is counted, as before the first ANALYZE.
      this.#statistics = { keys: KeyStatistics.EMPTY, agents: 0, until };
    }
  }

  /**
   * One search's ranked page, in one statement of fixed shape. The candidates, each once: the driver's first
   * `take` entries in key order (shared evenly among the ranges of a union; every agent, in seq order, without a
   * driver), plus (when `early`) the exact hostname and the first SEARCH_SAMPLE holders of each capability the
   * phrase or a term names (ranking tiers 0 and 1, which a sample could miss; with a capability filter, only of
   * capabilities that pass it, as holders of others rarely do). Each is checked as the in-memory index checks
   * (search-index.ts): online; every query word starts one of its words (its search text holds the word, a cheap
   * test that most candidates fail; then the word at the text's start or after a space, line feed or hyphen, none
   * of them a letter or digit, so a word start; else a probe of agent_words by (seq, word), which holds exactly
   * its words; a sampled candidate of a one-word driver starts that word already); verbatim terms within its
   * search text; its capabilities. The matches are ranked: the exact hostname (tier 0), a capability equal to the
   * phrase or one of its terms (1), the phrase within the hostname (2), the rest (3); then more of the asked
   * capabilities first (match=any with several); then id. The page's rows come back with the counts the caller
   * estimates from.
   */
  async #rankedPage(
    query: AgentSearchQuery,
    words: readonly string[],
    driver: WordRange[] | undefined,
    take: number,
    early: boolean,
    sampledWord: string | undefined,
  ): Promise<{ page: StoredAgent[]; found: number; examined: number; matched: number }> {
    // The ranges of a sampled union (match=any over capabilities) share the sample; an exact one reads each range
    // in full (together they hold at most `take`). The tier picks take a plain sample.
    const driverTake = early && driver && driver.length > 1 ? Math.ceil(take / driver.length) : take;
    const sources = (driver ?? []).map((range) => ({ ...range, sampled: true, take: driverTake }));
    const phrase = query.phrase;
    const caps = query.capabilities;
    // Holders of a capability the filter does not ask for rarely pass it (a few in 100 rows read): no picks then.
    const passes = (name: string) =>
      caps.length === 0 || (query.match === "all" ? caps.every((c) => c === name) : caps.includes(name));
    if (early && phrase) {
      for (const word of new Set([phrase, ...query.terms]))
        if (passes(word))
          sources.push({
            ...capabilityRange(word),
            sampled: false,
            take: Math.min(take, this.#searchSample),
          });
    }
    const rows = await this.#search(RANKED_PAGE_SQL, [
      sources.map((r) => r.lo),
      sources.map((r) => r.hi),
      sources.map((r) => r.sampled),
      sources.map((r) => r.take),
      early && phrase ? phrase : null,
      driver === undefined,
      query.seenSince ?? null,
      words.map((w) => wordRange(w).lo),
      words.map((w) => wordRange(w).hi),
      sampledWord ?? null,
      query.terms.filter((term) => !isPlainWord(term)),
      caps,
      query.match === "all",
      phrase,
      phrase ? [phrase, ...query.terms] : [],
      caps.length > 1 && query.match !== "all",
      query.limit,
      query.offset,
      take,
    ]);
    const counts = rows[0];
    return {
      page: rows.filter((row) => row.seq !== null).map(toAgent),
      found: Number(counts?.found ?? 0),
      examined: Number(counts?.examined ?? 0),
      matched: Number(counts?.matched ?? 0),
    };
  }

  purgeAgents(lastSeenBefore: number): Promise<number> {
    return this.transaction(async () => {
      const rows = await this.#rows(
        // seen_day (migration 0005) is last_seen's day, truncated as $1's is: a row seen before $1 has seen_day at
        // most $1's day, so the index range holds every row to purge (and the rest of that day's).
        "DELETE FROM agents WHERE seq IN " +
          "(SELECT seq FROM agents WHERE seen_day <= $1::bigint / 86400000 AND last_seen < $1 LIMIT 10000) " +
          "RETURNING installation_id",
        [lastSeenBefore],
      );
      // Messages held for a purged agent go with it: its hostname is free now, and a newcomer under it must
      // never read them.
      const inboxes = rows.map((r) => r.installation_id).filter((id) => id !== null);
      if (inboxes.length) {
        await this.#db().query("DELETE FROM messages WHERE to_installation_id = ANY($1::text[])", [inboxes]);
      }
      return rows.length;
    });
  }

  insertMessage(message: NewMessage): Promise<{ message: StoredMessage; duplicate: boolean }> {
    return this.transaction(async () => {
      // Lock the inbox first, so this message's seq is taken (and committed) after every earlier one's.
      await this.#db().query(
        "INSERT INTO inbox_usage (to_installation_id, messages, bytes) VALUES ($1, 0, 0) " +
          "ON CONFLICT (to_installation_id) DO UPDATE SET messages = inbox_usage.messages",
        [message.toInstallationId],
      );
      const existing = await this.#row(
        "SELECT * FROM messages WHERE to_installation_id = $1 AND message_id = $2",
        [message.toInstallationId, message.messageId],
      );
      if (existing) return { message: toMessage(existing), duplicate: true };
      const row = await this.#row(
        "INSERT INTO messages (message_id, to_installation_id, from_installation_id, from_hostname, body_json, " +
          "created_at, body_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
        [
          message.messageId,
          message.toInstallationId,
          message.fromInstallationId,
          message.fromHostname,
          message.bodyJson,
          message.createdAt,
          Buffer.byteLength(message.bodyJson),
        ],
      );
      // Replicas listening wake their long-polls on this inbox when the transaction commits (never for one
      // rolled back). The payload is the public peer id: the installation id is the recipient's secret.
      await this.#db().query("SELECT pg_notify($1, $2)", [INBOX_CHANNEL, peerIdOf(message.toInstallationId)]);
      return { message: { ...message, seq: Number(row?.seq) }, duplicate: false };
    });
  }

  async listMessages(
    toInstallationId: string,
    afterSeq: number,
    createdSince: number,
    limit: number,
  ): Promise<StoredMessage[]> {
    const rows = await this.#rows(
      "SELECT * FROM messages WHERE to_installation_id = $1 AND seq > $2 AND created_at >= $3 ORDER BY seq LIMIT $4",
      [toInstallationId, afterSeq, createdSince, limit],
    );
    return rows.map(toMessage);
  }

  async listMessageHeads(
    toInstallationId: string,
    afterSeq: number,
    createdSince: number,
    limit: number,
  ): Promise<StoredMessageHead[]> {
    const rows = await this.#rows(
      "SELECT seq, message_id, to_installation_id, from_installation_id, from_hostname, created_at, body_bytes " +
        "FROM messages WHERE to_installation_id = $1 AND seq > $2 AND created_at >= $3 ORDER BY seq LIMIT $4",
      [toInstallationId, afterSeq, createdSince, limit],
    );
    return rows.map((row) => ({
      seq: Number(row.seq),
      messageId: String(row.message_id),
      toInstallationId: String(row.to_installation_id),
      fromInstallationId: String(row.from_installation_id),
      fromHostname: String(row.from_hostname),
      createdAt: Number(row.created_at),
      bodyBytes: Number(row.body_bytes),
    }));
  }

  async getMessageBody(toInstallationId: string, seq: number): Promise<string | undefined> {
    const row = await this.#row("SELECT body_json FROM messages WHERE seq = $1 AND to_installation_id = $2", [
      seq,
      toInstallationId,
    ]);
    return row ? String(row.body_json) : undefined;
  }

  async inboxUsage(toInstallationId: string): Promise<InboxUsage> {
    const row = await this.#row("SELECT messages, bytes FROM inbox_usage WHERE to_installation_id = $1", [
      toInstallationId,
    ]);
    return row ? { messages: Number(row.messages), bytes: Number(row.bytes) } : { messages: 0, bytes: 0 };
  }

  async hasMessage(toInstallationId: string, messageId: string): Promise<boolean> {
    const row = await this.#row("SELECT 1 FROM messages WHERE to_installation_id = $1 AND message_id = $2", [
      toInstallationId,
      messageId,
    ]);
    return row !== undefined;
  }

  async deleteMessages(toInstallationId: string, messageIds: string[]): Promise<number> {
    const ids = [...new Set(messageIds)].filter((id) => !hasNul(id));
    if (hasNul(toInstallationId) || ids.length === 0) return 0;
    return this.#count(
      "DELETE FROM messages WHERE to_installation_id = $1 AND message_id = ANY($2::text[])",
      [toInstallationId, ids],
    );
  }

  async deleteInbox(toInstallationId: string): Promise<number> {
    return this.#count("DELETE FROM messages WHERE to_installation_id = $1", [toInstallationId]);
  }

  purgeMessages(createdBefore: number): Promise<number> {
    return this.transaction(async () => {
      const purged = await this.#count("DELETE FROM messages WHERE created_at < $1", [createdBefore]);
      // Empty inboxes' counters go too, so the table stays as small as the set of inboxes holding messages.
      await this.#db().query("DELETE FROM inbox_usage WHERE messages <= 0");
      return purged;
    });
  }

  async getTrust(requesterId: string, targetId: string): Promise<StoredTrust | undefined> {
    const row = await this.#row(
      `SELECT ${TRUST_COLUMNS} FROM trust WHERE requester_id = $1 AND target_id = $2`,
      [requesterId, targetId],
    );
    return row ? toTrust(row) : undefined;
  }

  putTrust(trust: TrustWrite): Promise<void> {
    return this.transaction(async () => {
      await this.#db().query(
        "WITH counter AS (UPDATE counters SET value = value + 1 WHERE name = 'trust_change' RETURNING value) " +
          `INSERT INTO trust (${TRUST_COLUMNS}) SELECT $1::text, $2::text, $3::text, $4::text, $5::text, ` +
          "$6::text, $7::bigint, $8::bigint, $9::bigint, counter.value FROM counter " +
          "ON CONFLICT (requester_id, target_id) DO UPDATE SET status = excluded.status, " +
          "introduction = excluded.introduction, assistant_name = excluded.assistant_name, " +
          "human_name = excluded.human_name, created_at = excluded.created_at, " +
          "approved_at = excluded.approved_at, updated_at = excluded.updated_at, change_seq = excluded.change_seq",
        [
          trust.requesterId,
          trust.targetId,
          trust.status,
          trust.introduction,
          trust.assistantName,
          trust.humanName,
          trust.createdAt,
          trust.approvedAt,
          trust.updatedAt,
        ],
      );
      // Both sides' relay long-polls that watch their trust (trust_after) end when this commits, on every replica;
      // trust records are keyed by public peer ids, which are the wake keys.
      await this.#db().query("SELECT pg_notify($1, $2), pg_notify($1, $3)", [
        INBOX_CHANNEL,
        trust.requesterId,
        trust.targetId,
      ]);
    });
  }

  async listTrust(peerId: string): Promise<ListedTrust[]> {
    const rows = await this.#rows(
      `SELECT t.*, a.hostname AS peer_hostname FROM (` +
        `SELECT ${TRUST_COLUMNS}, target_id AS other_id FROM trust WHERE requester_id = $1 UNION ALL ` +
        `SELECT ${TRUST_COLUMNS}, requester_id AS other_id FROM trust WHERE target_id = $1 AND requester_id <> $1` +
        ") t LEFT JOIN agents a ON a.peer_id = t.other_id ORDER BY t.created_at, t.requester_id, t.target_id",
      [peerId],
    );
    return rows.map(toListedTrust);
  }

  async listTrustChanges(peerId: string, afterSeq: number, limit: number): Promise<ListedTrust[]> {
    // Each side reads at most `limit` rows from its own (peer, change_seq) index; the merge keeps the first
    // `limit` of both.
    const rows = await this.#rows(
      `SELECT t.*, a.hostname AS peer_hostname FROM (` +
        `(SELECT ${TRUST_COLUMNS}, target_id AS other_id FROM trust WHERE requester_id = $1 AND change_seq > $2 ` +
        "ORDER BY change_seq LIMIT $3) UNION ALL " +
        `(SELECT ${TRUST_COLUMNS}, requester_id AS other_id FROM trust WHERE target_id = $1 AND requester_id <> $1 ` +
        "AND change_seq > $2 ORDER BY change_seq LIMIT $3)" +
        ") t LEFT JOIN agents a ON a.peer_id = t.other_id ORDER BY t.change_seq LIMIT $3",
      [peerId, afterSeq, limit],
    );
    return rows.map(toListedTrust);
  }

  async lastTrustChange(): Promise<number> {
    return Number((await this.#row("SELECT value FROM counters WHERE name = 'trust_change'"))?.value ?? 0);
  }

  async listPendingTrust(targetId: string): Promise<StoredTrust[]> {
    const rows = await this.#rows(
      `SELECT ${TRUST_COLUMNS} FROM trust WHERE target_id = $1 AND status = 'pending' ` +
        "ORDER BY created_at, requester_id",
      [targetId],
    );
    return rows.map(toTrust);
  }

  /** Ready when the database answers and carries every migration this code ships (see /readyz). */
  async ready(): Promise<void> {
    if (this.#closed) throw new StoreNotReadyError("the database is closed");
    // Once current the schema stays so (a newer server only adds to it): later probes just ask the database.
    if (this.#schemaCurrent) {
      await this.#pool.query("SELECT 1");
      return;
    }
    if (!(await postgresSchemaIsCurrent(this.#pool))) {
      throw new StoreNotReadyError("the database schema is behind this server: run agent-registry migrate");
    }
    this.#schemaCurrent = true;
  }

  /** Unacknowledged relay messages in all inboxes: the sum of the per-inbox counts kept with every write. */
  async heldMessages(): Promise<number> {
    const row = await this.#row("SELECT COALESCE(SUM(messages), 0)::bigint AS n FROM inbox_usage", []);
    return Number(row?.n ?? 0);
  }

  /** Reports heartbeat batches as they are written, and the pool's use on every checkout and release. */
  attachTelemetry(telemetry: StoreTelemetry): void {
    this.#telemetry = telemetry;
    // Both pools together: the main one and the search's.
    const pools = [this.#pool, this.#searchPool];
    const report = () =>
      telemetry.poolUsage({
        total: pools.reduce((n, p) => n + p.totalCount, 0),
        idle: pools.reduce((n, p) => n + p.idleCount, 0),
        waiting: pools.reduce((n, p) => n + p.waitingCount, 0),
      });
    for (const pool of pools)
      for (const event of ["connect", "acquire", "release", "remove"] as const) pool.on(event, report);
    report();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Heartbeats waiting for their write get it before the pool goes.
    await this.#heartbeats.drain().catch(() => {
      // Why safe: each waiting heartbeat already got the error (answered 500); nothing is left to write.
    });
    await Promise.all([...this.#buses].map((bus) => bus.close()));
    await Promise.all([this.#pool.end(), this.#searchPool.end()]);
  }
}

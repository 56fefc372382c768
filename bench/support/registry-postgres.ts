// PostgreSQL for `bench:registry --store postgres`: a server of the bench's own (a throwaway cluster from
// test/support/postgres-cluster.ts, with durable commits), stopped and deleted at the end, also when the run
// fails or is interrupted; and a fast seeding of the registry's tables straight through SQL, 10,000 agents a
// statement (rows and the search's derived agent_words), instead of one store transaction per agent.
import pg from "pg";
import { AGENT_WRITTEN, agentRowValues, agentWordsOf } from "../../src/registry-server/postgres-store.js";
import { searchTextOf } from "../../src/registry-server/search-words.js";
import type { StoredAgent } from "../../src/registry-server/store.js";
import { type PostgresCluster, startPostgresCluster } from "../../test/support/postgres-cluster.js";

/** The bench's cluster, with the URL of its database `registry`. */
export type BenchPostgres = Omit<PostgresCluster, "url"> & { url: string };

/** Starts a server sized for the bench (durable commits, as a deployment) with one empty database `registry`. */
export async function startBenchPostgres(): Promise<BenchPostgres> {
  // Durable commits (fsync, synchronous_commit on: the defaults), so heartbeat and write figures include a real
  // commit; buffers big enough for 1,000,000 agents' hot indexes.
  const cluster = await startPostgresCluster({
    prefix: "agent-registry-bench-pg-",
    settings: [
      "max_connections=200",
      "shared_buffers=256MB",
      "maintenance_work_mem=256MB",
      "max_wal_size=4GB",
      "checkpoint_timeout=30min",
    ],
  });
  try {
    const admin = new pg.Client({ connectionString: cluster.url("postgres") });
    await admin.connect();
    try {
      await admin.query("CREATE DATABASE registry");
    } finally {
      await admin.end();
    }
  } catch (error) {
    cluster.stopSync();
    throw error;
  }
  return { ...cluster, url: cluster.url("registry") };
}

/** A text[] value as PostgreSQL's array literal: every element quoted, `"` and `\` escaped. */
export function pgArrayLiteral(items: readonly string[]): string {
  return `{${items.map((item) => `"${item.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(",")}}`;
}

/**
 * An agent's search_text (the lowercase hostname, display name, description and capabilities, one a line) and the
 * agent_words keys the PostgreSQL store writes for it (its words and its capability keys, from the store itself).
 */
export function searchRowOf(agent: StoredAgent): { searchText: string; words: string[] } {
  return { searchText: searchTextOf(agent), words: agentWordsOf(agent) };
}

/** seq (the seeding numbers the agents), then the columns the store writes; an array column is sent as its literal. */
const AGENT_COLUMNS: ReadonlyArray<readonly [string, string]> = [["seq", "bigint"], ...AGENT_WRITTEN];
const isArray = (type: string) => type.endsWith("[]");

/** The statement inserting one batch: one array parameter per column, unnested into rows. */
export const INSERT_AGENTS_SQL =
  `INSERT INTO agents (${AGENT_COLUMNS.map(([c]) => c).join(", ")}) OVERRIDING SYSTEM VALUE ` +
  `SELECT ${AGENT_COLUMNS.map(([c, t]) => (isArray(t) ? `${c}::${t}` : c)).join(", ")} ` +
  `FROM unnest(${AGENT_COLUMNS.map(([, t], i) => `$${i + 1}::${isArray(t) ? "text" : t}[]`).join(", ")}) ` +
  `AS v(${AGENT_COLUMNS.map(([c]) => c).join(", ")})`;

/**
 * Inserts agents in batches (seq numbered from 1 in order, then the identity moves past them), with their
 * agent_words rows, on one connection; each batch is one transaction of two statements.
 */
export class PostgresSeeder {
  #next = 1;
  private constructor(readonly client: pg.Client) {}

  /** Statements that put back what the seeding dropped, in order (see connect). */
  #restore: string[] = [];

  /**
   * Connects and drops the indexes and constraints of agents and agent_words but agents' primary key (whatever
   * the migrations made, read from the catalog), so that the batches only append rows; finish() builds them
   * again, once, over all rows (and so checks every unique and foreign key at once).
   */
  static async connect(url: string): Promise<PostgresSeeder> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    // Synchronous commits (one per 10,000 agents, so they cost nothing here), whatever the server's default: after
    // asynchronous ones the VACUUM in finish() left agent_words' visibility map empty (0 of 3,383 pages all-visible
    // at 20,000 agents), and every index-only scan of agent_words then visited the table, as no deployment's would
    // for long (autovacuum keeps the map).
    await client.query("SET synchronous_commit = on");
    await client.query("SET maintenance_work_mem = '256MB'");
    const seeder = new PostgresSeeder(client);
    const tables = "('agents'::regclass, 'agent_words'::regclass)";
    const constraints = (
      await client.query(
        "SELECT conrelid::regclass::text AS tbl, conname, contype, pg_get_constraintdef(oid) AS def " +
          `FROM pg_constraint WHERE conrelid IN ${tables} AND contype IN ('p', 'u', 'f') ` +
          "AND NOT (conrelid = 'agents'::regclass AND contype = 'p') ORDER BY contype = 'f' DESC, conname",
      )
    ).rows as Array<{ tbl: string; conname: string; contype: string; def: string }>;
    const indexes = (
      await client.query(
        "SELECT pg_get_indexdef(i.indexrelid) AS def, i.indexrelid::regclass::text AS name FROM pg_index i " +
          `WHERE i.indrelid IN ${tables} AND NOT EXISTS ` +
          "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')) " +
          "ORDER BY name",
      )
    ).rows as Array<{ def: string; name: string }>;
    const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
    // Foreign keys go first and come back last.
    for (const c of constraints)
      await client.query(`ALTER TABLE ${c.tbl} DROP CONSTRAINT ${quote(c.conname)}`);
    for (const index of indexes) await client.query(`DROP INDEX ${index.name}`);
    seeder.#restore = [
      ...indexes.map((index) => index.def),
      ...constraints
        .filter((c) => c.contype !== "f")
        .map((c) => `ALTER TABLE ${c.tbl} ADD CONSTRAINT ${quote(c.conname)} ${c.def}`),
      ...constraints
        .filter((c) => c.contype === "f")
        .map((c) => `ALTER TABLE ${c.tbl} ADD CONSTRAINT ${quote(c.conname)} ${c.def}`),
    ];
    return seeder;
  }

  async insert(agents: readonly StoredAgent[]): Promise<void> {
    const columns: unknown[][] = AGENT_COLUMNS.map(() => []);
    const wordSeqs: number[] = [];
    const words: string[] = [];
    for (const agent of agents) {
      const seq = this.#next++;
      const values = [seq, ...agentRowValues(agent)].map((value, i) =>
        isArray(AGENT_COLUMNS[i]![1]) ? pgArrayLiteral(value as string[]) : value,
      );
      for (const [i, value] of values.entries()) columns[i]!.push(value);
      for (const word of agentWordsOf(agent)) {
        words.push(word);
        wordSeqs.push(seq);
      }
    }
    await this.client.query("BEGIN");
    try {
      await this.client.query(INSERT_AGENTS_SQL, columns);
      await this.client.query(
        "INSERT INTO agent_words (word, seq) SELECT * FROM unnest($1::text[], $2::bigint[])",
        [words, wordSeqs],
      );
      await this.client.query("COMMIT");
    } catch (error) {
      await this.client.query("ROLLBACK").catch(() => {
        // Why safe: the error below ends the run, and the server is thrown away with it.
      });
      throw error;
    }
  }

  /**
   * Builds the dropped indexes and constraints again, moves the identity past the seeded seqs, refreshes the
   * planner's statistics, writes every dirty page (a checkpoint), and disconnects.
   */
  async finish(): Promise<void> {
    try {
      for (const statement of this.#restore) await this.client.query(statement);
      await this.client.query(`ALTER TABLE agents ALTER COLUMN seq RESTART WITH ${this.#next}`);
      await this.client.query("VACUUM (ANALYZE) agents");
      await this.client.query("VACUUM (ANALYZE) agent_words");
      // The seeding's gigabytes of dirty pages are written now, not by a checkpoint during the measurements.
      await this.client.query("CHECKPOINT");
    } finally {
      await this.client.end();
    }
  }
}

/** Size of a database in MiB (pg_database_size). */
export async function databaseSizeMiB(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const row = (await client.query("SELECT pg_database_size(current_database())::bigint AS n")).rows[0];
    return Number(row?.n ?? 0) / (1024 * 1024);
  } finally {
    await client.end();
  }
}

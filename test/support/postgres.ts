// PostgreSQL for the registry tests: a throwaway cluster (postgres-cluster.ts: temp dir, Unix socket only, as an
// unprivileged user under root) with fsync off and a migrated template database. One server per test run of the
// registry-postgres project (postgres.global.ts), or per
// file for files that start their own; each test takes a fresh database cloned from a migrated
// template (CREATE DATABASE ... TEMPLATE, no migration run), or one a finished test gave back, emptied with a few
// DELETEs (a few ms where cloning costs a checkpoint, 300-800 ms on a busy machine).
import pg from "pg";
import { applyPostgresMigrations } from "../../src/registry-server/postgres-migrations.js";
import { startPostgresCluster, urlIn } from "./postgres-cluster.js";

export interface TestPostgres {
  /** Connection URL of a database (Unix socket in the server's dir). */
  url(database: string): string;
  /** A migrated database holding no rows, for one test; dropped when the server stops. */
  freshDatabase(): Promise<string>;
  /** Gives back a database from freshDatabase() once nothing uses it: it is emptied and handed out again. */
  recycle(url: string): Promise<void>;
  /** A new database with nothing in it (not even the migrations). */
  emptyDatabase(): Promise<string>;
  stop(): Promise<void>;
}

let counter = 0;

/** A running server: its directory (data, socket, log) and how to stop it. */
export interface PostgresServer {
  dir: string;
  stop(): Promise<void>;
}

/** Initialises and starts a server, with a migrated `registry_template` database to clone. */
export async function startPostgresServer(): Promise<PostgresServer> {
  // Durability off: test databases are thrown away, and fsyncs would dominate the run on a shared disk.
  const cluster = await startPostgresCluster({
    prefix: "pg-",
    noSync: true,
    settings: [
      "fsync=off",
      "synchronous_commit=off",
      "full_page_writes=off",
      "max_connections=200",
      "shared_buffers=32MB",
    ],
  });
  try {
    const admin = new pg.Client({ connectionString: cluster.url("postgres") });
    await admin.connect();
    try {
      // The template: migrated once, then cloned for every test.
      await admin.query("CREATE DATABASE registry_template");
    } finally {
      await admin.end();
    }
    const templatePool = new pg.Pool({ connectionString: cluster.url("registry_template"), max: 1 });
    try {
      await applyPostgresMigrations(templatePool);
    } finally {
      await templatePool.end();
    }
    return { dir: cluster.dir, stop: cluster.stop };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

/**
 * Test databases on a running server (this process's or one a vitest globalSetup started); `stopServer`, when
 * given, runs at stop() after this side's connection is closed.
 */
export async function connectTestPostgres(
  dir: string,
  stopServer: () => Promise<void> = async () => {},
): Promise<TestPostgres> {
  const url = (database: string) => urlIn(dir, database);
  const admin = new pg.Client({ connectionString: url("postgres") });
  await admin.connect();
  const create = async (template: string) => {
    const name = `t_${process.pid}_${++counter}`;
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template} STRATEGY FILE_COPY`);
    return url(name);
  };
  const free: string[] = [];
  return {
    url,
    freshDatabase: async () => free.pop() ?? (await create("registry_template")),
    async recycle(database) {
      const client = new pg.Client({ connectionString: database });
      await client.connect();
      try {
        await client.query(
          // DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE makes new files for every table.
          "DELETE FROM agent_words; DELETE FROM agents; DELETE FROM messages; DELETE FROM inbox_usage; " +
            "DELETE FROM trust; UPDATE counters SET value = 0; ALTER TABLE agents ALTER COLUMN seq RESTART; " +
            "DELETE FROM proof_nonces; UPDATE registry_sweeps SET last_run = '-infinity', runs = 0; " +
            "ALTER TABLE messages ALTER COLUMN seq RESTART",
        );
      } finally {
        await client.end();
      }
      free.push(database);
    },
    emptyDatabase: () => create("template0"),
    async stop() {
      await admin.end().catch(() => {
        // Why safe: the server is stopped next anyway.
      });
      await stopServer();
    },
  };
}

/** A server of this test file's own, with its test databases. */
export async function startTestPostgres(): Promise<TestPostgres> {
  const server = await startPostgresServer();
  try {
    return await connectTestPostgres(server.dir, server.stop);
  } catch (error) {
    await server.stop();
    throw error;
  }
}

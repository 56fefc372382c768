// Versioned schema migrations of the PostgreSQL store: numbered .sql files (migrations/postgres/NNNN_name.sql),
// each applied once, in order, in its own transaction, and recorded in schema_migrations. Every replica runs
// this at start (and `agent-registry migrate` runs it on its own): a session advisory lock makes concurrent
// starts take turns, so the second replica finds the work done instead of racing the first.
import { readdir, readFile } from "node:fs/promises";
import pg from "pg";

/** Advisory lock key of the registry's migrations (an arbitrary constant: "agentreg" in ASCII, 63 bits). */
const MIGRATION_LOCK = "6947560263766345575";

const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** Where the .sql files live: beside this module, in src/ and (copied by the build) in dist/. */
export const POSTGRES_MIGRATIONS_DIR = new URL("./migrations/postgres/", import.meta.url);

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The migrations shipped with this version, in order. */
export async function loadPostgresMigrations(dir: URL = POSTGRES_MIGRATIONS_DIR): Promise<Migration[]> {
  let files: string[];
  try {
    files = await readdir(dir);
  } catch (error) {
    throw new Error(
      `the PostgreSQL migrations are missing (${dir.pathname}): reinstall the package, or run 'npm run build' in a checkout`,
      { cause: error },
    );
  }
  const migrations: Migration[] = [];
  for (const file of files.sort()) {
    const match = MIGRATION_FILE.exec(file);
    if (!match) continue;
    migrations.push({
      version: Number(match[1]),
      name: match[2]!,
      sql: await readFile(new URL(file, dir), "utf8"),
    });
  }
  return migrations;
}

/** Applies the pending migrations; returns the versions it applied (none when the schema was up to date). */
export async function applyPostgresMigrations(pool: pg.Pool, dir?: URL): Promise<number[]> {
  const migrations = await loadPostgresMigrations(dir);
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    await client.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK]);
    try {
      await client.query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, " +
          "applied_at timestamptz NOT NULL DEFAULT now())",
      );
      const done = new Set(
        (await client.query("SELECT version FROM schema_migrations")).rows.map((r) => Number(r.version)),
      );
      const newest = Math.max(0, ...migrations.map((m) => m.version));
      const ahead = [...done].filter((v) => v > newest);
      if (ahead.length) {
        throw new Error(
          `the database has schema version ${Math.max(...ahead)}, newer than this registry knows (${newest}); run a newer agent-registry`,
        );
      }
      for (const migration of migrations) {
        if (done.has(migration.version)) continue;
        await client.query("BEGIN");
        try {
          await client.query(migration.sql);
          await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
            migration.version,
            migration.name,
          ]);
          await client.query("COMMIT");
        } catch (error) {
          await client.query("ROLLBACK");
          throw new Error(
            `migration ${migration.version}_${migration.name} failed: ${(error as Error).message}`,
            {
              cause: error,
            },
          );
        }
        applied.push(migration.version);
      }
    } finally {
      await client.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
  return applied;
}

/** Whether every shipped migration is applied (for readiness checks). */
export async function postgresSchemaIsCurrent(pool: pg.Pool | pg.PoolClient, dir?: URL): Promise<boolean> {
  const migrations = await loadPostgresMigrations(dir);
  try {
    const done = new Set(
      (await pool.query("SELECT version FROM schema_migrations")).rows.map((r) => Number(r.version)),
    );
    return migrations.every((m) => done.has(m.version));
  } catch {
    // Why safe: no schema_migrations table means nothing is migrated, which is the answer.
    return false;
  }
}

/** `agent-registry migrate`: applies the pending migrations on one connection and closes it. */
export async function runMigrate(connectionString: string): Promise<number[]> {
  const pool = new pg.Pool({ connectionString, max: 1 });
  pool.on("error", () => {
    // Why safe: an idle client's lost connection is reported by the next query, which fails the command.
  });
  try {
    return await applyPostgresMigrations(pool);
  } finally {
    await pool.end();
  }
}

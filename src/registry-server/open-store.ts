// Picks the store for a `db` setting: a postgres:// or postgresql:// URL opens the PostgreSQL store (shared by
// replicas); anything else is a SQLite file path or ":memory:" (the zero-setup default).
import { PostgresRegistryStore } from "./postgres-store.js";
import { SqliteRegistryStore } from "./sqlite-store.js";
import type { RegistryStore } from "./store.js";

export const isPostgresUrl = (db: string): boolean => /^postgres(ql)?:\/\//i.test(db);

/** What a caller may tell the store it opens (only the PostgreSQL store uses these). */
export interface OpenStoreOptions {
  /** Told the rows of every heartbeat write (metrics: heartbeat batch sizes). */
  onHeartbeatBatch?: (rows: number) => void;
  /** See PostgresStoreOptions.heartbeatLingerMs. */
  heartbeatLingerMs?: number;
}

export async function openRegistryStore(db: string, options: OpenStoreOptions = {}): Promise<RegistryStore> {
  if (isPostgresUrl(db)) return PostgresRegistryStore.open({ connectionString: db, ...options });
  return new SqliteRegistryStore({ path: db });
}

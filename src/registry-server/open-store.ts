// Picks the store for a `db` setting: a postgres:// or postgresql:// URL opens the PostgreSQL store (shared by
// replicas); anything else is a SQLite file path or ":memory:" (the zero-setup default).
import { PostgresRegistryStore } from "./postgres-store.js";
import { SqliteRegistryStore } from "./sqlite-store.js";
import type { RegistryStore } from "./store.js";

export const isPostgresUrl = (db: string): boolean => /^postgres(ql)?:\/\//i.test(db);

export async function openRegistryStore(db: string): Promise<RegistryStore> {
  if (isPostgresUrl(db)) return PostgresRegistryStore.open({ connectionString: db });
  return new SqliteRegistryStore({ path: db });
}

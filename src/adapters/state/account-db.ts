// One account's changing state in one SQLite database (<state dir>/account.db, node:sqlite, WAL): the peer table,
// relay cursors and the inbound pipeline's processed keys. Every change is a row written in its own small
// transaction, so a change costs the same with 10 peers as with 10,000 (the JSON files it replaces were written
// whole). The identity stays in identity.json (see account-state.ts).
//
// Durability. Commits run with synchronous=NORMAL: a committed row is in the kernel (safe from a killed process)
// before the call returns; the WAL is fdatasync'ed on the thread pool at most `syncIntervalMs` later, so a power
// loss can lose only the changes of that last interval. Processed keys opened with durability "power" commit
// with synchronous=FULL instead (an fsync per key before `record` resolves).
import { close as closeFd, closeSync, fdatasync, fdatasyncSync, mkdirSync, open, openSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { Log } from "../../log.js";
import type { PeerState } from "../../machines/handshake.machine.js";
import {
  DEFAULT_PROCESSED_CAPACITY,
  type ProcessedKeys,
  type ProcessedKeysDurability,
  ProcessedKeysError,
  type ProcessedKeysOptions,
} from "../inbound/processed-keys.js";
import type { RelayCursorStore } from "../relay/relay-inbox.js";
import { type LegacyState, readLegacyState } from "./legacy-files.js";
import { createOutboxTable, OUTBOX_MIGRATION, type OutboxTable } from "./outbox-table.js";
import { peerRecordSchema } from "./peer-records.js";

export const ACCOUNT_DB_FILE = "account.db";

/**
 * Schema versions: step i takes a database from version i to i + 1 (meta.schema_version). Append only; a step
 * that shipped is never edited, since databases out there already ran it.
 */
const MIGRATIONS: readonly string[] = [
  // 1. Peer records as JSON (the handshake actor's plain state, validated on load); rows keep their first rowid
  // on update, so the table comes back in the order peers were first met. Processed keys carry an insertion
  // sequence: the oldest beyond capacity is found by the primary key.
  `CREATE TABLE peers (key TEXT PRIMARY KEY, record TEXT NOT NULL);
   CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
   CREATE TABLE processed_keys (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);`,
  // 2. The outbox: one row per outgoing message (see outbox-table.ts).
  OUTBOX_MIGRATION,
];

export interface AccountDbOptions {
  /** The legacy import's summary and rows skipped on load. */
  log?: Pick<Log, "info" | "warn">;
  /** Longest a commit stays unsynced (see the header). Default 1,000 ms. */
  syncIntervalMs?: number;
}

/** One change to the peer table: the peer's new record, or null to delete it. */
export interface PeerChange {
  key: string;
  record: PeerState | null;
}

export interface AccountDb {
  readonly path: string;
  /** Every valid peer row, in the order the peers were first written; invalid rows are skipped with a warning. */
  loadPeers(): Array<{ key: string; record: PeerState }>;
  /** Applies the changes in one transaction. */
  writePeers(changes: ReadonlyArray<PeerChange>): void;
  /** A named read position (the relay inbox uses "relay"). */
  cursor(name: string): RelayCursorStore;
  /**
   * The inbound pipeline's processed keys, loaded into memory (`has` never touches the disk). One handle per
   * pipeline: handles do not see each other's keys until reopened.
   */
  processedKeys(options?: ProcessedKeysOptions): ProcessedKeys;
  /** The outgoing messages (one table per database, loaded on first use). */
  outbox(): OutboxTable;
  /** Closes the database and every processed-keys handle; safe to call twice. */
  close(): void;
}

export type AccountDbOperation = "open" | "loadPeers" | "writePeers" | "cursor" | "processedKeys" | "outbox";

export class AccountDbError extends Error {
  override name = "AccountDbError";
  constructor(
    readonly operation: AccountDbOperation,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function openAccountDb(dir: string, options: AccountDbOptions = {}): AccountDb {
  const path = join(dir, ACCOUNT_DB_FILE);
  const log = options.log;
  const syncIntervalMs = options.syncIntervalMs ?? 1_000;
  let db: DatabaseSync;
  let legacy: LegacyState | null;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // SQLite would create the file with the umask's mode (and its -wal and -shm files take the database's):
    // create it 0600 first, as it names the peers this account trusts.
    closeSync(openSync(path, "a", 0o600));
    db = new DatabaseSync(path);
  } catch (err) {
    throw new AccountDbError("open", path, `Cannot open ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    // Another connection (a second runtime during a reload, an inspecting tool) briefly holds the write lock.
    db.exec("PRAGMA busy_timeout = 5000");
    legacy = migrate(db, dir, path);
  } catch (err) {
    db.close();
    if (err instanceof AccountDbError) throw err;
    throw new AccountDbError("open", path, `Cannot open ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (legacy) reportImport(legacy, path, log);

  const stmt = {
    selectPeers: db.prepare("SELECT key, record FROM peers ORDER BY rowid"),
    upsertPeer: db.prepare(
      "INSERT INTO peers (key, record) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET record = excluded.record",
    ),
    deletePeer: db.prepare("DELETE FROM peers WHERE key = ?"),
    selectCursor: db.prepare("SELECT value FROM cursors WHERE name = ?"),
    upsertCursor: db.prepare(
      "INSERT INTO cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    ),
    selectKeys: db.prepare("SELECT seq, key FROM processed_keys ORDER BY seq"),
    insertKey: db.prepare("INSERT INTO processed_keys (key) VALUES (?) ON CONFLICT (key) DO NOTHING"),
    deleteKey: db.prepare("DELETE FROM processed_keys WHERE key = ?"),
    deleteKeysBefore: db.prepare("DELETE FROM processed_keys WHERE seq < ?"),
  } satisfies Record<string, StatementSync>;

  let closed = false;
  const closers = new Set<() => void>();
  const walPath = `${path}-wal`;
  /** Commits since the WAL was last fdatasync'ed. */
  let unsynced = false;
  let syncTimer: NodeJS.Timeout | undefined;

  /** On the thread pool: a slow disk must not stall the event loop (and with it every inbox). */
  const syncInBackground = () => {
    syncTimer = undefined;
    if (!unsynced || closed) return;
    unsynced = false;
    open(walPath, "r", (openErr, fd) => {
      // ENOENT: the database was closed meanwhile, and closing checkpointed (and synced) the WAL.
      if (openErr) {
        if (openErr.code !== "ENOENT") unsynced = true;
        return;
      }
      fdatasync(fd, (syncErr) => {
        // Best effort: the commits are in the kernel already; the next commit's timer tries again.
        if (syncErr) unsynced = true;
        closeFd(fd, () => undefined);
      });
    });
  };

  /** Forces the WAL to disk now (blocking): `flush()` and closing a processed-keys handle. */
  const syncNow = () => {
    if (!unsynced || closed) return;
    let fd: number;
    try {
      fd = openSync(walPath, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    try {
      fdatasyncSync(fd);
      unsynced = false;
    } finally {
      closeSync(fd);
    }
  };

  const live = (operation: AccountDbOperation) => {
    if (closed) throw new AccountDbError(operation, path, `${path} is closed`);
  };

  /** One write transaction; "power" commits with synchronous=FULL (which cannot change inside a transaction). */
  const write = (durability: ProcessedKeysDurability, fn: () => void) => {
    const full = durability === "power";
    if (full) db.exec("PRAGMA synchronous = FULL");
    try {
      db.exec("BEGIN IMMEDIATE");
      try {
        fn();
        db.exec("COMMIT");
      } catch (err) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw err;
      }
    } finally {
      if (full) db.exec("PRAGMA synchronous = NORMAL");
    }
    // A FULL commit synced the whole WAL, earlier commits with it.
    unsynced = !full;
    if (unsynced && !syncTimer) {
      syncTimer = setTimeout(syncInBackground, syncIntervalMs);
      syncTimer.unref?.();
    }
  };

  const failed = (operation: AccountDbOperation, what: string, err: unknown): never => {
    if (err instanceof AccountDbError) throw err;
    throw new AccountDbError(operation, path, `Cannot ${what} in ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  };

  let outbox: OutboxTable | null = null;

  return {
    path,
    outbox() {
      live("outbox");
      if (outbox) return outbox;
      const guarded = (fn: () => void) => {
        live("outbox");
        try {
          write("process", fn);
        } catch (err) {
          failed("outbox", "write the outbox", err);
        }
      };
      try {
        outbox = createOutboxTable(db, guarded, {
          onInvalid: (ids) =>
            log?.warn(
              `agent-registry: ${path}: skipped ${ids.length} invalid outbox row(s): ${ids.slice(0, 5).join(", ")}`,
            ),
        });
      } catch (err) {
        return failed("outbox", "read the outbox", err);
      }
      return outbox;
    },
    loadPeers() {
      live("loadPeers");
      let rows: Array<Record<string, unknown>>;
      try {
        rows = stmt.selectPeers.all();
      } catch (err) {
        return failed("loadPeers", "read peers", err);
      }
      const peers: Array<{ key: string; record: PeerState }> = [];
      const invalid: string[] = [];
      for (const row of rows) {
        const key = String(row.key);
        let parsed: unknown;
        try {
          parsed = JSON.parse(String(row.record));
        } catch {
          invalid.push(key);
          continue;
        }
        const record = peerRecordSchema.safeParse(parsed);
        if (record.success) peers.push({ key, record: record.data });
        else invalid.push(key);
      }
      // One line for all of them: a start-up should not print 10,000 warnings. The rows stay as they are (a
      // newer version may have written them); the peer's next change replaces its row.
      if (invalid.length > 0) {
        log?.warn(
          `agent-registry: ${path}: skipped ${invalid.length} invalid peer record(s): ${invalid.slice(0, 5).join(", ")}${invalid.length > 5 ? ", ..." : ""}`,
        );
      }
      return peers;
    },
    writePeers(changes) {
      live("writePeers");
      if (changes.length === 0) return;
      try {
        write("process", () => {
          for (const { key, record } of changes) {
            if (record === null) stmt.deletePeer.run(key);
            else stmt.upsertPeer.run(key, JSON.stringify(record));
          }
        });
      } catch (err) {
        failed("writePeers", "write peers", err);
      }
    },
    cursor(name) {
      return {
        load() {
          live("cursor");
          try {
            const row = stmt.selectCursor.get(name);
            return row?.value === undefined || row.value === null ? null : String(row.value);
          } catch (err) {
            return failed("cursor", `read cursor "${name}"`, err);
          }
        },
        save(cursor) {
          live("cursor");
          try {
            write("process", () => stmt.upsertCursor.run(name, cursor));
          } catch (err) {
            failed("cursor", `save cursor "${name}"`, err);
          }
        },
      };
    },
    processedKeys(keyOptions = {}) {
      live("processedKeys");
      const capacity = keyOptions.capacity ?? DEFAULT_PROCESSED_CAPACITY;
      const durability = keyOptions.durability ?? "process";
      const keys = new Set<string>();
      try {
        const rows = stmt.selectKeys.all();
        const first = Math.max(0, rows.length - capacity);
        for (let i = first; i < rows.length; i++) keys.add(String(rows[i]?.key));
        // More rows than this handle keeps (a smaller capacity than last time, or another handle's keys).
        const oldestKept = rows[first]?.seq;
        if (first > 0 && oldestKept !== undefined) {
          write("process", () => stmt.deleteKeysBefore.run(oldestKept));
        }
      } catch (err) {
        throw new ProcessedKeysError(
          "open",
          path,
          `Cannot read processed keys from ${path}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      let open = true;
      const close = () => {
        if (!open) return;
        open = false;
        closers.delete(close);
        syncNow();
      };
      closers.add(close);
      return {
        has: (key) => keys.has(key),
        get size() {
          return keys.size;
        },
        async record(key) {
          if (!open) throw new ProcessedKeysError("record", path, "processed-keys store is closed");
          if (keys.has(key)) return;
          keys.add(key);
          // The Set iterates in insertion order, as the rows' seq does: its first key is the oldest row.
          const evicted = keys.size > capacity ? (keys.values().next().value as string) : undefined;
          if (evicted !== undefined) keys.delete(evicted);
          try {
            write(durability, () => {
              stmt.insertKey.run(key);
              if (evicted !== undefined) stmt.deleteKey.run(evicted);
            });
          } catch (err) {
            // Kept in memory: this process still will not dispatch it twice; the caller decides about the source.
            throw new ProcessedKeysError("record", path, `Cannot write ${path}: ${(err as Error).message}`, {
              cause: err,
            });
          }
        },
        flush: () => {
          if (open) syncNow();
        },
        close,
      };
    },
    close() {
      if (closed) return;
      for (const close of [...closers]) close();
      closed = true;
      if (syncTimer) clearTimeout(syncTimer);
      syncTimer = undefined;
      // The last connection to close checkpoints the WAL into the database (synced) and removes it.
      db.close();
    },
  };
}

/**
 * Brings the schema up to date and, the first time, imports the legacy JSON files, all in one transaction: a
 * crash midway leaves the database as it was, and the import runs again. Returns what was imported (null: the
 * import ran before).
 */
function migrate(db: DatabaseSync, dir: string, path: string): LegacyState | null {
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID");
    const getMeta = db.prepare("SELECT value FROM meta WHERE key = ?");
    const setMeta = db.prepare(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    const version = Number(getMeta.get("schema_version")?.value ?? 0);
    if (version > MIGRATIONS.length) {
      throw new AccountDbError(
        "open",
        path,
        `${path} was written by a newer version of the plugin (schema ${version}; this version knows up to ${MIGRATIONS.length}); upgrade the plugin`,
      );
    }
    for (let step = version; step < MIGRATIONS.length; step++) db.exec(MIGRATIONS[step] as string);
    setMeta.run("schema_version", String(MIGRATIONS.length));

    let legacy: LegacyState | null = null;
    if (getMeta.get("legacy_import") === undefined) {
      legacy = readLegacyState(dir);
      const upsertPeer = db.prepare(
        "INSERT INTO peers (key, record) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET record = excluded.record",
      );
      for (const { key, record } of legacy.peers) upsertPeer.run(key, JSON.stringify(record));
      const insertKey = db.prepare(
        "INSERT INTO processed_keys (key) VALUES (?) ON CONFLICT (key) DO NOTHING",
      );
      for (const key of legacy.processedKeys) insertKey.run(key);
      if (legacy.relayCursor !== undefined) {
        db.prepare("INSERT OR REPLACE INTO cursors (name, value) VALUES ('relay', ?)").run(
          legacy.relayCursor,
        );
      }
      setMeta.run("legacy_import", new Date().toISOString());
    }
    db.exec("COMMIT");
    return legacy;
  } catch (err) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw err;
  }
}

function reportImport(legacy: LegacyState, path: string, log: AccountDbOptions["log"]): void {
  if (legacy.files.length === 0 && legacy.skipped.length === 0) return;
  const cursor = legacy.relayCursor === undefined ? "no relay cursor" : "the relay cursor";
  const imported =
    `agent-registry: imported ${legacy.peers.length} peer(s), ${legacy.processedKeys.length} processed inbound key(s) ` +
    `and ${cursor} into ${path}` +
    (legacy.files.length > 0
      ? `; ${legacy.files.join(", ")} are no longer used and can be deleted (kept for an earlier version of the plugin)`
      : "");
  if (legacy.skipped.length > 0) log?.warn(`${imported}; skipped: ${legacy.skipped.join("; ")}`);
  else log?.info(imported);
}

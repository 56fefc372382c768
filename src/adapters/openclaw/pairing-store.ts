// OpenClaw's pairing store for one account of this channel. Writing requests and reading/consuming the allow list
// go through the SDK's runtime (`channel.pairing`). The SDK has no call to list or remove a pending request, which
// the bridge needs to see a dismissal and to withdraw a request decided elsewhere: those two read and delete rows
// of the `channel_pairing_requests` table that docs/channels/pairing.md names, in the shared state database. If
// that table is not what this code expects (another OpenClaw), both report "cannot" and the bridge does without.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { CHANNEL_ID } from "../../config.js";
import type { Log } from "../../log.js";
import type { PairingRequestRow, PairingStore } from "./pairing.js";

/** `runtime.channel.pairing` of the plugin SDK, as far as this channel uses it. */
export interface SdkPairing {
  upsertPairingRequest(params: {
    channel: string;
    id: string;
    accountId: string;
    meta?: Record<string, string | undefined | null>;
  }): Promise<{ code: string; created: boolean }>;
  readAllowFromStore(params: { channel: string; accountId: string }): Promise<string[]>;
  removeAllowFromStoreEntry(params: {
    channel: string;
    entry: string;
    accountId: string;
  }): Promise<{ changed: boolean }>;
}

export function isSdkPairing(value: unknown): value is SdkPairing {
  const v = value as Partial<SdkPairing> | null | undefined;
  return (
    typeof v?.upsertPairingRequest === "function" &&
    typeof v.readAllowFromStore === "function" &&
    typeof v.removeAllowFromStoreEntry === "function"
  );
}

/** Where OpenClaw keeps its shared state database below its state directory. */
export function stateDatabasePath(stateDir: string): string {
  return join(stateDir, "state", "openclaw.sqlite");
}

const COLUMNS = ["channel_key", "account_id", "request_id", "code", "created_at"];

export function createPairingStore(options: {
  sdk: SdkPairing;
  accountId: string;
  /** OpenClaw's shared state database (stateDatabasePath); null: list and remove are unavailable. */
  databasePath: string | null;
  log: Log;
}): PairingStore & { close(): void } {
  const { sdk, log } = options;
  const channel = CHANNEL_ID;
  const accountId = options.accountId;
  // OpenClaw keys rows by the lowercased account id.
  const rowAccount = accountId.trim().toLowerCase();
  let db: DatabaseSync | null = null;
  let unusable = options.databasePath === null;

  const open = (): DatabaseSync | null => {
    if (unusable || !options.databasePath) return null;
    if (db) return db;
    if (!existsSync(options.databasePath)) return null; // OpenClaw creates it with its first request.
    try {
      const handle = new DatabaseSync(options.databasePath);
      handle.exec("PRAGMA busy_timeout = 2000");
      const columns = (
        handle.prepare("SELECT name FROM pragma_table_info('channel_pairing_requests')").all() as Array<{
          name: string;
        }>
      ).map((c) => c.name);
      if (!COLUMNS.every((c) => columns.includes(c))) {
        handle.close();
        unusable = true;
        log.warn(
          "agent-registry: OpenClaw's pairing table is not the one this plugin knows: dismissals in the pairing queue are not seen, and requests decided with `openclaw agent-registry` stay listed until they expire",
        );
        return null;
      }
      db = handle;
      return db;
    } catch (error) {
      unusable = true;
      log.warn(`agent-registry: cannot read OpenClaw's pairing requests: ${(error as Error).message}`);
      return null;
    }
  };

  return {
    upsert: (id, meta) => sdk.upsertPairingRequest({ channel, id, accountId, meta }),
    approvals: () => sdk.readAllowFromStore({ channel, accountId }),
    async consume(entry) {
      await sdk.removeAllowFromStoreEntry({ channel, entry, accountId });
    },
    requests(): PairingRequestRow[] | null {
      const handle = open();
      if (!handle) return null;
      const rows = handle
        .prepare(
          "SELECT request_id, code, created_at FROM channel_pairing_requests WHERE channel_key = ? AND account_id = ?",
        )
        .all(channel, rowAccount) as Array<{ request_id: string; code: string; created_at: string }>;
      return rows.map((r) => ({ id: r.request_id, code: r.code, createdAt: r.created_at }));
    },
    remove(id) {
      const handle = open();
      if (!handle) return false;
      const result = handle
        .prepare(
          "DELETE FROM channel_pairing_requests WHERE channel_key = ? AND account_id = ? AND request_id = ?",
        )
        .run(channel, rowAccount, id);
      return Number(result.changes) > 0;
    },
    close() {
      db?.close();
      db = null;
    },
  };
}

// The pairing store adapter: writes through the SDK's pairing runtime, lists and removes the account's requests
// in OpenClaw's documented `channel_pairing_requests` table, and does without them on a table it does not know.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import {
  createPairingStore,
  isSdkPairing,
  type SdkPairing,
  stateDatabasePath,
} from "../../../src/adapters/openclaw/pairing-store.js";
import { quiet } from "../../runtime/support/until.js";
import { testTempDir } from "../../support/temp-dir.js";

const SCHEMA = `CREATE TABLE channel_pairing_requests (
  channel_key TEXT NOT NULL, account_id TEXT NOT NULL, request_id TEXT NOT NULL, code TEXT NOT NULL,
  created_at TEXT NOT NULL, last_seen_at TEXT NOT NULL, meta_json TEXT,
  PRIMARY KEY (channel_key, account_id, request_id)) STRICT`;

function database(schema = SCHEMA) {
  const stateDir = testTempDir("ar-pairing-store-");
  mkdirSync(join(stateDir, "state"));
  const path = stateDatabasePath(stateDir);
  const db = new DatabaseSync(path);
  db.exec(schema);
  const insert = (channel: string, account: string, id: string, code: string) =>
    db
      .prepare("INSERT INTO channel_pairing_requests VALUES (?, ?, ?, ?, ?, ?, NULL)")
      .run(channel, account, id, code, "2026-12-01T10:00:00.000Z", "2026-12-01T10:00:00.000Z");
  return { path, db, insert };
}

function sdk(): SdkPairing & { calls: unknown[] } {
  const calls: unknown[] = [];
  return {
    calls,
    upsertPairingRequest: async (params) => {
      calls.push(["upsert", params]);
      return { code: "ABCDEFGH", created: true };
    },
    readAllowFromStore: async (params) => {
      calls.push(["read", params]);
      return ["handshake:bob:1"];
    },
    removeAllowFromStoreEntry: async (params) => {
      calls.push(["remove", params]);
      return { changed: true };
    },
  };
}

describe("the pairing store of one account", () => {
  it("writes, reads and consumes through the SDK, scoped to the channel and account", async () => {
    const api = sdk();
    const store = createPairingStore({ sdk: api, accountId: "Alice", databasePath: null, log: quiet });
    await store.upsert("bob", { hostname: "bob" });
    expect(await store.approvals()).toEqual(["handshake:bob:1"]);
    await store.consume("handshake:bob:1");
    expect(api.calls).toEqual([
      ["upsert", { channel: "agent-registry", id: "bob", accountId: "Alice", meta: { hostname: "bob" } }],
      ["read", { channel: "agent-registry", accountId: "Alice" }],
      ["remove", { channel: "agent-registry", entry: "handshake:bob:1", accountId: "Alice" }],
    ]);
    expect(store.requests()).toBeNull();
    expect(store.remove("bob")).toBe(false);
  });

  it("lists and removes only this account's requests of this channel (account ids as OpenClaw lowercases them)", () => {
    const { path, db, insert } = database();
    insert("agent-registry", "alice", "bob", "CODE0001");
    insert("agent-registry", "other", "bob", "CODE0002");
    insert("telegram", "alice", "bob", "CODE0003");
    const store = createPairingStore({ sdk: sdk(), accountId: "Alice", databasePath: path, log: quiet });
    expect(store.requests()).toEqual([
      { id: "bob", code: "CODE0001", createdAt: "2026-12-01T10:00:00.000Z" },
    ]);
    expect(store.remove("bob")).toBe(true);
    expect(store.remove("bob")).toBe(false);
    expect(store.requests()).toEqual([]);
    const left = db.prepare("SELECT channel_key, account_id FROM channel_pairing_requests").all();
    expect(left).toHaveLength(2);
    store.close();
  });

  it("says it cannot list when the table is not the one it knows, and warns once", () => {
    const { path } = database("CREATE TABLE channel_pairing_requests (id TEXT)");
    const lines: string[] = [];
    const store = createPairingStore({
      sdk: sdk(),
      accountId: "alice",
      databasePath: path,
      log: { ...quiet, warn: (m) => lines.push(m) },
    });
    expect(store.requests()).toBeNull();
    expect(store.remove("bob")).toBe(false);
    expect(lines).toHaveLength(1);
  });

  it("recognises the SDK's pairing runtime", () => {
    expect(isSdkPairing(sdk())).toBe(true);
    expect(isSdkPairing({ upsertPairingRequest: () => {} })).toBe(false);
    expect(isSdkPairing(undefined)).toBe(false);
  });
});

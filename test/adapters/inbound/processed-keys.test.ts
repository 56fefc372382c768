// Processed keys in the account database on real files: committed when `record` resolves, bounded, reloaded by a
// process that never closed its handle, and closed handles refuse to record.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProcessedKeysError } from "../../../src/adapters/inbound/processed-keys.js";
import { ACCOUNT_DB_FILE, type AccountDb, openAccountDb } from "../../../src/adapters/state/account-db.js";

describe("processed keys", () => {
  let dir: string;
  let dbs: AccountDb[];
  /** A fresh connection, as a restarted process opens one. */
  const open = () => {
    const db = openAccountDb(dir);
    dbs.push(db);
    return db;
  };
  /** The rows as SQLite holds them, oldest first, read past every cache of ours. */
  const rows = () => {
    const raw = new DatabaseSync(join(dir, ACCOUNT_DB_FILE), { readOnly: true });
    try {
      return raw
        .prepare("SELECT key FROM processed_keys ORDER BY seq")
        .all()
        .map((r) => r.key);
    } finally {
      raw.close();
    }
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "processed-keys-"));
    dbs = [];
  });
  afterEach(() => {
    for (const db of dbs) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("has a key as soon as record resolves, and its row is committed by then", async () => {
    const keys = open().processedKeys();
    const pending = keys.record("env:a");
    expect(keys.has("env:a")).toBe(true);
    await pending;
    expect(rows()).toEqual(["env:a"]);
  });

  it("reloads keys written by a process that never closed the store", async () => {
    const first = open().processedKeys();
    await first.record("env:a");
    await first.record("plain:x\nwith newline");
    const second = open().processedKeys();
    expect(second.has("env:a")).toBe(true);
    expect(second.has("plain:x\nwith newline")).toBe(true);
    expect(second.size).toBe(2);
  });

  it("records a key once, however often it is recorded", async () => {
    const keys = open().processedKeys();
    await keys.record("env:a");
    await keys.record("env:a");
    expect(keys.size).toBe(1);
    expect(rows()).toEqual(["env:a"]);
  });

  it("keeps only the most recent `capacity` keys, in memory and in the table, across restarts", async () => {
    const keys = open().processedKeys({ capacity: 100 });
    for (let i = 0; i < 250; i++) await keys.record(`k${i}`);
    expect(keys.size).toBe(100);
    expect(keys.has("k149")).toBe(false);
    expect(keys.has("k150")).toBe(true);
    expect(rows()).toEqual(Array.from({ length: 100 }, (_, i) => `k${150 + i}`));
    const again = open().processedKeys({ capacity: 100 });
    expect(again.size).toBe(100);
    expect(again.has("k249")).toBe(true);
    expect(again.has("k149")).toBe(false);
  });

  it("trims the table to a smaller capacity on open, keeping the newest", async () => {
    const keys = open().processedKeys();
    for (let i = 0; i < 20; i++) await keys.record(`k${i}`);
    const smaller = open().processedKeys({ capacity: 5 });
    expect(smaller.size).toBe(5);
    expect(smaller.has("k14")).toBe(false);
    expect(smaller.has("k15")).toBe(true);
    expect(rows()).toEqual(["k15", "k16", "k17", "k18", "k19"]);
  });

  it("commits with durability power like with process, and the database's other writes go on", async () => {
    const db = open();
    const keys = db.processedKeys({ durability: "power" });
    await keys.record("env:a");
    keys.flush();
    db.writePeers([
      {
        key: "alice",
        record: {
          hostname: "alice",
          nodeId: null,
          installationId: null,
          state: "trusted",
          introduction: null,
          announcedAt: null,
        },
      },
    ]);
    expect(rows()).toEqual(["env:a"]);
    expect(
      open()
        .loadPeers()
        .map((p) => p.key),
    ).toEqual(["alice"]);
  });

  it("goes on recording while the WAL is synced in the background, and a close during a sync is harmless", async () => {
    const db = openAccountDb(dir, { syncIntervalMs: 1 });
    dbs.push(db);
    const keys = db.processedKeys();
    for (let i = 0; i < 5; i++) {
      await keys.record(`env:${i}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await keys.record("env:last");
    db.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(rows()).toEqual(["env:0", "env:1", "env:2", "env:3", "env:4", "env:last"]);
  });

  it("refuses to record once closed, by its own close or the database's", async () => {
    const db = open();
    const keys = db.processedKeys();
    await keys.record("env:a");
    keys.close();
    keys.close();
    await expect(keys.record("env:b")).rejects.toThrow(ProcessedKeysError);
    const other = db.processedKeys();
    db.close();
    await expect(other.record("env:c")).rejects.toThrow(/closed/);
    expect(() => other.close()).not.toThrow();
    expect(rows()).toEqual(["env:a"]);
  });
});

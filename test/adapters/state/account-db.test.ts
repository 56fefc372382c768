// The account database on real files: peers and cursors round trip, one change costs one row, rows that do not
// validate are skipped with a warning, the file is private, and it reopens after close.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ACCOUNT_DB_FILE,
  type AccountDb,
  AccountDbError,
  openAccountDb,
} from "../../../src/adapters/state/account-db.js";
import type { PeerState } from "../../../src/machines/handshake.machine.js";
import { newPeerRecord } from "../../../src/machines/peers.js";

function peer(
  hostname: string,
  state: PeerState["state"] = "trusted",
  extra: Partial<PeerState> = {},
): PeerState {
  return { ...newPeerRecord({ hostname, nodeId: null, installationId: null }), state, ...extra };
}

describe("account database", () => {
  let dir: string;
  let dbs: AccountDb[];
  const open = (options?: Parameters<typeof openAccountDb>[1]) => {
    const db = openAccountDb(dir, options);
    dbs.push(db);
    return db;
  };
  /** A statement run on a connection of its own, past every cache of ours. */
  const raw = (sql: string, ...params: Array<string | number>) => {
    const db = new DatabaseSync(join(dir, ACCOUNT_DB_FILE));
    try {
      return db.prepare(sql).all(...params);
    } finally {
      db.close();
    }
  };

  beforeEach(() => {
    dir = join(mkdtempSync(join(tmpdir(), "account-db-")), "account");
    dbs = [];
  });
  afterEach(() => {
    for (const db of dbs) db.close();
    rmSync(join(dir, ".."), { recursive: true, force: true });
  });

  describe("peers", () => {
    it("round trips records, in the order the peers were first written", () => {
      const db = open();
      const bob = peer("bob", "pendingApproval", {
        justification: "hi",
        assistantName: "Bob's bot",
        updatedAt: 5,
      });
      db.writePeers([
        { key: "alice", record: peer("alice") },
        { key: "bob", record: bob },
      ]);
      db.writePeers([{ key: "alice", record: peer("alice", "revoked") }]);
      expect(open().loadPeers()).toEqual([
        { key: "alice", record: peer("alice", "revoked") },
        { key: "bob", record: bob },
      ]);
    });

    it("deletes a peer with a null record", () => {
      const db = open();
      db.writePeers([
        { key: "alice", record: peer("alice") },
        { key: "bob", record: peer("bob") },
      ]);
      db.writePeers([
        { key: "alice", record: null },
        { key: "carol", record: null },
      ]);
      expect(db.loadPeers().map((p) => p.key)).toEqual(["bob"]);
    });

    it("writes a batch all or nothing", () => {
      const db = open();
      db.writePeers([{ key: "alice", record: peer("alice") }]);
      // A record JSON cannot hold (a cycle) fails the batch after its first change was applied.
      const cyclic = peer("carol") as PeerState & { self?: unknown };
      cyclic.self = cyclic;
      expect(() =>
        db.writePeers([
          { key: "bob", record: peer("bob") },
          { key: "carol", record: cyclic },
        ]),
      ).toThrow(AccountDbError);
      expect(db.loadPeers().map((p) => p.key)).toEqual(["alice"]);
    });

    it("takes 10,000 peers written one change at a time, one row each", () => {
      const db = open();
      for (let i = 0; i < 10_000; i++)
        db.writePeers([{ key: `peer-${i}`, record: peer(`peer-${i}`, "requested") }]);
      for (let i = 0; i < 10_000; i += 1_000) {
        db.writePeers([{ key: `peer-${i}`, record: peer(`peer-${i}`, "trusted", { updatedAt: i }) }]);
      }
      db.writePeers([{ key: "peer-1", record: null }]);
      const loaded = open().loadPeers();
      expect(loaded).toHaveLength(9_999);
      expect(loaded[0]).toEqual({ key: "peer-0", record: peer("peer-0", "trusted", { updatedAt: 0 }) });
      expect(loaded[1]?.key).toBe("peer-2");
      expect(loaded.filter((p) => p.record.state === "trusted")).toHaveLength(10);
      expect(loaded.at(-1)).toEqual({ key: "peer-9999", record: peer("peer-9999", "requested") });
    });

    it("skips rows that do not validate with one warning, and keeps loading the rest", () => {
      const db = open();
      db.writePeers([
        { key: "alice", record: peer("alice") },
        { key: "bob", record: peer("bob") },
      ]);
      raw(
        "INSERT INTO peers (key, record) VALUES ('mangled', '{not json'), ('future', ?)",
        '{"state":"friends"}',
      );
      const warnings: string[] = [];
      const loaded = open({ log: { info: () => undefined, warn: (m) => warnings.push(m) } }).loadPeers();
      expect(loaded.map((p) => p.key)).toEqual(["alice", "bob"]);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/skipped 2 invalid peer record\(s\): mangled, future/);
    });

    it("fills fields older records lack with their defaults", () => {
      open();
      raw(
        "INSERT INTO peers (key, record) VALUES ('old', ?)",
        JSON.stringify({ hostname: "old", nodeId: 3, state: "trusted" }),
      );
      expect(open().loadPeers()).toEqual([{ key: "old", record: peer("old", "trusted", { nodeId: 3 }) }]);
    });
  });

  describe("cursors", () => {
    it("round trips a named cursor, null included, each name on its own", () => {
      const db = open();
      const relay = db.cursor("relay");
      expect(relay.load()).toBeNull();
      relay.save("41");
      db.cursor("other").save("7");
      relay.save("42");
      expect(open().cursor("relay").load()).toBe("42");
      expect(open().cursor("other").load()).toBe("7");
      relay.save(null);
      expect(open().cursor("relay").load()).toBeNull();
    });
  });

  describe("file and lifecycle", () => {
    it("creates its directory 0700 and its file 0600", () => {
      const db = open();
      db.writePeers([{ key: "alice", record: peer("alice") }]);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, ACCOUNT_DB_FILE)).mode & 0o777).toBe(0o600);
      // SQLite gives its WAL the database's mode.
      expect(statSync(join(dir, `${ACCOUNT_DB_FILE}-wal`)).mode & 0o777).toBe(0o600);
    });

    it("runs in WAL mode with a schema version", () => {
      open();
      expect(raw("PRAGMA journal_mode")).toEqual([{ journal_mode: "wal" }]);
      expect(raw("SELECT value FROM meta WHERE key = 'schema_version'")).toEqual([{ value: "2" }]);
    });

    it("reopens after close, with everything written before", async () => {
      const db = open();
      db.writePeers([{ key: "alice", record: peer("alice") }]);
      db.cursor("relay").save("9");
      await db.processedKeys().record("env:a");
      db.close();
      db.close();
      const again = open();
      expect(again.loadPeers().map((p) => p.key)).toEqual(["alice"]);
      expect(again.cursor("relay").load()).toBe("9");
      expect(again.processedKeys().has("env:a")).toBe(true);
    });

    it("refuses every call once closed, naming the operation", () => {
      const db = open();
      const cursor = db.cursor("relay");
      db.close();
      expect(() => db.loadPeers()).toThrow(AccountDbError);
      expect(() => db.writePeers([])).toThrow(/closed/);
      expect(() => cursor.save("1")).toThrow(expect.objectContaining({ operation: "cursor" }));
      expect(() => db.processedKeys()).toThrow(expect.objectContaining({ operation: "processedKeys" }));
    });

    it("refuses a database written by a newer version, saying what to do", () => {
      open().close();
      raw("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
      expect(() => open()).toThrow(/newer version of the plugin .*upgrade the plugin/);
    });
  });
});

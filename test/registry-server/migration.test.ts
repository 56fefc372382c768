// A database written before peer ids existed: opening it adds the indexed peer_id column, fills it, and re-keys
// message senders and trust records to peer ids, so no installation id is ever shown to another agent. One
// written before trust change sequences gets them numbered, oldest change first. One written before keys gets
// the key columns, empty.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, describe, expect, it } from "vitest";
import { peerIdOf } from "../../src/registry-server/peer-id.js";
import { SqliteDatabaseStore } from "../../src/registry-server/sqlite-store.js";

const dir = mkdtempSync(join(tmpdir(), "agent-registry-migration-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const OLD_SCHEMA = `
CREATE TABLE agents (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, hostname TEXT NOT NULL UNIQUE,
  installation_id TEXT UNIQUE, pilot_node_id INTEGER, pilot_address TEXT, display_name TEXT, description TEXT,
  capabilities TEXT NOT NULL, token_hash TEXT, last_seen INTEGER NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL);
CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,
  to_installation_id TEXT NOT NULL, from_installation_id TEXT NOT NULL, from_hostname TEXT NOT NULL,
  body_json TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (to_installation_id, message_id));
CREATE TABLE trust (requester_id TEXT NOT NULL, target_id TEXT NOT NULL, status TEXT NOT NULL, introduction TEXT,
  assistant_name TEXT, human_name TEXT, created_at INTEGER NOT NULL, approved_at INTEGER, updated_at INTEGER NOT NULL,
  PRIMARY KEY (requester_id, target_id)) WITHOUT ROWID;
INSERT INTO agents VALUES (1, 'id-a', 'alice', 'inst-a', NULL, NULL, NULL, NULL, '[]', NULL, 1000, 1000, 1000);
INSERT INTO agents VALUES (2, 'id-b', 'bob', 'inst-b', NULL, NULL, NULL, NULL, '[]', NULL, 1000, 1000, 1000);
INSERT INTO agents VALUES (3, 'id-c', 'anon', NULL, NULL, NULL, NULL, NULL, '[]', NULL, 1000, 1000, 1000);
INSERT INTO messages VALUES (1, 'm1', 'inst-b', 'inst-a', 'alice', '"hi"', 1000);
INSERT INTO trust VALUES ('inst-a', 'inst-b', 'approved', 'hello', NULL, NULL, 1000, 1000, 1000);
`;

describe("peer id migration", () => {
  it("fills peer ids, re-keys senders and trust, and looks agents up by peer id", () => {
    const path = join(dir, "old.db");
    const old = new DatabaseSync(path);
    old.exec(OLD_SCHEMA);
    old.close();

    const store = new SqliteDatabaseStore({ path });
    try {
      const a = peerIdOf("inst-a");
      const b = peerIdOf("inst-b");
      expect(store.getAgentByPeerId(a)?.id).toBe("id-a");
      expect(store.getAgentById("id-c")?.peerId).toBeNull();
      expect(store.listMessages("inst-b", 0, 0, 10).map((m) => m.fromInstallationId)).toEqual([a]);
      expect(store.getTrust(a, b)?.status).toBe("approved");
      expect(store.getTrust(a, b)?.changeSeq).toBe(1);
      expect(store.getTrust("inst-a", "inst-b")).toBeUndefined();
    } finally {
      store.close();
    }
    // Opening again changes nothing (the column marks a migrated database).
    const again = new SqliteDatabaseStore({ path });
    try {
      expect(again.getTrust(peerIdOf("inst-a"), peerIdOf("inst-b"))?.status).toBe("approved");
      const raw = new DatabaseSync(path);
      const plan = raw
        .prepare("EXPLAIN QUERY PLAN SELECT * FROM agents WHERE peer_id = ?")
        .all("x")
        .map((r) => String(r.detail));
      raw.close();
      expect(plan.join(" ")).toMatch(/USING INDEX agents_peer/);
    } finally {
      again.close();
    }
  });
});

/** The schema before trust change sequences: peer ids, but no trust.change_seq. */
const BEFORE_CHANGES_SCHEMA = `
CREATE TABLE agents (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, hostname TEXT NOT NULL UNIQUE,
  installation_id TEXT UNIQUE, pilot_node_id INTEGER, pilot_address TEXT, display_name TEXT, description TEXT,
  capabilities TEXT NOT NULL, token_hash TEXT, last_seen INTEGER NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, peer_id TEXT);
CREATE UNIQUE INDEX agents_peer ON agents(peer_id);
CREATE TABLE trust (requester_id TEXT NOT NULL, target_id TEXT NOT NULL, status TEXT NOT NULL, introduction TEXT,
  assistant_name TEXT, human_name TEXT, created_at INTEGER NOT NULL, approved_at INTEGER, updated_at INTEGER NOT NULL,
  PRIMARY KEY (requester_id, target_id)) WITHOUT ROWID;
CREATE INDEX trust_target ON trust(target_id, status);
INSERT INTO agents VALUES (1, 'id-a', 'alice', 'inst-a', NULL, NULL, NULL, NULL, '[]', NULL, 1000, 1000, 1000, 'p_a');
INSERT INTO agents VALUES (2, 'id-b', 'bob', 'inst-b', NULL, NULL, NULL, NULL, '[]', NULL, 1000, 1000, 1000, 'p_b');
INSERT INTO trust VALUES ('p_c', 'p_a', 'pending', 'hello', NULL, NULL, 1000, NULL, 3000);
INSERT INTO trust VALUES ('p_a', 'p_b', 'approved', NULL, NULL, NULL, 1000, 2000, 2000);
INSERT INTO trust VALUES ('p_b', 'p_a', 'approved', NULL, NULL, NULL, 1000, 2000, 2000);
`;

describe("trust change sequence migration", () => {
  it("numbers existing records oldest change first, continues the count, and reads changes by index", () => {
    const path = join(dir, "before-changes.db");
    const old = new DatabaseSync(path);
    old.exec(BEFORE_CHANGES_SCHEMA);
    old.close();

    const store = new SqliteDatabaseStore({ path });
    try {
      // Same updated_at: by requester, then target.
      expect(store.listTrustChanges("p_a", 0, 10).map((t) => [t.requesterId, t.changeSeq])).toEqual([
        ["p_a", 1],
        ["p_b", 2],
        ["p_c", 3],
      ]);
      expect(store.listTrustChanges("p_a", 0, 10).map((t) => t.peerHostname)).toEqual(["bob", "bob", null]);
      expect(store.lastTrustChange()).toBe(3);
      const pending = store.getTrust("p_c", "p_a")!;
      store.putTrust({ ...pending, status: "approved", approvedAt: 4000, updatedAt: 4000 });
      expect(store.listTrustChanges("p_a", 3, 10).map((t) => [t.requesterId, t.status, t.changeSeq])).toEqual(
        [["p_c", "approved", 4]],
      );
    } finally {
      store.close();
    }
    // Opening again keeps the numbers and the count.
    const again = new SqliteDatabaseStore({ path });
    try {
      expect(again.lastTrustChange()).toBe(4);
      expect(again.getTrust("p_a", "p_b")?.changeSeq).toBe(1);
    } finally {
      again.close();
    }
    const raw = new DatabaseSync(path);
    const plan = (sql: string) =>
      raw
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .all("x", 0)
        .map((r) => String(r.detail))
        .join(" ");
    try {
      expect(
        plan("SELECT * FROM trust WHERE requester_id = ? AND change_seq > ? ORDER BY change_seq"),
      ).toMatch(/USING INDEX trust_requester_change \(requester_id=\? AND change_seq>\?\)/);
      expect(plan("SELECT * FROM trust WHERE target_id = ? AND change_seq > ? ORDER BY change_seq")).toMatch(
        /USING INDEX trust_target_change \(target_id=\? AND change_seq>\?\)/,
      );
    } finally {
      raw.close();
    }
  });
});

describe("key columns migration", () => {
  it("adds public_key and signed_record to an older database, empty, and keeps what is written there", () => {
    const path = join(dir, "before-keys.db");
    const old = new DatabaseSync(path);
    old.exec(BEFORE_CHANGES_SCHEMA);
    old.close();
    const store = new SqliteDatabaseStore({ path });
    try {
      const alice = store.getAgentById("id-a")!;
      expect(alice).toMatchObject({ publicKey: null, signedRecord: null });
      store.updateAgent({ ...alice, publicKey: "k".repeat(43), signedRecord: "h.p.s" });
    } finally {
      store.close();
    }
    const again = new SqliteDatabaseStore({ path });
    try {
      expect(again.getAgentByHostname("alice")).toMatchObject({
        publicKey: "k".repeat(43),
        signedRecord: "h.p.s",
      });
      expect(again.getAgentByHostname("bob")).toMatchObject({ publicKey: null, signedRecord: null });
    } finally {
      again.close();
    }
  });
});

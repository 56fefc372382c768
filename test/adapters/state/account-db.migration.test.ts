// The account database's one-time import of the JSON files an account kept before it (peers.json,
// inbound/processed-keys.json and .log, relay-cursor.json): what is valid comes in, what is not is named, the
// old files stay for a downgrade, and the import never runs twice.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AccountDb, openAccountDb } from "../../../src/adapters/state/account-db.js";

/** A peers.json record as the previous version wrote it. */
function legacyPeer(hostname: string | null, extra: Record<string, unknown> = {}) {
  return {
    hostname,
    nodeId: null,
    installationId: null,
    state: "trusted",
    introduction: null,
    justification: null,
    announcedAt: null,
    updatedAt: 1_700_000_000_000,
    assistantName: null,
    humanName: null,
    key: null,
    offeredKey: null,
    ...extra,
  };
}

describe("account database: import of the legacy files", () => {
  let dir: string;
  let dbs: AccountDb[];
  let infos: string[];
  let warnings: string[];
  const open = () => {
    const db = openAccountDb(dir, { log: { info: (m) => infos.push(m), warn: (m) => warnings.push(m) } });
    dbs.push(db);
    return db;
  };
  const write = (name: string, content: unknown) => {
    const path = join(dir, name);
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
    return path;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "account-db-import-"));
    dbs = [];
    infos = [];
    warnings = [];
  });
  afterEach(() => {
    for (const db of dbs) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("imports peers.json, keyed as the account root keys restored peers", () => {
    write("peers.json", {
      peers: [
        legacyPeer("alice"),
        legacyPeer(null, { nodeId: 42, state: "requested", introduction: "hello" }),
        legacyPeer(null, { installationId: "inst-1", state: "pendingApproval", justification: "let me in" }),
      ],
    });
    const peers = open().loadPeers();
    expect(peers.map((p) => p.key)).toEqual(["alice", "node-42", "peer-inst-1"]);
    expect(peers[1]?.record).toEqual(
      legacyPeer(null, { nodeId: 42, state: "requested", introduction: "hello" }),
    );
  });

  it("keeps the last of two records with the same key, as restoring them did", () => {
    write("peers.json", { peers: [legacyPeer("alice", { state: "requested" }), legacyPeer("alice")] });
    expect(open().loadPeers()).toEqual([{ key: "alice", record: legacyPeer("alice") }]);
  });

  it("imports the processed keys of the snapshot and the log, dropping a torn last line", () => {
    write("inbound/processed-keys.json", { v: 1, keys: ["env:a", "env:b"] });
    write("inbound/processed-keys.log", '"env:c"\n"env:a"\n"env:half');
    const keys = open().processedKeys();
    expect(keys.size).toBe(3);
    for (const key of ["env:a", "env:b", "env:c"]) expect(keys.has(key)).toBe(true);
    expect(keys.has("env:half")).toBe(false);
  });

  it("imports keys oldest first: a key seen again in the log is evicted last", () => {
    // env:a was seen again in the log: it is newer than env:b and outlives it.
    write("inbound/processed-keys.json", { v: 1, keys: ["env:a", "env:b"] });
    write("inbound/processed-keys.log", '"env:c"\n"env:a"\n');
    const keys = open().processedKeys({ capacity: 2 });
    expect(["env:a", "env:b", "env:c"].filter((k) => keys.has(k))).toEqual(["env:a", "env:c"]);
  });

  it("imports the relay cursor", () => {
    write("relay-cursor.json", { v: 1, cursor: "1234" });
    expect(open().cursor("relay").load()).toBe("1234");
  });

  it("leaves the old files in place and says in one line that they can be deleted", () => {
    const files = [
      write("peers.json", { peers: [legacyPeer("alice")] }),
      write("relay-cursor.json", { v: 1, cursor: "5" }),
      write("inbound/processed-keys.json", { v: 1, keys: ["env:a"] }),
      write("inbound/processed-keys.log", ""),
    ];
    open();
    for (const file of files) expect(existsSync(file)).toBe(true);
    expect(warnings).toEqual([]);
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatch(/imported 1 peer\(s\), 1 processed inbound key\(s\) and the relay cursor/);
    expect(infos[0]).toMatch(/can be deleted/);
    for (const file of files) expect(infos[0]).toContain(file);
  });

  it("says nothing when there is nothing to import", () => {
    open();
    expect([...infos, ...warnings]).toEqual([]);
  });

  it("runs only once: files changed or added later are not imported again", () => {
    write("peers.json", { peers: [legacyPeer("alice")] });
    const first = open();
    first.writePeers([{ key: "alice", record: null }]);
    first.close();
    write("peers.json", { peers: [legacyPeer("alice"), legacyPeer("bob")] });
    write("relay-cursor.json", { v: 1, cursor: "9" });
    const again = open();
    expect(again.loadPeers()).toEqual([]);
    expect(again.cursor("relay").load()).toBeNull();
    expect(infos).toHaveLength(1);
  });

  it("imports what is valid when peers.json holds invalid records, naming the file and what was skipped", () => {
    const path = write("peers.json", {
      peers: [
        legacyPeer("alice"),
        legacyPeer("bob", { state: "friends" }),
        { hostname: 3 },
        legacyPeer("carol"),
      ],
    });
    expect(
      open()
        .loadPeers()
        .map((p) => p.key),
    ).toEqual(["alice", "carol"]);
    expect(infos).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`${path}: 2 of 4 peer records are invalid (first: state:`);
  });

  it("starts on a corrupt peers.json and still imports the other files", () => {
    const path = write("peers.json", '{"peers": [');
    write("relay-cursor.json", { v: 1, cursor: "7" });
    write("inbound/processed-keys.log", '"env:a"\n');
    const db = open();
    expect(db.loadPeers()).toEqual([]);
    expect(db.cursor("relay").load()).toBe("7");
    expect(db.processedKeys().has("env:a")).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`skipped: ${path} is not valid JSON`);
  });

  it("reads the log when the processed-keys snapshot is corrupt, and skips a cursor of the wrong shape", () => {
    const snapshot = write("inbound/processed-keys.json", { v: 2, keys: "all of them" });
    write("inbound/processed-keys.log", '"env:a"\n');
    const cursor = write("relay-cursor.json", { cursor: 5 });
    const db = open();
    expect(db.processedKeys().has("env:a")).toBe(true);
    expect(db.cursor("relay").load()).toBeNull();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`${snapshot} has an unexpected shape`);
    expect(warnings[0]).toContain(`${cursor} has an unexpected shape`);
  });

  it("imports once when a second connection opens the database", () => {
    write("peers.json", { peers: [legacyPeer("alice")] });
    const first = open();
    const second = open();
    expect(first.loadPeers()).toHaveLength(1);
    expect(second.loadPeers()).toHaveLength(1);
    expect(infos).toHaveLength(1);
  });
});

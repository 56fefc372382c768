// The SQLite store's operations hooks: ready() while open, heldMessages() kept up by triggers through inserts,
// acks, inbox deletes and purges (and counted once for a database from before the count existed), and
// heartbeat writes reported as batches.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteDatabaseStore } from "../../src/registry-server/sqlite-store.js";
import { StoreNotReadyError } from "../../src/registry-server/store-hooks.js";
import { storedAgent } from "./records.js";

const dir = mkdtempSync(join(tmpdir(), "agent-registry-store-ops-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const message = (to: string, id: string, createdAt = 1000) => ({
  messageId: id,
  toInstallationId: to,
  fromInstallationId: "peer-a",
  fromHostname: "alice",
  bodyJson: '"hi"',
  createdAt,
});

describe("SqliteDatabaseStore operations hooks", () => {
  it("is ready while open and says why not once closed", () => {
    const store = new SqliteDatabaseStore({ path: ":memory:" });
    expect(() => store.ready()).not.toThrow();
    store.close();
    expect(() => store.ready()).toThrow(StoreNotReadyError);
    expect(() => store.heldMessages()).toThrow("the database is closed");
  });

  it("counts held messages through inserts, duplicates, acks, inbox deletes and purges", () => {
    const store = new SqliteDatabaseStore({ path: ":memory:" });
    store.insertMessage(message("bob", "m1"));
    store.insertMessage(message("bob", "m2"));
    store.insertMessage(message("bob", "m2"));
    store.insertMessage(message("carol", "m3", 5000));
    store.insertMessage(message("dave", "m4"));
    expect(store.heldMessages()).toBe(4);
    expect(store.deleteMessages("bob", ["m1"])).toBe(1);
    expect(store.heldMessages()).toBe(3);
    expect(store.deleteInbox("dave")).toBe(1);
    expect(store.heldMessages()).toBe(2);
    expect(store.purgeMessages(2000)).toBe(1);
    expect(store.heldMessages()).toBe(1);
    store.close();
  });

  it("counts the messages of a database from before the count existed, once, at open", () => {
    const path = join(dir, "old.db");
    const first = new SqliteDatabaseStore({ path });
    first.insertMessage(message("bob", "m1"));
    first.insertMessage(message("bob", "m2"));
    first.close();
    const raw = new DatabaseSync(path);
    raw.exec(
      "DROP TRIGGER held_messages_insert; DROP TRIGGER held_messages_delete; DROP TABLE held_messages",
    );
    raw.close();
    const reopened = new SqliteDatabaseStore({ path });
    expect(reopened.heldMessages()).toBe(2);
    reopened.insertMessage(message("bob", "m3"));
    reopened.close();
    const again = new SqliteDatabaseStore({ path });
    expect(again.heldMessages()).toBe(3);
    again.close();
  });

  it("reports each write-behind heartbeat commit as one batch", async () => {
    const store = new SqliteDatabaseStore({ path: ":memory:", heartbeatWriteDelayMs: 0 });
    const batches: number[] = [];
    store.attachTelemetry({ heartbeatBatch: (n) => batches.push(n), poolUsage: () => {} });
    for (const [i, name] of ["a1", "a2", "a3"].entries()) {
      store.insertAgent(
        storedAgent(i, {
          id: name,
          hostname: name,
          installationId: `inst-${name}`,
          lastSeen: i,
          createdAt: i,
          updatedAt: i,
        }),
      );
      // Fills the heartbeat cache, so touches are written behind.
      store.getAgentLiveness(name);
    }
    for (const name of ["a1", "a2", "a3"]) expect(store.touchAgent(name, 10)).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([3]);
    store.close();
  });
});

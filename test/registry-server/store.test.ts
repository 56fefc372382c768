// SqliteDatabaseStore and its in-memory search index: the index follows committed writes only, is rebuilt
// from the file on open, and ranks with a bounded heap that agrees with a full sort.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteDatabaseStore } from "../../src/registry-server/sqlite-store.js";
import type { AgentSearchQuery } from "../../src/registry-server/store.js";
import { storedAgent } from "./records.js";

const dir = mkdtempSync(join(tmpdir(), "agent-registry-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const agent = storedAgent;

const query = (q: string, extra: Partial<AgentSearchQuery> = {}): AgentSearchQuery => {
  const phrase = q.toLowerCase();
  return {
    phrase,
    terms: phrase.split(/\s+/).filter(Boolean),
    capabilities: [],
    match: "any",
    limit: 10,
    offset: 0,
    ...extra,
  };
};

describe("SqliteDatabaseStore search index", () => {
  it("drops index updates of a rolled-back transaction", () => {
    const store = new SqliteDatabaseStore({ path: ":memory:" });
    expect(() =>
      store.transaction(() => {
        store.insertAgent(agent(1, { description: "ghost writer" }));
        throw new Error("abort");
      }),
    ).toThrow("abort");
    expect(store.searchAgents(query("ghost")).total).toBe(0);
    expect(store.getAgentById("id-0001")).toBeUndefined();
    store.close();
  });

  it("follows updates and deletes", () => {
    const store = new SqliteDatabaseStore({ path: ":memory:" });
    store.insertAgent(agent(1, { description: "old words" }));
    store.updateAgent(agent(1, { description: "new words" }));
    expect(store.searchAgents(query("old")).total).toBe(0);
    expect(store.searchAgents(query("new")).total).toBe(1);
    store.deleteAgent("id-0001");
    expect(store.searchAgents(query("words")).total).toBe(0);
    store.close();
  });

  it("rebuilds the index from the file when reopened", () => {
    const path = join(dir, "reopen.db");
    const first = new SqliteDatabaseStore({ path });
    first.insertAgent(agent(1, { description: "persistent cartographer", capabilities: ["maps"] }));
    first.close();
    const second = new SqliteDatabaseStore({ path });
    expect(second.searchAgents(query("cartog")).items.map((a) => a.hostname)).toEqual(["agent-1"]);
    expect(second.searchAgents(query("", { capabilities: ["maps"] })).total).toBe(1);
    second.close();
  });

  it("pages through a broad match in the same order as a full sort by id", () => {
    const store = new SqliteDatabaseStore({ path: ":memory:" });
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const a = agent((i * 7919) % 1000, { description: "common word" });
      store.insertAgent(a);
      ids.push(a.id);
    }
    const seen: string[] = [];
    for (let offset = 0; offset < 300; offset += 50) {
      const page = store.searchAgents(query("common", { limit: 50, offset }));
      expect(page.total).toBe(300);
      seen.push(...page.items.map((a) => a.id));
    }
    expect(seen).toEqual([...ids].sort());
    store.close();
  });

  it("hides agents last seen before the cut-off", () => {
    const store = new SqliteDatabaseStore({ path: ":memory:" });
    store.insertAgent(agent(1, { description: "alpha" }));
    store.insertAgent(agent(2, { description: "alpha" }));
    store.touchAgent("id-0002", 5000);
    expect(store.searchAgents(query("alpha", { seenSince: 4000 })).items.map((a) => a.id)).toEqual([
      "id-0002",
    ]);
    store.close();
  });
});

describe("SqliteDatabaseStore heartbeats written behind", () => {
  it("answers a heartbeat's liveness read from memory, and sees a new token after an update", () => {
    const store = new SqliteDatabaseStore({ path: ":memory:" });
    store.insertAgent(agent(1, { tokenHash: "aa" }));
    expect(store.getAgentLiveness("id-0001")).toEqual({ tokenHash: "aa", lastSeen: 1000 });
    store.touchAgent("id-0001", 2000);
    expect(store.getAgentLiveness("id-0001")).toEqual({ tokenHash: "aa", lastSeen: 2000 });
    store.updateAgent(agent(1, { tokenHash: "bb", lastSeen: 3000 }));
    expect(store.getAgentLiveness("id-0001")).toEqual({ tokenHash: "bb", lastSeen: 3000 });
    store.deleteAgent("id-0001");
    expect(store.getAgentLiveness("id-0001")).toBeUndefined();
    expect(store.touchAgent("id-0001", 4000)).toBe(false);
    store.close();
  });

  it("shows a heartbeat to every read before it is written", () => {
    const store = new SqliteDatabaseStore({ path: ":memory:" });
    store.insertAgent(agent(1));
    expect(store.touchAgent("id-0001", 9000)).toBe(true);
    expect(store.touchAgent("id-unknown", 9000)).toBe(false);
    expect(store.getAgentById("id-0001")?.lastSeen).toBe(9000);
    store.touchAgent("id-0001", 9500);
    expect(store.getAgentByHostname("agent-1")?.lastSeen).toBe(9500);
    store.touchAgent("id-0001", 9600);
    expect(store.listAgents({ seenSince: 9600, limit: 10, offset: 0 }).total).toBe(1);
    store.touchAgent("id-0001", 9700);
    expect(store.getAgentByInstallation("inst-1")?.lastSeen).toBe(9700);
    store.close();
  });

  it("writes heartbeats to the file after the delay, and on close", async () => {
    const path = join(dir, "heartbeats-delay.db");
    const store = new SqliteDatabaseStore({ path, heartbeatWriteDelayMs: 50 });
    store.insertAgent(agent(1));
    store.touchAgent("id-0001", 7000);
    const reader = new SqliteDatabaseStore({ path });
    expect(reader.getAgentById("id-0001")?.lastSeen).toBe(1000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(reader.getAgentById("id-0001")?.lastSeen).toBe(7000);
    reader.close();
    store.close();
  });

  it("with no delay, writes heartbeats by the next turn of the event loop, and on close", async () => {
    const path = join(dir, "heartbeats.db");
    const store = new SqliteDatabaseStore({ path, heartbeatWriteDelayMs: 0 });
    store.insertAgent(agent(1));
    store.insertAgent(agent(2));
    store.touchAgent("id-0001", 7000);
    await new Promise((resolve) => setImmediate(resolve));
    const reader = new SqliteDatabaseStore({ path });
    expect(reader.getAgentById("id-0001")?.lastSeen).toBe(7000);
    reader.close();
    store.touchAgent("id-0002", 8000);
    store.close();
    const reopened = new SqliteDatabaseStore({ path });
    expect(reopened.getAgentById("id-0002")?.lastSeen).toBe(8000);
    reopened.close();
  });

  it("writes pending heartbeats before a transaction, so a rollback keeps them", () => {
    const store = new SqliteDatabaseStore({ path: ":memory:" });
    store.insertAgent(agent(1));
    store.touchAgent("id-0001", 6000);
    expect(() =>
      store.transaction(() => {
        store.deleteAgent("id-0001");
        throw new Error("abort");
      }),
    ).toThrow("abort");
    expect(store.getAgentByHostname("agent-1")?.lastSeen).toBe(6000);
    store.close();
  });
});

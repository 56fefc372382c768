// Serving while the search index loads: a large table is loaded in slices after the store opens, searches
// answer 503 with Retry-After until the index is complete, everything else answers from the rows, and writes
// made during the load (new, changed, deleted agents, heartbeats) are all in the index once it is complete.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RegistryHttpError } from "../../src/registry-server/errors.js";
import { SqliteDatabaseStore, SqliteRegistryStore } from "../../src/registry-server/sqlite-store.js";
import type { StoredAgent } from "../../src/registry-server/store.js";
import { startTestRegistry } from "./helpers.js";
import { searchQuery } from "./records.js";

const dir = mkdtempSync(join(tmpdir(), "agent-registry-loading-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NOW = Date.parse("2026-01-01T00:00:00Z");

function agent(n: number, over: Partial<StoredAgent> = {}): StoredAgent {
  return {
    id: `id-${String(n).padStart(5, "0")}`,
    hostname: `${n % 2 ? "otter" : "falcon"}-${n}`,
    installationId: null,
    peerId: null,
    pilotNodeId: null,
    pilotAddress: null,
    displayName: null,
    description: n % 3 ? "translates documents" : "reviews code",
    capabilities: n % 5 ? ["translation"] : ["code"],
    tokenHash: null,
    publicKey: null,
    signedRecord: null,
    lastSeen: NOW,
    createdAt: NOW,
    updatedAt: NOW,
    ...over,
  };
}

/** A file db of `count` agents, written and closed. */
function seededFile(name: string, count: number): string {
  const path = join(dir, name);
  const store = new SqliteDatabaseStore({ path });
  store.transaction(() => {
    for (let n = 0; n < count; n++) store.insertAgent(agent(n));
  });
  store.close();
  return path;
}

const query = searchQuery;

const QUERIES = [
  query({ phrase: "otter", terms: ["otter"] }),
  query({ phrase: "reviews", terms: ["reviews"], capabilities: ["code"] }),
  query({ phrase: "otter-2999", terms: ["otter-2999"] }),
  query({ phrase: "falcon-4", terms: ["falcon-4"] }),
  query({ capabilities: ["translation", "code"], seenSince: NOW + 1 }),
  query({ phrase: "late", terms: ["late"] }),
];

describe("search while the index loads", () => {
  it("loads a small table before the store opens", () => {
    const store = new SqliteDatabaseStore({ path: seededFile("small.db", 50) });
    expect(store.searchReady).toBe(true);
    expect(store.searchAgents(query({ phrase: "otter", terms: ["otter"] })).total).toBe(25);
    store.close();
  });

  it("answers 503 with Retry-After until loaded, and has every write made meanwhile once loaded", async () => {
    const path = seededFile("large.db", 3000);
    const store = new SqliteDatabaseStore({
      path,
      indexLoadSyncMs: 0,
      indexLoadSliceMs: 0,
      indexLoadBatchRows: 100,
    });
    expect(store.searchReady).toBe(false);
    let refused: unknown;
    try {
      store.searchAgents(QUERIES[0]!);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(RegistryHttpError);
    expect((refused as RegistryHttpError).status).toBe(503);
    expect(Number((refused as RegistryHttpError).headers["retry-after"])).toBeGreaterThanOrEqual(1);

    // Writes to agents the load has not reached yet, and one new agent.
    store.insertAgent(agent(5000, { description: "arrived late" }));
    expect(store.deleteAgent("id-02500")).toBe(true);
    store.updateAgent({ ...agent(2000), description: "late changes" });
    expect(store.touchAgent("id-02999", NOW + 5000)).toBe(true);
    expect(store.getAgentLiveness("id-02999")?.lastSeen).toBe(NOW + 5000);
    expect(store.getAgentByHostname("falcon-2998")?.id).toBe("id-02998");

    await store.whenSearchReady();
    expect(store.searchReady).toBe(true);
    const loaded = QUERIES.map((q) => store.searchAgents(q));
    store.close();
    // The same file opened afresh (loaded in one go) answers the same.
    const fresh = new SqliteDatabaseStore({ path });
    expect(fresh.searchReady).toBe(true);
    expect(loaded).toEqual(QUERIES.map((q) => fresh.searchAgents(q)));
    fresh.close();
    expect(loaded[5]!.items.map((a) => a.id)).toEqual(["id-02000", "id-05000"]);
    expect(loaded[4]!.items.map((a) => a.id)).toEqual(["id-02999"]);
    expect(loaded[2]!.items[0]!.id).toBe("id-02999");
  });

  it("tells a waiter when the store closes before the index is complete", async () => {
    const store = new SqliteDatabaseStore({
      path: seededFile("closed.db", 500),
      indexLoadSyncMs: 0,
      indexLoadBatchRows: 10,
    });
    const ready = store.whenSearchReady();
    store.close();
    await expect(ready).rejects.toThrow(/closed before the index was complete/);
  });

  it("serves other routes at once and searches with 503 + Retry-After over HTTP while loading", async () => {
    const store = new SqliteRegistryStore({
      path: seededFile("http.db", 3000),
      indexLoadSyncMs: 0,
      indexLoadSliceMs: 0,
      indexLoadBatchRows: 10,
    });
    const r = await startTestRegistry({ store });
    const search = await r.call("GET", "/api/v1/agents/search?q=otter");
    expect(search.status).toBe(503);
    expect(Number(search.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(search.body)).toContain("loading its search index");
    const byHostname = await r.call("GET", "/api/v1/agents/by-hostname/otter-1");
    expect(byHostname.status).toBe(200);
    await store.whenSearchReady();
    const after = await r.call<{ total: number; total_exact: boolean }>(
      "GET",
      "/api/v1/agents/search?q=otter&include_offline=true",
    );
    expect(after.status).toBe(200);
    expect(after.body.total).toBe(1500);
  });
});

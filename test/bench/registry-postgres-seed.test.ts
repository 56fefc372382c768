// The PostgreSQL seeding of bench:registry writes what the store's insertAgent writes: the same row, search text
// and agent_words, so that the store's searches find seeded agents; and it puts back every index and constraint
// it dropped while seeding. On a real PostgreSQL server (test/support/postgres.ts).
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresSeeder, pgArrayLiteral, searchRowOf } from "../../bench/support/registry-postgres.js";
import { PostgresRegistryStore } from "../../src/registry-server/postgres-store.js";
import type { StoredAgent } from "../../src/registry-server/store.js";
import { startTestPostgres, type TestPostgres } from "../support/postgres.js";

let server: TestPostgres;
beforeAll(async () => {
  server = await startTestPostgres();
});
afterAll(async () => {
  await server?.stop();
});

const agent = (n: number, overrides: Partial<StoredAgent> = {}): StoredAgent => ({
  id: `id-${n}`,
  hostname: `quick-otter-${n}`,
  installationId: `inst-${n}`,
  peerId: `peer-${n}`,
  pilotNodeId: 1000 + n,
  pilotAddress: null,
  displayName: "Quick Otter",
  description: 'Helps with Code review, C++ and "quotes" \\ backslashes',
  capabilities: ["code-review", 'we"ird\\cap'],
  tokenHash: null,
  publicKey: null,
  signedRecord: null,
  lastSeen: 1_000,
  createdAt: 1_000,
  updatedAt: 1_000,
  ...overrides,
});

describe("bench:registry PostgreSQL seeding", () => {
  it("quotes array elements for PostgreSQL's array input", () => {
    expect(pgArrayLiteral([])).toBe("{}");
    expect(pgArrayLiteral(["a", 'b"c', "d\\e", "f,g"])).toBe('{"a","b\\"c","d\\\\e","f,g"}');
  });

  it("makes the search text and words as the store does: lowercase runs of letters and digits, once each", () => {
    const row = searchRowOf(agent(1));
    expect(row.searchText.split("\n")[0]).toBe("quick-otter-1");
    expect(row.words).toContain("otter");
    expect(row.words).toContain("c");
    expect(new Set(row.words).size).toBe(row.words.length);
  });

  it("writes what insertAgent writes, restores indexes and constraints, and its agents are found", async () => {
    const url = await server.freshDatabase();
    const catalog = async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const rows = await client.query(
          "SELECT conname AS name FROM pg_constraint WHERE conrelid IN ('agents'::regclass, 'agent_words'::regclass) " +
            "UNION ALL SELECT indexname FROM pg_indexes WHERE tablename IN ('agents', 'agent_words') ORDER BY 1",
        );
        return rows.rows.map((r) => String(r.name));
      } finally {
        await client.end();
      }
    };
    const before = await catalog();
    const seeder = await PostgresSeeder.connect(url);
    await seeder.insert([agent(1), agent(2, { description: null, displayName: null })]);
    await seeder.finish();
    expect(await catalog()).toEqual(before);
    // Every page all-visible, so the search's index-only scans of agent_words never visit the table.
    const visibility = new pg.Client({ connectionString: url });
    await visibility.connect();
    try {
      const pages = await visibility.query(
        "SELECT relname, relpages, relallvisible FROM pg_class WHERE relname IN ('agents', 'agent_words')",
      );
      for (const row of pages.rows) expect(row.relallvisible, row.relname).toBe(row.relpages);
    } finally {
      await visibility.end();
    }

    const store = await PostgresRegistryStore.open({ connectionString: url });
    try {
      // The same agent through the store, to compare its derived rows with the seeded one's.
      await store.insertAgent(agent(3));
      expect(await store.getAgentById("id-1")).toEqual(agent(1));
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const derived = await client.query(
          "SELECT a.id, a.search_text, array_agg(w.word ORDER BY w.word) AS words FROM agents a " +
            "JOIN agent_words w ON w.seq = a.seq WHERE a.id IN ('id-1', 'id-3') GROUP BY a.id, a.search_text ORDER BY a.id",
        );
        const [seeded, inserted] = derived.rows as Array<{ search_text: string; words: string[] }>;
        expect(seeded!.search_text.replaceAll("-1", "-3")).toBe(inserted!.search_text);
        expect(seeded!.words.map((w) => (w === "1" ? "3" : w)).sort()).toEqual([...inserted!.words].sort());
      } finally {
        await client.end();
      }
      const base = { limit: 10, offset: 0, match: "any" as const, seenSince: undefined };
      const byWord = await store.searchAgents({
        ...base,
        terms: ["otter"],
        phrase: "otter",
        capabilities: [],
      });
      expect(byWord.items.map((a) => a.id).sort()).toEqual(["id-1", "id-2", "id-3"]);
      const byCap = await store.searchAgents({
        ...base,
        terms: [],
        phrase: "",
        capabilities: ['we"ird\\cap'],
      });
      expect(byCap.total).toBe(3);
      // The identity continues after the seeded seqs: a new agent through the store does not collide.
      await store.insertAgent(agent(4));
    } finally {
      await store.close();
    }
  });
});

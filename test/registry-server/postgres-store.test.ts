// The PostgreSQL store's own guarantees, on a real server: migrations that concurrent replicas apply once, the
// migrate command, and the races two replicas on one database run into (one hostname, one inbox's quota, the
// order of an inbox's seqs), which the service's transactions must settle as a single process would.
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistryServer } from "../../src/registry-server/index.js";
import {
  applyPostgresMigrations,
  loadPostgresMigrations,
  POSTGRES_MIGRATIONS_DIR,
  postgresSchemaIsCurrent,
} from "../../src/registry-server/postgres-migrations.js";
import { PostgresRegistryStore, redactConnectionString } from "../../src/registry-server/postgres-store.js";
import { SqliteRegistryStore } from "../../src/registry-server/sqlite-store.js";
import type { AgentSearchQuery, StoredAgent } from "../../src/registry-server/store.js";
import { startTestPostgres, type TestPostgres } from "../support/postgres.js";
import { searchQuery, storedAgent } from "./records.js";

const run = promisify(execFile);

let server: TestPostgres;
beforeAll(async () => {
  server = await startTestPostgres();
});
afterAll(async () => {
  await server?.stop();
});

async function tables(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    );
    return rows.map((r) => String(r.tablename));
  } finally {
    await client.end();
  }
}

async function versions(url: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query("SELECT version FROM schema_migrations ORDER BY version")).rows.map((r) =>
      Number(r.version),
    );
  } finally {
    await client.end();
  }
}

/** Two registry replicas on one fresh database, as two processes would be (each its own pool). */
async function replicas(count = 2, options: Parameters<typeof startRegistryServer>[0] = {}) {
  const db = await server.freshDatabase();
  const started = await Promise.all(
    Array.from({ length: count }, () => startRegistryServer({ db, sweepIntervalMs: 0, ...options })),
  );
  const call = async (i: number, method: string, path: string, body?: unknown, token?: string) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${started[i % count]!.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return {
    call,
    close: () => Promise.all(started.map((s) => s.close())),
  };
}

/** The versions of the migrations this checkout ships, in order. */
const shippedVersions = async () => (await loadPostgresMigrations()).map((m) => m.version);

describe("PostgreSQL migrations", () => {
  it("are applied once when three stores open an empty database at the same time", async () => {
    const url = await server.emptyDatabase();
    const stores = await Promise.all(
      [1, 2, 3].map(() => PostgresRegistryStore.open({ connectionString: url })),
    );
    try {
      expect(await versions(url)).toEqual(await shippedVersions());
      expect(await tables(url)).toEqual(
        expect.arrayContaining(["agents", "agent_words", "messages", "inbox_usage", "trust", "counters"]),
      );
      for (const store of stores) expect(await store.lastTrustChange()).toBe(0);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("leave the schema current, which a readiness check can ask without changing anything", async () => {
    const url = await server.emptyDatabase();
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      expect(await postgresSchemaIsCurrent(pool)).toBe(false);
      await (await PostgresRegistryStore.open({ connectionString: url })).close();
      expect(await postgresSchemaIsCurrent(pool)).toBe(true);
    } finally {
      await pool.end();
    }
  });

  it("are applied by 'agent-registry migrate --db', which says so and then that the schema is current", async () => {
    const url = await server.emptyDatabase();
    const cli = ["bin/agent-registry.mjs"];
    const first = await run(process.execPath, [...cli, "migrate", "--db", url]);
    const shipped = await shippedVersions();
    expect(first.stdout).toMatch(new RegExp(`applied migrations ${shipped.join(", ")} to postgresql:`));
    const again = await run(process.execPath, [...cli, "migrate"], {
      env: { ...process.env, DATABASE_URL: url },
    });
    expect(again.stdout).toMatch(/is up to date/);
    expect(await versions(url)).toEqual(shipped);
  });

  it("index the capabilities of agents registered before 0003 (bounded search), and search finds them", async () => {
    const url = await server.emptyDatabase();
    // The schema as 0002 left it, with one agent in it.
    const old = mkdtempSync(join(tmpdir(), "migrations-"));
    for (const file of ["0001_init.sql", "0002_replicas.sql"]) {
      copyFileSync(new URL(file, POSTGRES_MIGRATIONS_DIR), join(old, file));
    }
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await applyPostgresMigrations(pool, pathToFileURL(`${old}/`));
      await pool.query(
        "INSERT INTO agents (id, hostname, capabilities, last_seen, created_at, updated_at, search_text) " +
          "VALUES ('a1', 'old-timer', '{chat,code}', 1, 1, 1, 'old-timer')",
      );
      expect(await applyPostgresMigrations(pool)).toEqual((await shippedVersions()).filter((v) => v > 2));
      const keys = await pool.query("SELECT word FROM agent_words WHERE word < 'a' ORDER BY word");
      expect(keys.rows.map((r) => r.word)).toEqual(["\u0001chat", "\u0001code"]);
    } finally {
      await pool.end();
      rmSync(old, { recursive: true, force: true });
    }
    const store = await PostgresRegistryStore.open({
      connectionString: url,
      searchExact: 0,
      searchSample: 1,
    });
    try {
      const page = await store.searchAgents({
        phrase: "",
        terms: [],
        capabilities: ["code"],
        match: "any",
        limit: 5,
        offset: 0,
      });
      expect(page.items.map((a) => a.id)).toEqual(["a1"]);
    } finally {
      await store.close();
    }
  });

  it("never show a connection string's password", () => {
    const shown = redactConnectionString(
      "postgres://registry:s3cret@db.example:5432/registry?password=other",
    );
    expect(shown).not.toContain("s3cret");
    expect(shown).not.toContain("other");
    expect(shown).toContain("db.example");
  });
});

describe("two replicas on one database", () => {
  it("let exactly one of two concurrent registrations of one hostname win", async () => {
    const r = await replicas();
    try {
      for (let round = 0; round < 5; round++) {
        const hostname = `contested-${round}`;
        const results = await Promise.all(
          [0, 1].map((i) =>
            r.call(i, "POST", "/api/v1/agents/", { hostname, installation_id: `inst-${round}-${i}` }),
          ),
        );
        expect(results.map((x) => x.status).sort()).toEqual([201, 409]);
      }
    } finally {
      await r.close();
    }
  });

  it("keep an inbox within its quota when senders race on both replicas, with seqs increasing", async () => {
    const r = await replicas(2, { inboxMaxMessages: 10, sendRatePerMinute: 0 });
    try {
      const bob = await r.call(0, "POST", "/api/v1/agents/", {
        hostname: "bob",
        installation_id: "inst-bob",
      });
      const senders = await Promise.all(
        [0, 1, 2, 3].map((i) =>
          r.call(i, "POST", "/api/v1/agents/", { hostname: `sender-${i}`, installation_id: `inst-s${i}` }),
        ),
      );
      const sends = await Promise.all(
        Array.from({ length: 24 }, (_, n) => {
          const s = senders[n % 4]!.body;
          return r.call(
            n,
            "POST",
            "/api/v1/agents/messages/send",
            {
              from_installation_id: `inst-s${n % 4}`,
              from_hostname: s.hostname,
              to_hostname: "bob",
              body: `message ${n}`,
              message_id: `m-${n}`,
            },
            String(s.agent_token),
          );
        }),
      );
      const statuses = sends.map((s) => s.status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(10);
      expect(statuses.filter((s) => s === 507)).toHaveLength(14);
      const inbox = await r.call(
        1,
        "GET",
        "/api/v1/agents/messages/inbox/inst-bob?limit=100",
        undefined,
        String(bob.body.agent_token),
      );
      const cursors = (inbox.body.messages as Array<{ cursor: string }>).map((m) => Number(m.cursor));
      expect(cursors).toHaveLength(10);
      expect(cursors).toEqual([...cursors].sort((a, b) => a - b));
      expect(new Set(cursors).size).toBe(10);
    } finally {
      await r.close();
    }
  });
});

describe("PostgreSQL search", () => {
  it("answers random queries exactly as the SQLite store does: matches, totals, ranking, paging, offline hidden", async () => {
    // A small vocabulary so that words share prefixes and queries match many agents in different ways.
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const words = [
      "alpha",
      "alps",
      "beta",
      "bet",
      "gamma",
      "gam",
      "delta",
      "échec",
      "c++",
      "data-bot",
      "100%",
    ];
    const caps = ["chat", "code", "search", "calendar", "mail", "code-review"];
    const sqlite = new SqliteRegistryStore({ path: ":memory:" });
    const url = await server.freshDatabase();
    const postgres = await PostgresRegistryStore.open({ connectionString: url });
    // The same database with a small exact bound: whatever it answers as exact must be SQLite's answer too.
    const bounded = await PostgresRegistryStore.open({
      connectionString: url,
      searchExact: 60,
      searchSample: 10,
    });
    try {
      for (let i = 0; i < 150; i++) {
        const text = (n: number) => Array.from({ length: n }, () => pick(words)).join(" ");
        const agent: StoredAgent = {
          id: `id-${(i * 7919) % 1000}-${i}`,
          hostname: `${pick(["alpha", "beta", "gam", "chat"])}-${pick(words).replace(/[^a-z]/g, "")}-${i}`,
          installationId: `inst-${i}`,
          peerId: null,
          pilotNodeId: null,
          pilotAddress: null,
          displayName: random() < 0.7 ? text(2) : null,
          description: random() < 0.7 ? text(4) : null,
          capabilities: [...new Set(Array.from({ length: Math.floor(random() * 4) }, () => pick(caps)))],
          tokenHash: null,
          publicKey: null,
          signedRecord: null,
          lastSeen: random() < 0.8 ? 10_000 : 1_000,
          createdAt: i,
          updatedAt: i,
        };
        await sqlite.insertAgent(agent);
        await postgres.insertAgent(agent);
      }
      const phrases = [
        "",
        "al",
        "alpha",
        "alp be",
        "bet",
        "c++",
        "data-bot",
        "100%",
        "éc",
        "chat",
        "code",
        "gam 1",
        "zzz",
      ];
      let matched = 0;
      let boundedExact = 0;
      let boundedSampled = 0;
      for (let n = 0; n < 120; n++) {
        const phrase = pick(phrases);
        const query: AgentSearchQuery = {
          phrase,
          terms: [...new Set(phrase.split(/\s+/).filter(Boolean))],
          capabilities: random() < 0.5 ? [...new Set([pick(caps), pick(caps)])] : [],
          match: random() < 0.5 ? "any" : "all",
          seenSince: random() < 0.7 ? 5_000 : undefined,
          limit: pick([1, 5, 20, 50]),
          offset: pick([0, 0, 3, 40]),
        };
        const expected = await sqlite.searchAgents(query);
        const actual = await postgres.searchAgents(query);
        if (expected.items.length > 1) matched++;
        expect({ total: actual.total, ids: actual.items.map((a) => a.id) }, JSON.stringify(query)).toEqual({
          total: expected.total,
          ids: expected.items.map((a) => a.id),
        });
        const small = await bounded.searchAgents(query);
        if (small.totalExact === false) {
          // A sample: every agent it shows is a match, and its pages hold no duplicates.
          boundedSampled++;
          const everyMatch = await sqlite.searchAgents({ ...query, limit: 1_000, offset: 0 });
          const matches = new Set(everyMatch.items.map((a) => a.id));
          const shown = small.items.map((a) => a.id);
          expect(
            shown.filter((id) => !matches.has(id)),
            `bounded ${JSON.stringify(query)}`,
          ).toEqual([]);
          expect(new Set(shown).size).toBe(shown.length);
          continue;
        }
        boundedExact++;
        expect(
          { total: small.total, ids: small.items.map((a) => a.id) },
          `bounded ${JSON.stringify(query)}`,
        ).toEqual({
          total: expected.total,
          ids: expected.items.map((a) => a.id),
        });
      }
      // The comparison means something only if many queries rank several agents.
      expect(matched).toBeGreaterThan(40);
      expect(boundedExact).toBeGreaterThan(20);
      expect(boundedSampled).toBeGreaterThan(20);
    } finally {
      await sqlite.close();
      await postgres.close();
      await bounded.close();
    }
  });
});

describe("PostgreSQL search, hard cases", () => {
  it("checks words, verbatim terms, tiers and capabilities in SQL exactly as the SQLite store does", async () => {
    // Word starts across scripts (a letter before a match hides it; a mark, an emoji or a middle dot does not),
    // verbatim terms, the ranking tiers, capability hits, liveness and paging: each query is asked of both stores.
    const agents = [
      storedAgent(1, { description: "éclair maker", capabilities: ["bake"] }),
      storedAgent(2, { description: "clair de lune", capabilities: ["music"] }),
      storedAgent(3, { description: "日本語 本屋" }),
      storedAgent(4, { description: "𝒜bc astral", capabilities: ["math"] }),
      storedAgent(5, { description: "😀bc emoji", capabilities: ["math", "chat"] }),
      storedAgent(6, { description: "x·ray vision", capabilities: ["chat"] }),
      storedAgent(7, { hostname: "translate", description: "exact host", capabilities: ["chat"] }),
      storedAgent(8, { hostname: "translate-bot", capabilities: ["translate"] }),
      storedAgent(9, {
        hostname: "my-translate-bot",
        description: "c++ tutor, alpha-bot",
        capabilities: ["code"],
      }),
      storedAgent(10, { description: "c tutor", capabilities: ["code", "chat"] }),
      storedAgent(11, { description: "c++ tutor offline", capabilities: ["code"], lastSeen: 1 }),
      storedAgent(12, { description: "works with translate tools" }),
    ];
    const sqlite = new SqliteRegistryStore({ path: ":memory:" });
    const postgres = await PostgresRegistryStore.open({ connectionString: await server.freshDatabase() });
    try {
      for (const agent of agents) {
        await sqlite.insertAgent(agent);
        await postgres.insertAgent(agent);
      }
      const ask = (phrase: string, over: Partial<AgentSearchQuery> = {}): AgentSearchQuery =>
        searchQuery({ phrase, terms: phrase ? phrase.split(" ") : [], seenSince: 500, ...over });
      for (const query of [
        ask("clair"),
        ask("maker clair"),
        ask("lune clair"),
        ask("本"),
        ask("日本"),
        ask("bc"),
        ask("ray"),
        ask("translate"),
        ask("translate", { offset: 1, limit: 2 }),
        ask("c++ tutor"),
        ask("c++ tutor", { seenSince: undefined }),
        ask("alpha-bot"),
        ask("tutor", { capabilities: ["code", "chat"] }),
        ask("", { capabilities: ["math", "chat"] }),
        ask("", { capabilities: ["math", "chat"], match: "all" }),
        ask("", { offset: 3, limit: 4 }),
        ask("", { offset: 40 }),
      ]) {
        const expected = await sqlite.searchAgents(query);
        const actual = await postgres.searchAgents(query);
        expect({ total: actual.total, ids: actual.items.map((a) => a.id) }, JSON.stringify(query)).toEqual({
          total: expected.total,
          ids: expected.items.map((a) => a.id),
        });
      }
      // The cases mean something: a few of them by hand.
      const ids = async (query: AgentSearchQuery) =>
        (await postgres.searchAgents(query)).items.map((a) => a.id);
      expect(await ids(ask("clair"))).toEqual(["id-0002"]);
      // "clair" within "éclair" is no word start, though the text holds it.
      expect(await ids(ask("maker clair"))).toEqual([]);
      expect(await ids(ask("lune clair"))).toEqual(["id-0002"]);
      expect(await ids(ask("bc"))).toEqual(["id-0005"]);
      expect(await ids(ask("ray"))).toEqual(["id-0006"]);
      expect(await ids(ask("translate"))).toEqual(["id-0007", "id-0008", "id-0009", "id-0012"]);
      expect(await ids(ask("c++ tutor"))).toEqual(["id-0009"]);
    } finally {
      await sqlite.close();
      await postgres.close();
    }
  });
});

/**
 * A PostgreSQL store with bounds small enough that a few hundred agents pass them (exact up to 20 candidates,
 * samples of 10), on a fresh database, and an SQLite store to compare it with.
 */
async function boundedStores(): Promise<{
  url: string;
  store: PostgresRegistryStore;
  sqlite: SqliteRegistryStore;
}> {
  const url = await server.freshDatabase();
  const store = await PostgresRegistryStore.open({
    connectionString: url,
    searchExact: 20,
    searchSample: 10,
  });
  return { url, store, sqlite: new SqliteRegistryStore({ path: ":memory:" }) };
}

describe("PostgreSQL search past its exact bound", () => {
  it("answers a broad query from a bounded sample: estimated total marked, pages correct and stable", async () => {
    const { url, store, sqlite } = await boundedStores();
    try {
      const agent = (i: number, extra: Partial<StoredAgent> = {}): StoredAgent => ({
        id: `id-${String((i * 7919) % 1000).padStart(3, "0")}-${i}`,
        hostname: `host-${i}`,
        installationId: `inst-${i}`,
        peerId: null,
        pilotNodeId: null,
        pilotAddress: null,
        displayName: null,
        // Every agent says "common"; one in 25 says "rare".
        description: `a common helper${i % 25 === 0 ? " rare" : ""}`,
        capabilities: i % 2 === 0 ? ["chat", "code"] : ["code"],
        tokenHash: null,
        publicKey: null,
        signedRecord: null,
        lastSeen: i % 10 === 0 ? 1_000 : 10_000,
        createdAt: i,
        updatedAt: i,
        ...extra,
      });
      const agents = Array.from({ length: 300 }, (_, i) => agent(i));
      // Named by the query: the exact hostname and an exact capability rank first even from a sample.
      agents.push(agent(301, { hostname: "common" }), agent(302, { capabilities: ["common"] }));
      for (const a of agents) {
        await store.insertAgent(a);
        await sqlite.insertAgent(a);
      }
      // The planner's statistics, which autovacuum keeps on a real database, give the sources' sizes.
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query("ANALYZE");
      await client.end();
      const online = agents.filter((a) => a.lastSeen >= 5_000);
      const query = (phrase: string, extra: Partial<AgentSearchQuery> = {}): AgentSearchQuery => ({
        phrase,
        terms: phrase ? phrase.split(" ") : [],
        capabilities: [],
        match: "any",
        seenSince: 5_000,
        limit: 10,
        offset: 0,
        ...extra,
      });

      // Within the bound: exact, and the same as the SQLite store.
      const rare = query("rare");
      const rarePage = await store.searchAgents(rare);
      expect(rarePage.totalExact ?? true).toBe(true);
      expect(rarePage.total).toBe((await sqlite.searchAgents(rare)).total);
      expect(rarePage.total).toBe(online.filter((a) => a.description?.includes("rare")).length);
      // The statistics put these sources far beyond the bound: sized without a counting statement.
      const counted = store.rangeCounts;

      for (const broad of [
        query("common"),
        query("comm"),
        query("", { capabilities: ["code"] }),
        query("", { capabilities: ["chat", "code"], match: "all" }),
        // A union (match=any): its sample is shared between the two capabilities.
        query("", { capabilities: ["chat", "code"] }),
        query("helper", { capabilities: ["chat"] }),
      ]) {
        const label = JSON.stringify(broad);
        const first = await store.searchAgents(broad);
        const truth = (await sqlite.searchAgents({ ...broad, limit: 1 })).total;
        expect(first.totalExact, label).toBe(false);
        expect(first.items, label).toHaveLength(10);
        // An estimate, not a count: within a factor of two of the truth here.
        expect(first.total, label).toBeGreaterThanOrEqual(truth / 2);
        expect(first.total, label).toBeLessThanOrEqual(truth * 2);
        // Every agent shown matches: online, the words, the capabilities.
        for (const a of first.items) {
          expect(a.lastSeen, label).toBeGreaterThanOrEqual(5_000);
          for (const term of broad.terms) expect(`${a.hostname} ${a.description}`, label).toContain(term);
          const held = broad.capabilities.filter((c) => a.capabilities.includes(c)).length;
          if (broad.capabilities.length)
            expect(held, label).toBeGreaterThanOrEqual(broad.match === "all" ? 2 : 1);
        }
        // Stable: the same query gives the same page, and pages follow each other without gaps or repeats.
        expect(
          (await store.searchAgents(broad)).items.map((a) => a.id),
          label,
        ).toEqual(first.items.map((a) => a.id));
        const wide = await store.searchAgents({ ...broad, limit: 20 });
        const second = await store.searchAgents({ ...broad, offset: 10 });
        expect(
          [...first.items, ...second.items].map((a) => a.id),
          label,
        ).toEqual(wide.items.map((a) => a.id));
        expect(new Set(wide.items.map((a) => a.id)).size, label).toBe(wide.items.length);
      }
      expect(store.rangeCounts).toBe(counted);
      // Ranking tiers hold for a sampled query: exact hostname, then the exact capability.
      const named = await store.searchAgents(query("common"));
      expect(named.items.slice(0, 2).map((a) => a.hostname)).toEqual(["common", "host-302"]);
      // Offline agents stay hidden, and are found when asked for.
      const withOffline = await store.searchAgents(query("common", { seenSince: undefined, limit: 50 }));
      expect(withOffline.items.some((a) => a.lastSeen < 5_000)).toBe(true);
    } finally {
      await sqlite.close();
      await store.close();
    }
  });
});

describe("PostgreSQL search of a capability union near its exact bound", () => {
  it("reads every holder of each capability when together they are within the bound, and samples otherwise", async () => {
    const { store, sqlite } = await boundedStores();
    try {
      // 15 agents hold alpha, 15 beta (5 of them both), 3 gamma: each capability is within the bound of 20.
      const holders = (i: number) => [
        ...(i < 15 ? ["alpha"] : []),
        ...(i >= 10 && i < 25 ? ["beta"] : []),
        ...(i >= 25 ? ["gamma"] : []),
      ];
      for (let i = 0; i < 28; i++) {
        const agent = storedAgent(i, { id: `id-${(i * 37) % 101}-${i}`, capabilities: holders(i) });
        await store.insertAgent(agent);
        await sqlite.insertAgent(agent);
      }
      // 18 holders together: within the bound, so exact, and the same page as SQLite's (ranked by hits, then id).
      const small = searchQuery({ capabilities: ["alpha", "gamma"], limit: 50 });
      const exact = await store.searchAgents(small);
      const truth = await sqlite.searchAgents(small);
      expect(exact.totalExact ?? true).toBe(true);
      expect(exact.total).toBe(18);
      expect(exact.items.map((a) => a.id)).toEqual(truth.items.map((a) => a.id));
      // 25 holders together (each capability 15): past the bound, so sampled and said to be.
      const wide = searchQuery({ capabilities: ["alpha", "beta"] });
      const sampled = await store.searchAgents(wide);
      expect(sampled.totalExact).toBe(false);
      expect(sampled.total).toBeGreaterThanOrEqual(sampled.items.length);
      for (const a of sampled.items)
        expect(a.capabilities.some((c) => c === "alpha" || c === "beta")).toBe(true);
    } finally {
      await sqlite.close();
      await store.close();
    }
  });
});

describe("PostgreSQL heartbeats and purges", () => {
  it("index nothing a heartbeat writes, so its update stays in the row's page (migration 0005)", async () => {
    const url = await server.freshDatabase();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      // Columns of agents that some index covers (keys, INCLUDE columns or expressions).
      const { rows } = await client.query(
        "SELECT DISTINCT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid " +
          "AND (a.attnum = ANY(i.indkey) OR pg_get_indexdef(i.indexrelid) LIKE '%' || a.attname || '%') " +
          "WHERE i.indrelid = 'agents'::regclass AND a.attnum > 0",
      );
      const indexed = rows.map((r) => String(r.attname));
      expect(indexed).toContain("seen_day");
      expect(indexed).not.toContain("last_seen");
      const fill = await client.query("SELECT reloptions FROM pg_class WHERE oid = 'agents'::regclass");
      expect(fill.rows[0].reloptions).toContain("fillfactor=85");
    } finally {
      await client.end();
    }
  });

  it("purge exactly the agents seen before the cutoff, across day boundaries, through seen_day", async () => {
    const url = await server.freshDatabase();
    const store = await PostgresRegistryStore.open({ connectionString: url });
    const DAY = 86_400_000;
    const cutoff = 20 * DAY + 5 * 3_600_000; // 05:00 on day 20
    const seen = [3 * DAY, 20 * DAY, cutoff - 1, cutoff, 20 * DAY + 20 * 3_600_000, 21 * DAY];
    try {
      for (const [i, lastSeen] of seen.entries()) await store.insertAgent(storedAgent(i, { lastSeen }));
      // A heartbeat that moves an agent into a later day moves its seen_day too.
      expect(await store.touchAgent(storedAgent(1).id, 22 * DAY)).toBe(true);
      expect(await store.purgeAgents(cutoff)).toBe(2);
      const left = await Promise.all(seen.map((_, i) => store.getAgentById(storedAgent(i).id)));
      expect(left.map((a) => a !== undefined)).toEqual([false, true, false, true, true, true]);
    } finally {
      await store.close();
    }
  });
});

describe("two replicas deciding trust", () => {
  it("approve both ways when two agents request each other at once on different replicas", async () => {
    const r = await replicas();
    try {
      for (let round = 0; round < 4; round++) {
        const [a, b] = await Promise.all(
          ["a", "b"].map((side, i) =>
            r.call(i, "POST", "/api/v1/agents/", {
              hostname: `${side}-${round}`,
              installation_id: `inst-${side}-${round}`,
            }),
          ),
        );
        const requests = await Promise.all([
          r.call(
            0,
            "POST",
            "/api/v1/trust/request",
            { from_id: a!.body.peer_id, to_id: b!.body.peer_id },
            String(a!.body.agent_token),
          ),
          r.call(
            1,
            "POST",
            "/api/v1/trust/request",
            { from_id: b!.body.peer_id, to_id: a!.body.peer_id },
            String(b!.body.agent_token),
          ),
        ]);
        // As if one ran after the other: the first is pending, the second finds it and approves both.
        expect(requests.map((x) => x.body.status).sort()).toEqual(["approved", "pending"]);
        const list = await r.call(
          1,
          "GET",
          `/api/v1/trust/list/${a!.body.peer_id}`,
          undefined,
          String(a!.body.agent_token),
        );
        const statuses = (list.body.peers as Array<{ status: string }>).map((p) => p.status);
        expect(statuses).toEqual(["approved", "approved"]);
      }
    } finally {
      await r.close();
    }
  });
});

describe("agent-registry serve --db postgres://...", () => {
  it("never prints the connection string's password, even when it cannot connect", async () => {
    const failed = await run(
      process.execPath,
      [
        "bin/agent-registry.mjs",
        "serve",
        "--port",
        "0",
        "--db",
        "postgres://registry:s3cret-word@127.0.0.1:1/registry",
      ],
      { timeout: 30_000 },
    ).then(
      () => undefined,
      (error: { code?: number; stdout?: string; stderr?: string }) => error,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(
      /cannot start .* with db postgres:\/\/registry:(\*\*\*|\[redacted\])@127\.0\.0\.1:1\/registry/,
    );
    expect(`${failed?.stdout}${failed?.stderr}`).not.toContain("s3cret-word");
  });
});

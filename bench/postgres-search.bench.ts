// Search on the PostgreSQL store at N agents, 8 concurrent clients, through the store (no HTTP): the three
// kinds of bench:registry (one broad word; two capabilities, any; word + capability). Starts its own server
// (test/support/postgres.ts), seeds with COPY-free multi-row inserts through SQL, and stops everything.
// Usage: node --import tsx bench/postgres-search.bench.ts [agents=100000] [queries=400]
import { loadavg } from "node:os";
import pg from "pg";
import { agentWordsOf, PostgresRegistryStore } from "../src/registry-server/postgres-store.js";
import { searchTextOf } from "../src/registry-server/search-words.js";
import type { AgentSearchQuery } from "../src/registry-server/store.js";
import { startPostgresServer } from "../test/support/postgres.js";
import { benchAgent, searchPaths } from "./registry.bench.js";

const agents = Number(process.argv[2] ?? 100_000);
const queries = Number(process.argv[3] ?? 400);

const server = await startPostgresServer();
const url = `postgresql://postgres@localhost/registry_template?host=${encodeURIComponent(server.dir)}`;
try {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {
    // Why safe: the server stops at the end; an error of a live query is thrown by that query.
  });
  await client.connect();
  const started = performance.now();
  const now = Date.now();
  const batch = 2000;
  for (let from = 0; from < agents; from += batch) {
    const rows = Array.from({ length: Math.min(batch, agents - from) }, (_, k) => benchAgent(from + k, now));
    const cols = (f: (a: (typeof rows)[number]) => unknown) => rows.map(f);
    const inserted = await client.query(
      "INSERT INTO agents (id, hostname, installation_id, peer_id, pilot_node_id, display_name, description, " +
        "capabilities, last_seen, created_at, updated_at, search_text) " +
        "SELECT v1, v2, v3, v4, v5, v6, v7, v8::text[], v9, v10, v11, v12 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], " +
        "$8::text[], $9::bigint[], $9::bigint[], $9::bigint[], $10::text[]) " +
        "AS v(v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12) RETURNING seq, hostname",
      [
        cols((a) => a.id),
        cols((a) => a.hostname),
        cols((a) => a.installationId),
        cols((a) => a.peerId),
        cols((a) => a.pilotNodeId),
        cols((a) => a.displayName),
        cols((a) => a.description),
        // text[][] would need equal lengths: pass each array as its literal.
        cols((a) => `{${a.capabilities.map((c) => `"${c}"`).join(",")}}`),
        cols(() => now),
        cols(searchTextOf),
      ],
    );
    const seqOf = new Map(inserted.rows.map((r) => [String(r.hostname), Number(r.seq)]));
    const words: string[] = [];
    const seqs: number[] = [];
    for (const a of rows) {
      const seq = seqOf.get(a.hostname)!;
      for (const word of agentWordsOf(a)) {
        words.push(word);
        seqs.push(seq);
      }
    }
    await client.query(
      "INSERT INTO agent_words (word, seq) SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING",
      [words, seqs],
    );
  }
  await client.query("VACUUM ANALYZE");
  const seedS = (performance.now() - started) / 1000;
  const size = await client.query("SELECT pg_database_size(current_database()) AS b");
  await client.end();

  if (process.env.EXPLAIN) {
    const explainer = new pg.Client({ connectionString: url });
    await explainer.connect();
    const original = pg.Pool.prototype.query;
    let shown = 0;
    // biome-ignore lint/suspicious/noExplicitAny: a debugging hook around the pool's query.
    (pg.Pool.prototype as any).query = async function (this: pg.Pool, q: any, values: unknown[]) {
      const sql = typeof q === "string" ? q : q.text;
      const params = typeof q === "string" ? values : q.values;
      if (
        sql.startsWith("WITH d") &&
        (!process.env.EXPLAIN_KIND || JSON.stringify(params).includes(process.env.EXPLAIN_KIND)) &&
        shown++ < 3
      ) {
        const plan = await explainer.query(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, params);
        console.error(JSON.stringify(params).slice(0, 300));
        console.error(plan.rows.map((r) => r["QUERY PLAN"]).join("\n"));
      }
      // biome-ignore lint/suspicious/noExplicitAny: passes through.
      return (original as any).call(this, q, values);
    };
  }
  const store = await PostgresRegistryStore.open({
    connectionString: url,
    maxConnections: 8,
    searchSample: process.env.SAMPLE ? Number(process.env.SAMPLE) : undefined,
  });
  const toQuery = (path: string): AgentSearchQuery => {
    const p = new URL(path, "http://x").searchParams;
    const phrase = (p.get("q") ?? "").trim().toLowerCase();
    return {
      phrase,
      terms: [...new Set(phrase.split(/\s+/).filter(Boolean))],
      capabilities: [...new Set(p.getAll("capabilities"))],
      match: "any",
      seenSince: now - 60_000,
      limit: 20,
      offset: 0,
    };
  };
  const paths = searchPaths(queries);
  const result: Record<string, unknown> = {
    agents,
    seed_s: Math.round(seedS),
    db_size_mb: Math.round(Number(size.rows[0].b) / 2 ** 20),
  };
  for (const kind of ["text", "caps", "both"] as const) {
    const list = paths[kind].map(toQuery);
    for (const q of list.slice(0, 20)) await store.searchAgents(q); // warm
    const times: number[] = [];
    let next = 0;
    let estimated = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < list.length) {
          const q = list[next++]!;
          const t0 = performance.now();
          const page = await store.searchAgents(q);
          times.push(performance.now() - t0);
          if (page.totalExact === false) estimated++;
        }
      }),
    );
    times.sort((a, b) => a - b);
    const at = (p: number) =>
      Math.round(times[Math.min(times.length - 1, Math.floor(p * times.length))]! * 10) / 10;
    result[`${kind}_p50_ms`] = at(0.5);
    result[`${kind}_p99_ms`] = at(0.99);
    result[`${kind}_estimated`] = estimated;
  }
  // Writes: registrations through the store (words included), one at a time.
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) await store.insertAgent(benchAgent(agents + i, now));
  result.insert_ms = Math.round(((performance.now() - t0) / 200) * 100) / 100;
  await store.close();
  result.load = loadavg().map((l) => Math.round(l * 100) / 100);
  console.log(JSON.stringify(result));
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await server.stop();
}

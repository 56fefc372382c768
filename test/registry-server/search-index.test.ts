// SearchIndex against a plain reference of the search rules (filter every agent, sort them all): random
// agents are added, replaced, removed and touched, and every random query must give the same page and total.
import { describe, expect, it } from "vitest";
import {
  type IndexedAgent,
  type IndexQuery,
  SearchIndex,
  searchTextOf,
} from "../../src/registry-server/search-index.js";

/** The rules as the docs state them, with no index: what SearchIndex must agree with. */
function reference(agents: Map<number, IndexedAgent>, q: IndexQuery): { seqs: number[]; total: number } {
  const word = /[\p{L}\p{N}]+/gu;
  const countHits = q.capabilities.length > 1 && q.match === "any";
  const ranked: Array<{ seq: number; tier: number; hits: number; id: string }> = [];
  for (const [seq, agent] of agents) {
    if (q.seenSince !== undefined && agent.lastSeen < q.seenSince) continue;
    const text = searchTextOf(agent);
    const tokens = text.match(word) ?? [];
    const wordsOk = q.terms.every(
      (term) =>
        (term.match(word) ?? []).every((t) => tokens.some((token) => token.startsWith(t))) &&
        (/^[\p{L}\p{N}]+$/u.test(term) || text.includes(term)),
    );
    if (!wordsOk) continue;
    const hits = q.capabilities.filter((c) => agent.capabilities.includes(c)).length;
    if (q.capabilities.length && (q.match === "all" ? hits < q.capabilities.length : hits === 0)) continue;
    let tier = 3;
    if (q.phrase) {
      if (agent.hostname === q.phrase) tier = 0;
      else if ([q.phrase, ...q.terms].some((w) => agent.capabilities.includes(w))) tier = 1;
      else if (agent.hostname.includes(q.phrase)) tier = 2;
    }
    ranked.push({ seq, tier, hits: countHits ? hits : 0, id: agent.id });
  }
  ranked.sort((a, b) => a.tier - b.tier || b.hits - a.hits || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { seqs: ranked.slice(q.offset, q.offset + q.limit).map((r) => r.seq), total: ranked.length };
}

/** A small deterministic PRNG, so a failure replays. */
function prng(seed: number) {
  let state = seed;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  return { next, pick };
}

// Words overlap by prefix (al/alp/alpha, code/coder/codes), some carry punctuation or non-ASCII letters.
const WORDS = ["alpha", "alp", "al", "beta", "code", "coder", "codes", "c++", "100%", "über", "日本", "x"];
const MORE = ["translator", "trans", "a-b", "alpha-bot", "bot", "b", "Über", "Zeta"];
const CAPABILITIES = ["code", "alpha", "beta", "trans", "translator", "x", "bot", "c++"];

function randomAgent(r: ReturnType<typeof prng>, n: number): IndexedAgent {
  const words = [...WORDS, ...MORE];
  const few = (max: number) => Array.from({ length: Math.floor(r.next() * max) }, () => r.pick(words));
  return {
    // Ids share prefixes now and then, so the id tie-break has to look past its numeric key.
    id: r.next() < 0.3 ? `${r.pick(["a", "ab", "", "aé"])}${n}` : `${Math.floor(r.next() * 1e9)}-${n}`,
    hostname: `${r.pick(words).replace(/[^a-z0-9-]/g, "x")}-${n % 300}-${n}`,
    displayName: r.next() < 0.5 ? null : few(3).join(" "),
    description: r.next() < 0.3 ? null : few(7).join(r.next() < 0.5 ? " " : ","),
    capabilities: [...new Set(Array.from({ length: Math.floor(r.next() * 4) }, () => r.pick(CAPABILITIES)))],
    lastSeen: Math.floor(r.next() * 100),
  };
}

function randomQuery(r: ReturnType<typeof prng>, agents: Map<number, IndexedAgent>): IndexQuery {
  const words = [...WORDS, ...MORE, ...WORDS.map((w) => w.slice(0, 2))].map((w) => w.toLowerCase());
  const terms = [...new Set(Array.from({ length: Math.floor(r.next() * 3) }, () => r.pick(words)))];
  // Now and then the whole query is an existing hostname or a piece of one (ranking tiers 0 and 2).
  const hostname = agents.size && r.next() < 0.25 ? r.pick([...agents.values()]).hostname : undefined;
  const phrase = hostname ? (r.next() < 0.5 ? hostname : hostname.slice(0, 3)) : terms.join(" ");
  return {
    phrase,
    terms: hostname ? [phrase] : terms,
    capabilities: [
      ...new Set(Array.from({ length: Math.floor(r.next() * 3) }, () => r.pick([...CAPABILITIES, "none"]))),
    ],
    match: r.next() < 0.5 ? "any" : "all",
    seenSince: r.next() < 0.5 ? undefined : Math.floor(r.next() * 100),
    limit: 1 + Math.floor(r.next() * 10),
    offset: Math.floor(r.next() * 6),
  };
}

describe("SearchIndex", () => {
  for (const seed of [1, 2, 3]) {
    it(`agrees with the reference rules through adds, replacements, removals and heartbeats (seed ${seed})`, () => {
      const r = prng(seed * 7919);
      const index = new SearchIndex();
      const agents = new Map<number, IndexedAgent>();
      let nextSeq = 1;
      let queries = 0;
      for (let step = 0; step < 2500; step++) {
        const roll = r.next();
        if (roll < 0.4 || agents.size < 20) {
          const seq = agents.size && r.next() < 0.15 ? r.pick([...agents.keys()]) : nextSeq++;
          const agent = randomAgent(r, step);
          agents.set(seq, agent);
          index.add(seq, agent);
        } else if (roll < 0.5) {
          const seq = r.pick([...agents.keys()]);
          agents.delete(seq);
          index.remove(seq);
        } else if (roll < 0.6) {
          const seq = r.pick([...agents.keys()]);
          const lastSeen = Math.floor(r.next() * 100);
          agents.get(seq)!.lastSeen = lastSeen;
          index.touch(seq, lastSeen);
        } else {
          const q = randomQuery(r, agents);
          expect(index.search(q), JSON.stringify(q)).toEqual(reference(agents, q));
          queries++;
        }
      }
      expect(index.size).toBe(agents.size);
      expect(queries).toBeGreaterThan(500);
    });
  }

  it("loads in bulk (strings shared in chunks) to the same answers, and keeps them through later changes", () => {
    const r = prng(42);
    const agents = new Map<number, IndexedAgent>();
    const entries: Array<[number, IndexedAgent]> = [];
    // Long descriptions, so the records fill several chunks; seq 7 comes twice (the later one counts).
    for (let seq = 1; seq <= 1500; seq++) {
      const agent = randomAgent(r, seq);
      agent.description = `${agent.description ?? ""} ${"padding ".repeat(40)}`;
      agents.set(seq, agent);
      entries.push([seq, agent]);
      if (seq === 7) entries.push([7, { ...agent, id: "replaced-7" }]);
    }
    agents.set(7, { ...agents.get(7)!, id: "replaced-7" });
    const bulk = new SearchIndex();
    bulk.load(entries);
    expect(bulk.size).toBe(1500);
    for (let n = 0; n < 100; n++) {
      const q = randomQuery(r, agents);
      expect(bulk.search(q), JSON.stringify(q)).toEqual(reference(agents, q));
    }
    for (let seq = 1; seq <= 1500; seq += 3) {
      if (seq % 2) {
        bulk.remove(seq);
        agents.delete(seq);
      } else {
        const agent = randomAgent(r, seq + 10_000);
        bulk.add(seq, agent);
        agents.set(seq, agent);
      }
    }
    for (let n = 0; n < 100; n++) {
      const q = randomQuery(r, agents);
      expect(bulk.search(q), JSON.stringify(q)).toEqual(reference(agents, q));
    }
  });
});

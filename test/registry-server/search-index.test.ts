// SearchIndex against a plain reference of the search rules (filter every agent, sort them all): random
// agents are added, replaced, removed and touched, and every random query must give the same page and total.
import { describe, expect, it } from "vitest";
import { type IndexedAgent, type IndexQuery, SearchIndex } from "../../src/registry-server/search-index.js";
import { searchTextOf } from "../../src/registry-server/search-words.js";

/** The rules as the docs state them, with no index: what SearchIndex must agree with. */
function reference(
  agents: Map<number, IndexedAgent>,
  q: IndexQuery,
): { seqs: number[]; total: number; exact: boolean } {
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
  return {
    seqs: ranked.slice(q.offset, q.offset + q.limit).map((r) => r.seq),
    total: ranked.length,
    exact: true,
  };
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

  it("walks a broad query's candidates one by one to the same answers when the walk reaches the end", () => {
    // exactWork 0 sends every query down the sampled path; a sample larger than any list lets it finish.
    const r = prng(5);
    const index = new SearchIndex({ exactWork: 0, sample: 1_000_000 });
    const agents = new Map<number, IndexedAgent>();
    for (let seq = 1; seq <= 800; seq++) {
      const agent = randomAgent(r, seq);
      agents.set(seq, agent);
      index.add(seq, agent);
    }
    for (let seq = 1; seq <= 800; seq += 7) {
      index.remove(seq);
      agents.delete(seq);
    }
    for (let n = 0; n < 400; n++) {
      const q = randomQuery(r, agents);
      const hostnameSeq = [...agents].find(([, agent]) => agent.hostname === q.phrase)?.[0];
      expect(index.search(q, { hostnameSeq }), JSON.stringify(q)).toEqual(reference(agents, q));
    }
  });

  describe("past the bound", () => {
    const r = prng(9);
    const agents = new Map<number, IndexedAgent>();
    const index = new SearchIndex({ exactWork: 100, sample: 50 });
    for (let seq = 1; seq <= 4000; seq++) {
      const agent = randomAgent(r, seq);
      agents.set(seq, agent);
      index.add(seq, agent);
    }
    const broad = (over: Partial<IndexQuery>): IndexQuery => ({
      phrase: "",
      terms: [],
      capabilities: [],
      match: "any",
      limit: 10,
      offset: 0,
      ...over,
    });

    it("estimates the total, says so, and pages only agents that match, in ranking order", () => {
      for (const q of [
        broad({ phrase: "alpha", terms: ["alpha"] }),
        broad({ capabilities: ["code", "beta"] }),
        broad({ phrase: "al", terms: ["al"], capabilities: ["x"], match: "any" }),
        broad({}),
      ]) {
        const page = index.search(q);
        const full = reference(agents, { ...q, limit: agents.size, offset: 0 });
        expect(page.exact, JSON.stringify(q)).toBe(false);
        expect(page.seqs).toHaveLength(10);
        // Every agent on the page matches, and they come in the order the full ranking puts them.
        const rank = new Map(full.seqs.map((seq, at) => [seq, at]));
        const ranks = page.seqs.map((seq) => rank.get(seq));
        expect(ranks.every((at) => at !== undefined)).toBe(true);
        expect([...ranks].sort((a, b) => a! - b!)).toEqual(ranks);
        // A sample of 50 of several hundred: within a third of the truth.
        expect(Math.abs(page.total - full.total)).toBeLessThan(full.total / 3);
      }
    });

    it("keeps exact totals for narrow queries and for walks that reach the end of their source", () => {
      // One agent's number: a handful of postings.
      const narrow = broad({ phrase: "3999", terms: ["3999"], capabilities: ["c++"], match: "any" });
      expect(index.search(narrow)).toEqual(reference(agents, narrow));
      // Broad words that rarely meet, and a page they do not fill: the walk goes on to the end of its
      // source (under 16 samples), so it is exact.
      const rare = broad({
        phrase: "zeta 100%",
        terms: ["zeta", "100%"],
        capabilities: ["bot"],
        match: "all",
        limit: 50,
      });
      const page = index.search(rare);
      expect(page).toEqual(reference(agents, rare));
    });

    it("still ranks the exact hostname and exact capability holders first", () => {
      const [seq, named] = [...agents].find(([, agent]) => agent.hostname.startsWith("alpha-"))!;
      const byName = broad({ phrase: named.hostname, terms: [named.hostname] });
      expect(index.search(byName, { hostnameSeq: seq }).seqs[0]).toBe(seq);
      // "beta" is a capability of hundreds of agents: the page is those holding it, best ids first.
      const q = broad({ phrase: "beta", terms: ["beta"] });
      const page = index.search(q);
      expect(page.exact).toBe(false);
      for (const s of page.seqs) expect(agents.get(s)!.capabilities).toContain("beta");
    });

    it("answers the same page twice (a stable order while nothing changes)", () => {
      const q = broad({ phrase: "code", terms: ["code"], offset: 5 });
      expect(index.search(q)).toEqual(index.search(q));
    });
  });
});

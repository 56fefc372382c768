import { describe, expect, it } from "vitest";
import { rankCandidates, type SearchCandidate } from "../../src/registry-server/search-candidates.js";
import { startsWord } from "../../src/registry-server/search-words.js";
import { searchQuery } from "./records.js";

const query = searchQuery;

let nextSeq = 1;
const candidate = (over: Partial<SearchCandidate>): SearchCandidate => {
  const seq = nextSeq++;
  const hostname = over.hostname ?? `agent-${seq}`;
  const capabilities = over.capabilities ?? [];
  return {
    seq,
    id: `id-${String(seq).padStart(4, "0")}`,
    hostname,
    capabilities,
    lastSeen: 1000,
    searchText: [hostname, ...capabilities].join("\n"),
    sampled: true,
    ...over,
  };
};

describe("startsWord", () => {
  it("finds a word's prefix at the start of the text or after anything but a letter or digit", () => {
    expect(startsWord("alpha-bot\nhelps", "bot")).toBe(true);
    expect(startsWord("alpha-bot\nhelps", "hel")).toBe(true);
    expect(startsWord("alpha-bot\nhelps", "alp")).toBe(true);
    expect(startsWord("robot", "bot")).toBe(false);
    // A later occurrence counts when an earlier one sits inside a word.
    expect(startsWord("robot bot", "bot")).toBe(true);
  });

  it("treats letters of every script, and astral ones, as word characters", () => {
    expect(startsWord("éclair", "clair")).toBe(false);
    expect(startsWord("日本語", "本")).toBe(false);
    expect(startsWord("𝒜bc", "bc")).toBe(false); // U+1D49C is a letter (a surrogate pair)
    expect(startsWord("😀bc", "bc")).toBe(true); // an emoji is not
    expect(startsWord("x·ray", "ray")).toBe(true);
  });
});

describe("rankCandidates", () => {
  it("ranks the exact hostname, then exact capabilities, then the hostname, then the rest; then by id", () => {
    const rest = candidate({ searchText: "z\nworks with translate tools" });
    const inHostname = candidate({ hostname: "translate-bot" });
    const capability = candidate({ capabilities: ["translate"] });
    const exact = candidate({ hostname: "translate" });
    const ranked = rankCandidates(
      query({ phrase: "translate", terms: ["translate"] }),
      ["translate"],
      [rest, inHostname, capability, exact],
    );
    expect(ranked.page).toEqual([exact.seq, capability.seq, inHostname.seq, rest.seq]);
    expect(ranked).toMatchObject({ found: 4, examined: 4, matched: 4 });
  });

  it("checks every word, verbatim terms, capabilities and liveness, and counts sampled matches apart", () => {
    const both = candidate({ searchText: "c++ tutor\nalpha-bot", capabilities: ["code"] });
    const wordOnly = candidate({ searchText: "c tutor", capabilities: ["code"] });
    const offline = candidate({ searchText: "c++ tutor", capabilities: ["code"], lastSeen: 1 });
    const picked = candidate({ searchText: "c++ tutor", capabilities: ["code"], sampled: false });
    const ranked = rankCandidates(
      query({ phrase: "c++ tutor", terms: ["c++", "tutor"], capabilities: ["code"], seenSince: 500 }),
      ["c", "tutor"],
      [both, wordOnly, offline, picked],
    );
    expect(ranked.page).toEqual([both.seq, picked.seq]);
    expect(ranked).toMatchObject({ found: 2, examined: 3, matched: 1 });
  });

  it("trusts a sampled candidate's source word without its text, and checks the others", () => {
    const sampled = candidate({ searchText: undefined });
    const picked = candidate({ searchText: "nothing here", sampled: false });
    const ranked = rankCandidates(
      query({ phrase: "legal", terms: ["legal"] }),
      ["legal"],
      [sampled, picked],
      "legal",
    );
    expect(ranked.page).toEqual([sampled.seq]);
  });

  it("puts more of the asked capabilities first for match=any, and requires all for match=all", () => {
    const one = candidate({ capabilities: ["a"] });
    const two = candidate({ capabilities: ["a", "b"] });
    expect(rankCandidates(query({ capabilities: ["a", "b"] }), [], [one, two]).page).toEqual([
      two.seq,
      one.seq,
    ]);
    expect(rankCandidates(query({ capabilities: ["a", "b"], match: "all" }), [], [one, two]).page).toEqual([
      two.seq,
    ]);
  });

  it("pages by offset and limit over one ranking", () => {
    const all = Array.from({ length: 5 }, () => candidate({}));
    const ranked = rankCandidates(query({ offset: 2, limit: 2 }), [], all);
    expect(ranked.page).toEqual([all[2]!.seq, all[3]!.seq]);
    expect(ranked.found).toBe(5);
  });
});

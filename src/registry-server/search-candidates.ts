// Checks and ranks a bounded set of candidate agents against a search query, with the rules of the in-memory
// index (search-index.ts): the PostgreSQL store reads its candidates' rows (a sample of its most selective source,
// plus the ranking's first tiers) and ranks them here, so that its search statements keep a few fixed shapes that
// each connection plans once, instead of one large statement planned anew for every search (3-4 ms at 1,000,000
// agents, more than running it).
import { isPlainWord, startsWord } from "./search-words.js";
import type { AgentSearchQuery } from "./store.js";

/** One candidate agent: the columns a search checks and ranks by. */
export interface SearchCandidate {
  seq: number;
  id: string;
  hostname: string;
  capabilities: readonly string[];
  lastSeen: number;
  /**
   * Lowercase hostname, display name, description and capabilities (searchTextOf); left out (undefined) only
   * when nothing is left to check in it: a sampled candidate of a one-word query.
   */
  searchText: string | undefined;
  /** From the driver's sample (its match rate estimates the total); false for a hostname or capability tier pick. */
  sampled: boolean;
}

export interface RankedCandidates {
  /** Seqs of the requested page (offset, limit), in rank order. */
  page: number[];
  /** Candidates that match the query. */
  found: number;
  /** Sampled candidates, and those of them that match. */
  examined: number;
  matched: number;
}

/**
 * The candidates that match `query` (online, every word starting a word of theirs, verbatim terms, capabilities),
 * ranked: the exact hostname (tier 0), a capability equal to the phrase or one of its terms (1), the phrase within
 * the hostname (2), the rest (3); then more of the asked capabilities first (match=any with several); then id.
 * `words` are the query's words; a sampled candidate is known to start `sampledWord` (its source's word) already.
 * Each seq comes at most once (the caller merges a candidate that several sources named).
 */
export function rankCandidates(
  query: AgentSearchQuery,
  words: readonly string[],
  candidates: Iterable<SearchCandidate>,
  sampledWord?: string,
): RankedCandidates {
  const verbatim = query.terms.filter((term) => !isPlainWord(term));
  const caps = query.capabilities;
  const all = query.match === "all";
  const countHits = caps.length > 1 && !all;
  const phrase = query.phrase;
  const tierWords = new Set(phrase ? [phrase, ...query.terms] : []);
  const matches: Array<{ seq: number; id: string; tier: number; hits: number }> = [];
  let examined = 0;
  let matched = 0;
  for (const c of candidates) {
    if (c.sampled) examined++;
    if (query.seenSince !== undefined && c.lastSeen < query.seenSince) continue;
    const text = c.searchText ?? "";
    if (!words.every((w) => (c.sampled && w === sampledWord) || startsWord(text, w))) continue;
    if (!verbatim.every((term) => text.includes(term))) continue;
    if (
      caps.length &&
      !(all ? caps.every((x) => c.capabilities.includes(x)) : caps.some((x) => c.capabilities.includes(x)))
    )
      continue;
    let tier = 3;
    if (phrase) {
      if (c.hostname === phrase) tier = 0;
      else if (c.capabilities.some((x) => tierWords.has(x))) tier = 1;
      else if (c.hostname.includes(phrase)) tier = 2;
    }
    const hits = countHits ? c.capabilities.filter((x) => caps.includes(x)).length : 0;
    matches.push({ seq: c.seq, id: c.id, tier, hits });
    if (c.sampled) matched++;
  }
  matches.sort((a, b) => a.tier - b.tier || b.hits - a.hits || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    page: matches.slice(query.offset, query.offset + query.limit).map((m) => m.seq),
    found: matches.length,
    examined,
    matched,
  };
}

// In-memory search index over agents (rebuilt from the store at start, updated on every write). Search
// over 100k agents needs an exact `total` and a ranked page even when a word matches a third of them,
// which SQL joins did too slowly: here a query walks only the postings of its most selective word, and
// liveness, capability filters and ranking read flat per-agent data. Word semantics: every word of `q` must
// be a prefix of a word of the agent (hostname, display name, description, capabilities, split at
// punctuation); a word with punctuation must also appear verbatim, so `alpha-bot`, `100%`, `c++` are text.

export interface IndexedAgent {
  id: string;
  hostname: string;
  displayName: string | null;
  description: string | null;
  capabilities: string[];
  lastSeen: number;
}

export interface IndexQuery {
  phrase: string;
  terms: string[];
  capabilities: string[];
  match: "any" | "all";
  seenSince?: number;
  limit: number;
  offset: number;
}

interface Doc {
  seq: number;
  id: string;
  hostname: string;
  capabilities: string[];
  /** Lowercase searchable text; words are re-derived from it (cheaper than keeping a token array each). */
  text: string;
  lastSeen: number;
}

const WORD = /[\p{L}\p{N}]+/gu;
const isPlainWord = (term: string) => /^[\p{L}\p{N}]+$/u.test(term);

/**
 * Lowercase words of an agent. Whole hyphenated hostnames are deliberately not tokens: they would put
 * thousands of entries in the prefix range of common words; `alpha-bot` is found through `alpha`, `bot` and
 * the verbatim check instead.
 */
function tokensOf(text: string): string[] {
  return [...new Set<string>(text.match(WORD) ?? [])];
}

export const searchTextOf = (agent: IndexedAgent): string =>
  [agent.hostname, agent.displayName ?? "", agent.description ?? "", ...agent.capabilities]
    .join("\n")
    .toLowerCase();

/** Index of the first element >= key in a sorted string array. */
function lowerBound(sorted: string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class SearchIndex {
  readonly #docs: (Doc | undefined)[] = [];
  readonly #seqById = new Map<string, number>();
  readonly #seqByHostname = new Map<string, number>();
  /** Word -> seqs holding it. Arrays, not Sets: most words belong to one agent, and arrays are far smaller. */
  readonly #postings = new Map<string, number[]>();
  /** Every token, sorted, for prefix ranges; kept sorted by binary insertion (new tokens are rare). */
  readonly #vocabulary: string[] = [];
  readonly #byCapability = new Map<string, Set<number>>();
  readonly #capabilityNames = new Map<string, string>();
  #size = 0;
  #bulk = false;

  get size(): number {
    return this.#size;
  }

  /**
   * Adds many agents at once (loading at start): the vocabulary is sorted once at the end instead of by
   * one insertion per new word, which would be quadratic in the number of distinct words.
   */
  load(entries: Iterable<[number, IndexedAgent]>): void {
    this.#bulk = true;
    try {
      for (const [seq, agent] of entries) this.add(seq, agent);
    } finally {
      this.#bulk = false;
      // A loop, not a spread: 100k+ words would overflow the argument limit of splice().
      this.#vocabulary.length = 0;
      for (const token of this.#postings.keys()) this.#vocabulary.push(token);
      this.#vocabulary.sort();
    }
  }

  add(seq: number, agent: IndexedAgent): void {
    this.remove(seq);
    const text = searchTextOf(agent);
    const doc: Doc = {
      seq,
      id: agent.id,
      hostname: agent.hostname,
      // Share one string per capability name across agents (a few hundred names, 100k agents).
      capabilities: agent.capabilities.map((c) => this.#capabilityNames.get(c) ?? c),
      text,
      lastSeen: agent.lastSeen,
    };
    this.#docs[seq] = doc;
    this.#seqById.set(agent.id, seq);
    this.#seqByHostname.set(agent.hostname, seq);
    this.#size++;
    for (const token of tokensOf(text)) {
      const list = this.#postings.get(token);
      if (list) list.push(seq);
      else {
        this.#postings.set(token, [seq]);
        if (!this.#bulk) this.#vocabulary.splice(lowerBound(this.#vocabulary, token), 0, token);
      }
    }
    for (const capability of doc.capabilities) {
      let set = this.#byCapability.get(capability);
      if (!set) {
        set = new Set();
        this.#byCapability.set(capability, set);
        this.#capabilityNames.set(capability, capability);
      }
      set.add(seq);
    }
  }

  remove(seq: number): void {
    const doc = this.#docs[seq];
    if (!doc) return;
    this.#docs[seq] = undefined;
    this.#seqById.delete(doc.id);
    if (this.#seqByHostname.get(doc.hostname) === seq) this.#seqByHostname.delete(doc.hostname);
    this.#size--;
    for (const token of tokensOf(doc.text)) {
      const list = this.#postings.get(token);
      if (!list) continue;
      const at = list.indexOf(seq);
      if (at >= 0) {
        list[at] = list[list.length - 1]!;
        list.pop();
      }
      if (list.length === 0) {
        this.#postings.delete(token);
        const at = lowerBound(this.#vocabulary, token);
        if (this.#vocabulary[at] === token) this.#vocabulary.splice(at, 1);
      }
    }
    for (const capability of doc.capabilities) {
      const set = this.#byCapability.get(capability);
      set?.delete(seq);
      if (set?.size === 0) {
        this.#byCapability.delete(capability);
        this.#capabilityNames.delete(capability);
      }
    }
  }

  touch(id: string, lastSeen: number): void {
    const seq = this.#seqById.get(id);
    if (seq !== undefined) this.#docs[seq]!.lastSeen = lastSeen;
  }

  /** Posting sets of every token starting with `prefix`. */
  #prefixPostings(prefix: string): number[][] {
    const sets: number[][] = [];
    for (let i = lowerBound(this.#vocabulary, prefix); i < this.#vocabulary.length; i++) {
      const token = this.#vocabulary[i]!;
      if (!token.startsWith(prefix)) break;
      sets.push(this.#postings.get(token)!);
    }
    return sets;
  }

  /** Matching agents' seqs for one page, best first, and the exact total. */
  search(query: IndexQuery): { seqs: number[]; total: number } {
    // Each q word: its word-tokens must prefix-match agent tokens; punctuation means a verbatim check too.
    const wordTokens = query.terms.map((term) => term.match(WORD) ?? []);
    const verbatim = query.terms.filter((term) => !isPlainWord(term));
    const allTokens = [...new Set(wordTokens.flat())];

    // Candidates come from the most selective source: the rarest query token, else the capability filter.
    let candidates: Iterable<number> | undefined;
    let best = Number.POSITIVE_INFINITY;
    let bestToken: string | undefined;
    let bestSets: number[][] = [];
    for (const token of allTokens) {
      const sets = this.#prefixPostings(token);
      const size = sets.reduce((n, s) => n + s.length, 0);
      if (size === 0) return { seqs: [], total: 0 };
      if (size < best) {
        best = size;
        bestToken = token;
        bestSets = sets;
      }
    }
    if (bestToken !== undefined) candidates = bestSets.length === 1 ? bestSets[0]! : unionOf(bestSets);
    const caps = query.capabilities;
    if (caps.length) {
      const capSets = caps.map((c) => this.#byCapability.get(c) ?? new Set<number>());
      const capSize =
        query.match === "all"
          ? Math.min(...capSets.map((s) => s.size))
          : capSets.reduce((n, s) => n + s.size, 0);
      if (capSize < best) {
        best = capSize;
        bestToken = undefined;
        candidates =
          query.match === "all"
            ? capSets.reduce((a, b) => (a.size <= b.size ? a : b))
            : capSets.length === 1
              ? capSets[0]!
              : unionOf(capSets);
      }
    }
    const otherTokens = allTokens.filter((t) => t !== bestToken);
    // Per-query lookups so the per-agent loop does set probes, not scans.
    const exactSeq = query.phrase ? this.#seqByHostname.get(query.phrase) : undefined;
    const capabilityHit = new Set<number>();
    if (query.phrase) {
      for (const word of new Set([query.phrase, ...query.terms])) {
        for (const seq of this.#byCapability.get(word) ?? []) capabilityHit.add(seq);
      }
    }
    const countHits = caps.length > 1 && query.match === "any";
    const since = query.seenSince ?? Number.NEGATIVE_INFINITY;
    const heap = new TopK(query.offset + query.limit);
    let total = 0;

    const consider = (doc: Doc | undefined) => {
      if (!doc || doc.lastSeen < since) return;
      for (const token of otherTokens) if (!hasWordStartingWith(doc.text, token)) return;
      for (const term of verbatim) if (!doc.text.includes(term)) return;
      let capHits = 0;
      if (caps.length) {
        for (const c of caps) if (doc.capabilities.includes(c)) capHits++;
        if (query.match === "all" ? capHits < caps.length : capHits === 0) return;
      }
      total++;
      let tier = 3;
      if (query.phrase) {
        if (doc.seq === exactSeq) tier = 0;
        else if (capabilityHit.has(doc.seq)) tier = 1;
        else if (doc.hostname.includes(query.phrase)) tier = 2;
      }
      heap.offer(tier, countHits ? capHits : 0, doc);
    };

    if (candidates) for (const seq of candidates) consider(this.#docs[seq]);
    else for (const doc of this.#docs) consider(doc);
    return {
      seqs: heap
        .sorted()
        .slice(query.offset)
        .map((e) => e.seq),
      total,
    };
  }
}

const WORD_CHAR = /[\p{L}\p{N}]/u;

/** Whether some word of `text` starts with `prefix` (an occurrence not preceded by a word character). */
function hasWordStartingWith(text: string, prefix: string): boolean {
  for (let at = text.indexOf(prefix); at >= 0; at = text.indexOf(prefix, at + 1)) {
    if (at === 0 || !WORD_CHAR.test(text[at - 1]!)) return true;
  }
  return false;
}

function unionOf(sets: Iterable<number>[]): Set<number> {
  const out = new Set<number>();
  for (const set of sets) for (const seq of set) out.add(seq);
  return out;
}

interface Ranked {
  tier: number;
  capHits: number;
  id: string;
  seq: number;
}

/** Ranking order: lower tier, more capability hits, then id (a stable tie-break). */
const before = (a: Ranked, b: Ranked) =>
  a.tier !== b.tier ? a.tier < b.tier : a.capHits !== b.capHits ? a.capHits > b.capHits : a.id < b.id;

/** The k best entries (a bounded max-heap keyed by `before`), so a broad match never sorts everything. */
class TopK {
  readonly #heap: Ranked[] = [];
  constructor(readonly k: number) {}

  /** Keeps the agent if it ranks among the k best; allocates only then. */
  offer(tier: number, capHits: number, doc: { id: string; seq: number }): void {
    const heap = this.#heap;
    if (heap.length >= this.k) {
      const root = heap[0]!;
      const better =
        tier !== root.tier
          ? tier < root.tier
          : capHits !== root.capHits
            ? capHits > root.capHits
            : doc.id < root.id;
      if (!better) return;
    }
    const entry: Ranked = { tier, capHits, id: doc.id, seq: doc.seq };
    if (heap.length < this.k) {
      heap.push(entry);
      let i = heap.length - 1;
      while (i > 0) {
        const parent = (i - 1) >>> 1;
        if (!before(heap[parent]!, heap[i]!)) break;
        [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
        i = parent;
      }
      return;
    }
    heap[0] = entry;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let worst = i;
      if (l < heap.length && before(heap[worst]!, heap[l]!)) worst = l;
      if (r < heap.length && before(heap[worst]!, heap[r]!)) worst = r;
      if (worst === i) break;
      [heap[worst], heap[i]] = [heap[i]!, heap[worst]!];
      i = worst;
    }
  }

  sorted(): Ranked[] {
    return [...this.#heap].sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
  }
}

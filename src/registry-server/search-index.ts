// In-memory search index over agents (rebuilt from the store at start, updated on every write). Search
// over 100k agents needs an exact `total` and a ranked page even when a word matches a third of them,
// which SQL joins did too slowly: here a query walks only the postings of its most selective source, and
// liveness, the other words, capability filters and ranking read flat per-agent columns (typed arrays
// indexed by seq) and per-query marks, so a broad word costs a few array reads per match, no allocation.
// Word semantics: every word of `q` must be a prefix of a word of the agent (hostname, display name,
// description, capabilities, split at punctuation); a word with punctuation must also appear verbatim, so
// `alpha-bot`, `100%`, `c++` are text.

import { isPlainWord, startsWord, WORD, wordsOf } from "./search-words.js";
import { SortedWords } from "./sorted-words.js";
import type { AgentSearchQuery } from "./store.js";

export interface IndexedAgent {
  id: string;
  hostname: string;
  displayName: string | null;
  description: string | null;
  capabilities: string[];
  lastSeen: number;
}

/** The store's search query (see AgentSearchQuery for the word semantics). */
export type IndexQuery = AgentSearchQuery;

// An agent's tokens are the words of its search text (search-words.ts). Whole hyphenated hostnames are
// deliberately not tokens: they would put thousands of entries in the prefix range of common words; `alpha-bot`
// is found through `alpha`, `bot` and the verbatim check instead.

/**
 * A number ordered like the first three UTF-16 units of `id` (17 bits each, 0 = no unit), so the ranking's
 * id tie-break compares numbers and reads the id strings only on equal keys.
 */
function idKeyOf(id: string): number {
  let key = 0;
  for (let i = 0; i < 3; i++) key = key * 0x20000 + (i < id.length ? id.charCodeAt(i) + 1 : 0);
  return key;
}

/**
 * 64 bits (two 32-bit halves) with one bit per pair of adjacent UTF-16 units of `text`, hashed. A string that
 * contains `phrase` holds every bit of the phrase's mask, so a hostname lacking one bit cannot contain it and
 * the ranking skips reading it; the mask of a one-unit phrase is empty and filters nothing.
 */
function pairMask(text: string, out: Uint32Array, at: number): void {
  let lo = 0;
  let hi = 0;
  for (let i = 1; i < text.length; i++) {
    const bit = Math.imul(text.charCodeAt(i - 1) * 65599 + text.charCodeAt(i), 0x9e3779b1) >>> 26;
    if (bit < 32) lo |= 1 << bit;
    else hi |= 1 << (bit - 32);
  }
  out[at] = lo;
  out[at + 1] = hi;
}

/** Whether `joined` (names joined by line feeds) holds `name` as one of its lines, read in place. */
function joinedHas(joined: string, name: string): boolean {
  for (let at = joined.indexOf(name); at >= 0; at = joined.indexOf(name, at + 1)) {
    const end = at + name.length;
    if (
      (at === 0 || joined.charCodeAt(at - 1) === 10) &&
      (end === joined.length || joined.charCodeAt(end) === 10)
    ) {
      return true;
    }
  }
  return false;
}

/** A growable list of seqs in an Int32Array: 4 bytes an entry, read by plain indexed loops. */
class SeqList {
  seqs: Int32Array;
  length = 0;

  constructor(capacity = 4) {
    this.seqs = new Int32Array(capacity);
  }

  push(seq: number): void {
    if (this.length === this.seqs.length) {
      // Long lists (a common word holds a fifth of all agents) grow by a quarter: doubling would leave up to
      // half of each unused, tens of MiB at 1,000,000 agents.
      const room = this.seqs.length;
      const seqs = new Int32Array(room < 4096 ? room * 2 : room + (room >>> 2));
      seqs.set(this.seqs);
      this.seqs = seqs;
    }
    this.seqs[this.length++] = seq;
  }

  /** Removes one occurrence (order does not matter: lists are only ever walked in full). */
  remove(seq: number): void {
    const seqs = this.seqs;
    for (let i = 0; i < this.length; i++) {
      if (seqs[i] !== seq) continue;
      seqs[i] = seqs[--this.length]!;
      // Give memory back when a list has shrunk to a quarter of its room.
      if (this.seqs.length > 16 && this.length < this.seqs.length / 4) {
        this.seqs = this.seqs.slice(0, this.seqs.length / 2);
      }
      return;
    }
  }
}

/**
 * Agents holding a word: one seq held as a number (most words, e.g. the numbers in hostnames, belong to one
 * agent), else a SeqList.
 */
type Posting = number | SeqList;

/**
 * Per-seq marks for one query at a time. A query takes a fresh range of values (`take`), so nothing is
 * cleared between queries; the array is zeroed only when the counter would overflow.
 */
class Marks {
  values = new Uint32Array(1024);
  #next = 1;

  /** The first of `n` consecutive values no seq holds yet. */
  take(n: number): number {
    if (this.#next + n >= 0xffff_ffff) {
      this.values.fill(0);
      this.#next = 1;
    }
    const base = this.#next;
    this.#next += n;
    return base;
  }

  grow(capacity: number): void {
    if (capacity <= this.values.length) return;
    const next = new Uint32Array(capacity);
    next.set(this.values);
    this.values = next;
  }
}

/** Chunks are cut once this long: V8 allocates a string of 128 KiB or more outside the young generation. */
const CHUNK_UNITS = 1 << 17;

/**
 * The strings of every agent as one record each, read back as slices: the id, then the searchable text,
 * which is the lowercase hostname, a line feed, the capability names joined by line feeds, a line feed, and
 * the lowercase display name and description. Hostname and capabilities are slices of the text, so no
 * string is held twice (about 80 bytes an agent, 80 MiB at 1,000,000 agents). While loading, records are joined into shared chunks of at least CHUNK_UNITS: loading 100k
 * agents as ~400 bytes of small strings each made V8 promote them all through the young generation, which
 * grew it to its maximum (128 MiB) and kept it so for the life of the process. A chunk lives while any of its
 * agents is unchanged; agents added or changed later get a record of their own.
 */
class AgentStrings {
  /** Record or chunk holding seq's strings; undefined when seq is absent. */
  readonly #chunks: (string | undefined)[] = [];
  #start = new Int32Array(1024);
  /** Lengths of id, hostname, capabilities and the rest: seq's four at 4 * seq. */
  #lengths = new Int32Array(4096);
  #pending: number[] = [];
  #pendingUnits = 0;

  grow(end: number, capacity: number): void {
    while (this.#chunks.length < end) this.#chunks.push(undefined);
    if (capacity <= this.#start.length) return;
    const start = new Int32Array(capacity);
    start.set(this.#start);
    this.#start = start;
    const lengths = new Int32Array(4 * capacity);
    lengths.set(this.#lengths);
    this.#lengths = lengths;
  }

  set(seq: number, fields: [id: string, hostname: string, capabilities: string, rest: string]): void {
    // join, not +: concatenation would keep a rope of the strings.
    this.#chunks[seq] = [fields[0], fields[1], "\n", fields[2], "\n", fields[3]].join("");
    this.#start[seq] = 0;
    for (let i = 0; i < 4; i++) this.#lengths[4 * seq + i] = fields[i]!.length;
  }

  /** Like set, and the record joins the next shared chunk (bulk loading). */
  setShared(seq: number, fields: [id: string, hostname: string, capabilities: string, rest: string]): void {
    this.set(seq, fields);
    this.#pending.push(seq);
    this.#pendingUnits += this.#chunks[seq]!.length;
    if (this.#pendingUnits >= CHUNK_UNITS) this.flushShared();
  }

  flushShared(): void {
    // A seq added twice while loading is pending twice; one deleted since is gone.
    const seqs = [...new Set(this.#pending)].filter((seq) => this.#chunks[seq] !== undefined);
    this.#pending = [];
    this.#pendingUnits = 0;
    const chunk = seqs.map((seq) => this.#chunks[seq]!).join("");
    let at = 0;
    for (const seq of seqs) {
      const length = this.#chunks[seq]!.length;
      this.#chunks[seq] = chunk;
      this.#start[seq] = at;
      at += length;
    }
  }

  delete(seq: number): void {
    this.#chunks[seq] = undefined;
  }

  has(seq: number): boolean {
    return this.#chunks[seq] !== undefined;
  }

  #field(seq: number, field: number): string {
    // Fields after the hostname come after a line feed each.
    let from = this.#start[seq]! + (field >= 2 ? field - 1 : 0);
    for (let i = 0; i < field; i++) from += this.#lengths[4 * seq + i]!;
    return this.#chunks[seq]!.slice(from, from + this.#lengths[4 * seq + field]!);
  }

  id(seq: number): string {
    return this.#field(seq, 0);
  }

  hostname(seq: number): string {
    return this.#field(seq, 1);
  }

  /** The capability names joined by line feeds. */
  capabilities(seq: number): string {
    return this.#field(seq, 2);
  }

  /** The whole searchable text (hostname, capabilities, display name, description), lowercase. */
  text(seq: number): string {
    const at = 4 * seq;
    const from = this.#start[seq]! + this.#lengths[at]!;
    return this.#chunks[seq]!.slice(
      from,
      from + this.#lengths[at + 1]! + this.#lengths[at + 2]! + this.#lengths[at + 3]! + 2,
    );
  }

  hostnameIs(seq: number, hostname: string): boolean {
    return (
      this.#lengths[4 * seq + 1] === hostname.length &&
      this.#chunks[seq]!.startsWith(hostname, this.#start[seq]! + this.#lengths[4 * seq]!)
    );
  }

  /** Whether seq a's id sorts before seq b's (compared in place, no slices). */
  idBefore(a: number, b: number): boolean {
    const chunkA = this.#chunks[a]!;
    const chunkB = this.#chunks[b]!;
    const startA = this.#start[a]!;
    const startB = this.#start[b]!;
    const lengthA = this.#lengths[4 * a]!;
    const lengthB = this.#lengths[4 * b]!;
    for (let i = 0; i < lengthA && i < lengthB; i++) {
      const unitA = chunkA.charCodeAt(startA + i);
      const unitB = chunkB.charCodeAt(startB + i);
      if (unitA !== unitB) return unitA < unitB;
    }
    return lengthA < lengthB;
  }
}

interface QueryWord {
  token: string;
  /** Posting lists of every token the word is a prefix of (a seq may be in several). */
  lists: SeqList[];
  size: number;
}

/**
 * Postings a query may walk for an exact answer (its words' and capabilities' list lengths summed); a broader
 * one is answered from a sample (see SearchIndex.search). At 1,000,000 agents a common word holds ~190,000
 * postings, ~100 ms to walk in full; 8 clients at once on one event loop need ~1 ms per query for a 10 ms p50.
 */
const EXACT_WORK = 20_000;
/** Candidates a sampled query examines (more while its page is not full, up to SAMPLE_MAX_FACTOR times). */
const SAMPLE = 512;
const SAMPLE_MAX_FACTOR = 16;

export interface SearchIndexOptions {
  /** See EXACT_WORK (tests make it small). */
  exactWork?: number;
  /** See SAMPLE. */
  sample?: number;
}

/** What the store knows cheaply and the index does not keep: the seq of the agent named by the phrase. */
export interface SearchHint {
  hostnameSeq?: number;
}

export interface IndexPage {
  /** One page of matching seqs, best first. */
  seqs: number[];
  /** How many agents match: exact when `exact`, else estimated from a sample. */
  total: number;
  /**
   * False when the query was too broad to walk in full: the total is an estimate, and the page ranks the
   * sampled candidates (plus every exact hostname and the first SAMPLE holders of an exact capability).
   */
  exact: boolean;
}

export class SearchIndex {
  // Columns by seq (seqs are the store's dense row ids).
  /**
   * Id and the lowercase searchable text (hostname and capabilities first, as slices of their own; for
   * ranking, verbatim terms, per-agent word checks when cheaper, and the words to unindex).
   */
  readonly #strings = new AgentStrings();
  #lastSeen = new Float64Array(1024);
  #idKeys = new Float64Array(1024);
  /** pairMask of each hostname: seq's two halves at 2 * seq. */
  #hostnameMasks = new Uint32Array(2048);
  #end = 0;

  readonly #postings = new Map<string, Posting>();
  /** Every token in order, for prefix ranges (chunked, so a new token costs O(log V), not O(V)). */
  readonly #vocabulary = new SortedWords();
  readonly #byCapability = new Map<string, SeqList>();
  #size = 0;
  #bulk = false;

  // Scratch of one search (searches are synchronous, so one set serves them all).
  /** Word filter chain: a seq that passed the i-th stamped word holds base + i. */
  readonly #wordMarks = new Marks();
  /** Capability hits: base + how many of the query's capabilities the seq holds. */
  readonly #capMarks = new Marks();
  /** Holds an exact capability equal to the phrase or a word of it (ranking tier 1). */
  readonly #tierMarks = new Marks();
  #candidates = new Int32Array(1024);

  get size(): number {
    return this.#size;
  }

  readonly #exactWork: number;
  readonly #sample: number;

  constructor(options: SearchIndexOptions = {}) {
    this.#exactWork = options.exactWork ?? EXACT_WORK;
    this.#sample = options.sample ?? SAMPLE;
  }

  /**
   * Adds many agents at once (loading at start, one slice at a time): their strings are joined into shared
   * chunks. Entries may repeat a seq or overlap earlier adds (the last one counts).
   */
  load(entries: Iterable<[number, IndexedAgent]>): void {
    this.#bulk = true;
    try {
      for (const [seq, agent] of entries) this.add(seq, agent);
    } finally {
      this.#bulk = false;
      this.#strings.flushShared();
    }
  }

  #grow(seq: number): void {
    if (seq < this.#end) return;
    this.#end = seq + 1;
    let capacity = this.#lastSeen.length;
    while (capacity < this.#end) capacity *= 2;
    this.#strings.grow(this.#end, capacity);
    if (capacity === this.#lastSeen.length) return;
    const lastSeen = new Float64Array(capacity);
    lastSeen.set(this.#lastSeen);
    this.#lastSeen = lastSeen;
    const idKeys = new Float64Array(capacity);
    idKeys.set(this.#idKeys);
    this.#idKeys = idKeys;
    const hostnameMasks = new Uint32Array(2 * capacity);
    hostnameMasks.set(this.#hostnameMasks);
    this.#hostnameMasks = hostnameMasks;
    this.#wordMarks.grow(capacity);
    this.#capMarks.grow(capacity);
    this.#tierMarks.grow(capacity);
    this.#candidates = new Int32Array(capacity);
  }

  add(seq: number, agent: IndexedAgent): void {
    this.remove(seq);
    this.#grow(seq);
    // Capability names can hold no line feed (control characters are refused), so the joined list is exact.
    const capabilities = [...new Set(agent.capabilities.map((name) => name.toLowerCase()))].filter(Boolean);
    for (const name of capabilities) {
      let list = this.#byCapability.get(name);
      if (!list) {
        list = new SeqList();
        this.#byCapability.set(name, list);
      }
      list.push(seq);
    }
    const fields: [string, string, string, string] = [
      agent.id,
      agent.hostname.toLowerCase(),
      capabilities.join("\n"),
      [agent.displayName ?? "", agent.description ?? ""].join("\n").toLowerCase(),
    ];
    if (this.#bulk) this.#strings.setShared(seq, fields);
    else this.#strings.set(seq, fields);
    const text = this.#strings.text(seq);
    this.#lastSeen[seq] = agent.lastSeen;
    this.#idKeys[seq] = idKeyOf(agent.id);
    pairMask(agent.hostname, this.#hostnameMasks, 2 * seq);
    this.#size++;
    for (const token of wordsOf(text)) {
      const posting = this.#postings.get(token);
      if (posting === undefined) {
        this.#postings.set(token, seq);
        this.#vocabulary.add(token);
      } else if (typeof posting === "number") {
        const list = new SeqList();
        list.push(posting);
        list.push(seq);
        this.#postings.set(token, list);
      } else posting.push(seq);
    }
  }

  remove(seq: number): void {
    const strings = this.#strings;
    if (!strings.has(seq)) return;
    const text = strings.text(seq);
    const joined = strings.capabilities(seq);
    const capabilities = joined ? joined.split("\n") : [];
    strings.delete(seq);
    this.#size--;
    for (const token of wordsOf(text)) {
      const posting = this.#postings.get(token);
      if (posting === undefined) continue;
      if (typeof posting !== "number") {
        posting.remove(seq);
        if (posting.length === 1) this.#postings.set(token, posting.seqs[0]!);
        if (posting.length > 0) continue;
      } else if (posting !== seq) continue;
      this.#postings.delete(token);
      this.#vocabulary.delete(token);
    }
    for (const name of capabilities) {
      const list = this.#byCapability.get(name);
      if (!list) continue;
      list.remove(seq);
      if (list.length === 0) this.#byCapability.delete(name);
    }
  }

  /** Whether the agent at `seq` is in the index. */
  has(seq: number): boolean {
    return this.#strings.has(seq);
  }

  lastSeenOf(seq: number): number {
    return this.#lastSeen[seq]!;
  }

  /** Records a heartbeat of the agent at `seq` (no-op when absent). */
  touch(seq: number, lastSeen: number): void {
    if (this.#strings.has(seq)) this.#lastSeen[seq] = lastSeen;
  }

  /** The posting lists of every token starting with `prefix`; single-agent tokens gathered into one list. */
  #word(token: string): QueryWord {
    const lists: SeqList[] = [];
    let singles: SeqList | undefined;
    let size = 0;
    this.#vocabulary.withPrefix(token, (word) => {
      const posting = this.#postings.get(word)!;
      if (typeof posting === "number") {
        singles ??= new SeqList(16);
        singles.push(posting);
        size++;
      } else {
        lists.push(posting);
        size += posting.length;
      }
    });
    if (singles) lists.push(singles);
    return { token, lists, size };
  }

  /**
   * Matching agents' seqs for one page, best first, and the total. A query whose postings sum to at most
   * `exactWork` walks them all: exact page, exact total. A broader one examines its candidates in posting
   * order and stops after `sample` of them once its page is full (see #sampled).
   */
  search(query: IndexQuery, hint: SearchHint = {}): IndexPage {
    // Each q word: its word-tokens must prefix-match agent tokens; punctuation means a verbatim check too.
    const verbatim = query.terms.filter((term) => !isPlainWord(term));
    const words: QueryWord[] = [];
    for (const token of new Set(query.terms.flatMap((term) => term.match(WORD) ?? []))) {
      const word = this.#word(token);
      if (word.size === 0) return { seqs: [], total: 0, exact: true };
      words.push(word);
    }
    words.sort((a, b) => a.size - b.size);

    // Capability filter: every capability's list adds one to its agents' counts.
    const caps = query.capabilities;
    const capLists: SeqList[] = [];
    let capSize = 0;
    for (const capability of caps) {
      const list = this.#byCapability.get(capability);
      if (list) {
        capLists.push(list);
        capSize += list.length;
      } else if (query.match === "all") return { seqs: [], total: 0, exact: true };
    }
    if (caps.length && capLists.length === 0) return { seqs: [], total: 0, exact: true };
    let work = capSize;
    for (const word of words) work += word.size;
    if (words.length === 0 && caps.length === 0) work = this.#size;
    if (work > this.#exactWork) return this.#sampled(query, words, capLists, verbatim, hint);
    const capNeed = query.match === "all" ? caps.length : 1;
    const capBase = caps.length ? this.#capMarks.take(caps.length + 1) : 0;
    const capTop = capBase + caps.length;
    const capValues = this.#capMarks.values;

    // Candidates come from the most selective source: the rarest query word, else the capability filter.
    const driver = words[0];
    const capsDrive = caps.length > 0 && (!driver || capSize < driver.size);
    const candidates = this.#candidates;
    let count = 0;
    for (const list of capLists) {
      const seqs = list.seqs;
      for (let i = 0; i < list.length; i++) {
        const seq = seqs[i]!;
        const value = capValues[seq]!;
        if (value >= capBase && value < capTop) capValues[seq] = value + 1;
        else {
          capValues[seq] = capBase + 1;
          if (capsDrive) candidates[count++] = seq;
        }
      }
    }

    // Other words: stamp their postings into a chain of marks when that is cheaper than checking the text
    // of each candidate; a candidate passed them all when it holds the last level.
    const driverSize = capsDrive ? count : (driver?.size ?? this.#end);
    const chained: QueryWord[] = [];
    const textChecked: string[] = [];
    for (const word of words) {
      if (word === driver && !capsDrive) continue;
      // A stamp is a sequential read and one array write; a text check slices and scans a whole text:
      // stamping wins up to many times the candidates.
      if (word.size <= 64 * driverSize) chained.push(word);
      else textChecked.push(word.token);
    }
    const wordBase = this.#wordMarks.take(chained.length + 2);
    const wordValues = this.#wordMarks.values;
    for (let level = 0; level < chained.length; level++) {
      const from = wordBase + level;
      for (const list of chained[level]!.lists) {
        const seqs = list.seqs;
        for (let i = 0; i < list.length; i++) {
          const seq = seqs[i]!;
          const value = wordValues[seq]!;
          if (level === 0 ? value < wordBase : value === from) wordValues[seq] = from + 1;
        }
      }
    }
    const wordsPassed = wordBase + chained.length;

    // Ranking lookups made once per query, so the per-agent loop does array reads, not scans.
    const phrase = query.phrase;
    const tierMark = this.#tierMarks.take(1);
    const tierValues = this.#tierMarks.values;
    if (phrase) {
      for (const word of new Set([phrase, ...query.terms])) {
        const list = this.#byCapability.get(word);
        if (list) for (let i = 0; i < list.length; i++) tierValues[list.seqs[i]!] = tierMark;
      }
    }
    const phraseMask = new Uint32Array(2);
    pairMask(phrase, phraseMask, 0);
    const [maskLo, maskHi] = phraseMask as unknown as [number, number];
    const hostnameMasks = this.#hostnameMasks;
    const countHits = caps.length > 1 && query.match === "any";
    const since = query.seenSince ?? Number.NEGATIVE_INFINITY;
    const strings = this.#strings;
    const idKeys = this.#idKeys;
    const heap = new TopK(query.offset + query.limit, strings, idKeys);
    const lastSeen = this.#lastSeen;
    let total = 0;

    const consider = (seq: number): void => {
      if (lastSeen[seq]! < since) return;
      let capHits = 0;
      if (caps.length) {
        const value = capValues[seq]!;
        capHits = value >= capBase && value <= capTop ? value - capBase : 0;
        if (capHits < capNeed) return;
      }
      if (textChecked.length || verbatim.length) {
        const text = strings.text(seq);
        for (const token of textChecked) if (!startsWord(text, token)) return;
        for (const term of verbatim) if (!text.includes(term)) return;
      }
      total++;
      let tier = 3;
      if (phrase) {
        // Tier 0 (the exact hostname) and tier 2 (in the hostname) both need the phrase's pairs in it.
        const inHostname =
          (maskLo & ~hostnameMasks[2 * seq]!) === 0 && (maskHi & ~hostnameMasks[2 * seq + 1]!) === 0;
        if (inHostname && strings.hostnameIs(seq, phrase)) tier = 0;
        else if (tierValues[seq] === tierMark) tier = 1;
        else if (inHostname && strings.hostname(seq).includes(phrase)) tier = 2;
      }
      const hits = countHits ? capHits : 0;
      // Most matches of a broad word rank below a full page: reject them here, before a call.
      if (
        heap.full &&
        (tier > heap.worstTier ||
          (tier === heap.worstTier &&
            (hits < heap.worstHits || (hits === heap.worstHits && idKeys[seq]! > heap.worstKey))))
      ) {
        return;
      }
      heap.offer(tier, hits, seq);
    };

    if (capsDrive) {
      for (let i = 0; i < count; i++) {
        const seq = candidates[i]!;
        if (chained.length === 0 || wordValues[seq] === wordsPassed) consider(seq);
      }
    } else if (driver && chained.length === 0 && driver.lists.length === 1) {
      // One list (the usual whole-word query) holds each seq once: no marks needed.
      const list = driver.lists[0]!;
      const seqs = list.seqs;
      for (let i = 0; i < list.length; i++) consider(seqs[i]!);
    } else if (driver) {
      // A seq can sit in several lists of the driver's prefix range: the mark lets it through once.
      for (const list of driver.lists) {
        const seqs = list.seqs;
        for (let i = 0; i < list.length; i++) {
          const seq = seqs[i]!;
          const value = wordValues[seq]!;
          if (chained.length === 0 ? value < wordBase : value === wordsPassed) {
            wordValues[seq] = wordsPassed + 1;
            consider(seq);
          }
        }
      }
    } else {
      for (let seq = 0; seq < this.#end; seq++) if (strings.has(seq)) consider(seq);
    }
    return { seqs: heap.sortedSeqs().slice(query.offset), total, exact: true };
  }

  /**
   * A broad query: candidates come from its most selective source (the rarest word, the smallest capability
   * list for `all`, every capability list for `any`, else every agent), examined one by one in posting order
   * (each checked against the other words through its text and the capabilities through its packed names,
   * instead of stamping whole lists) until `sample` were examined and the page is full, or
   * SAMPLE_MAX_FACTOR * `sample` were. The exact hostname (from the hint) and the first `sample` holders of
   * a capability equal to the phrase or a word (ranking tiers 0 and 1) are considered first, so a broad
   * query still finds what it names. A walk that reaches the end of the source is exact; otherwise the
   * total is the sample's match rate times the source's length.
   */
  #sampled(
    query: IndexQuery,
    words: QueryWord[],
    capLists: SeqList[],
    verbatim: string[],
    hint: SearchHint,
  ): IndexPage {
    const caps = query.capabilities;
    const all = query.match === "all";
    const capNeed = all ? caps.length : 1;
    const countHits = caps.length > 1 && !all;
    let source: SeqList[] | undefined;
    let sourceSize = 0;
    let sourceWord: QueryWord | undefined;
    if (caps.length && all) {
      const smallest = capLists.reduce((a, b) => (b.length < a.length ? b : a));
      source = [smallest];
      sourceSize = smallest.length;
    } else if (caps.length) {
      source = capLists;
      for (const list of capLists) sourceSize += list.length;
    }
    if (words.length && (!source || words[0]!.size < sourceSize)) {
      sourceWord = words[0]!;
      source = sourceWord.lists;
      sourceSize = sourceWord.size;
    }
    // Candidates of the walk hold the source word; those considered first are checked against every word.
    const otherWords = words.filter((word) => word !== sourceWord).map((word) => word.token);
    const allWords = words.map((word) => word.token);
    const phrase = query.phrase;
    const tierWords = phrase ? [...new Set([phrase, ...query.terms])] : [];
    const since = query.seenSince ?? Number.NEGATIVE_INFINITY;
    const strings = this.#strings;
    const lastSeen = this.#lastSeen;
    const heap = new TopK(query.offset + query.limit, strings, this.#idKeys);

    /** The agent's capability hits when it matches the query (given it holds `checked`), else -1. */
    const hitsOf = (seq: number, checked: string[]): number => {
      if (lastSeen[seq]! < since) return -1;
      let hits = 0;
      if (caps.length) {
        const joined = strings.capabilities(seq);
        for (const capability of caps) if (joinedHas(joined, capability)) hits++;
        if (hits < capNeed) return -1;
      }
      if (checked.length || verbatim.length) {
        const text = strings.text(seq);
        for (const token of checked) if (!startsWord(text, token)) return -1;
        for (const term of verbatim) if (!text.includes(term)) return -1;
      }
      return hits;
    };
    // Ranking lookups as in search(): holders of an exact capability stamped once (a sequential pass over
    // their lists), hostnames read only when their pair mask allows the phrase.
    const tierMark = this.#capMarks.take(1);
    const tierValues = this.#capMarks.values;
    for (const word of tierWords) {
      const list = this.#byCapability.get(word);
      if (list) for (let i = 0; i < list.length; i++) tierValues[list.seqs[i]!] = tierMark;
    }
    const phraseMask = new Uint32Array(2);
    pairMask(phrase, phraseMask, 0);
    const [maskLo, maskHi] = phraseMask as unknown as [number, number];
    const hostnameMasks = this.#hostnameMasks;
    const idKeys = this.#idKeys;
    const offer = (seq: number, hits: number): void => {
      let tier = 3;
      if (phrase) {
        const inHostname =
          (maskLo & ~hostnameMasks[2 * seq]!) === 0 && (maskHi & ~hostnameMasks[2 * seq + 1]!) === 0;
        if (inHostname && strings.hostnameIs(seq, phrase)) tier = 0;
        else if (tierValues[seq] === tierMark) tier = 1;
        else if (inHostname && strings.hostname(seq).includes(phrase)) tier = 2;
      }
      const rank = countHits ? hits : 0;
      if (
        heap.full &&
        (tier > heap.worstTier ||
          (tier === heap.worstTier &&
            (rank < heap.worstHits || (rank === heap.worstHits && idKeys[seq]! > heap.worstKey))))
      ) {
        return;
      }
      heap.offer(tier, rank, seq);
    };

    // Tiers 0 and 1 first: each such agent is offered once, and marked so the walk below does not offer it
    // again (the walk still counts it).
    const offered = this.#tierMarks.take(1);
    const offeredValues = this.#tierMarks.values;
    const early: number[] = [];
    if (hint.hostnameSeq !== undefined && strings.has(hint.hostnameSeq)) early.push(hint.hostnameSeq);
    for (const word of tierWords) {
      const list = this.#byCapability.get(word);
      if (!list) continue;
      for (let i = 0; i < list.length && i < this.#sample; i++) early.push(list.seqs[i]!);
    }
    for (const seq of early) {
      if (offeredValues[seq] === offered) continue;
      offeredValues[seq] = offered;
      const hits = hitsOf(seq, allWords);
      if (hits >= 0) offer(seq, hits);
    }

    const seen = this.#wordMarks.take(1);
    const seenValues = this.#wordMarks.values;
    const stopAt = this.#sample;
    const hardStop = this.#sample * SAMPLE_MAX_FACTOR;
    let examined = 0;
    let matched = 0;
    let complete = true;
    const visit = (seq: number): boolean => {
      if (examined >= stopAt && (heap.full || examined >= hardStop)) {
        complete = false;
        return false;
      }
      examined++;
      if (seenValues[seq] === seen) return true;
      seenValues[seq] = seen;
      const hits = hitsOf(seq, otherWords);
      if (hits < 0) return true;
      matched++;
      if (offeredValues[seq] !== offered) offer(seq, hits);
      return true;
    };
    if (source) {
      walk: for (const list of source) {
        const seqs = list.seqs;
        for (let i = 0; i < list.length; i++) if (!visit(seqs[i]!)) break walk;
      }
    } else {
      sourceSize = this.#size;
      for (let seq = 0; seq < this.#end; seq++) if (strings.has(seq) && !visit(seq)) break;
    }
    const total = complete ? matched : Math.round((matched * sourceSize) / examined);
    return { seqs: heap.sortedSeqs().slice(query.offset), total, exact: complete };
  }
}

/**
 * The k best agents by the ranking order: lower tier, more capability hits, then id (a stable tie-break).
 * A bounded max-heap over parallel arrays, so a broad match never sorts everything and a rejected agent
 * costs a few number comparisons.
 */
class TopK {
  /** Whether k entries are held; then worst* describe the root, the entry a newcomer must beat. */
  full = false;
  worstTier = 0;
  worstHits = 0;
  worstKey = 0;
  readonly #tier: number[] = [];
  readonly #hits: number[] = [];
  readonly #key: number[] = [];
  readonly #seq: number[] = [];

  constructor(
    readonly k: number,
    readonly strings: AgentStrings,
    readonly idKeys: Float64Array,
  ) {}

  /** Whether entry a ranks before entry b (a, b: seqs with their tier, hits). */
  #before(tierA: number, hitsA: number, keyA: number, seqA: number, at: number): boolean {
    const tierB = this.#tier[at]!;
    if (tierA !== tierB) return tierA < tierB;
    const hitsB = this.#hits[at]!;
    if (hitsA !== hitsB) return hitsA > hitsB;
    const keyB = this.#key[at]!;
    if (keyA !== keyB) return keyA < keyB;
    return this.strings.idBefore(seqA, this.#seq[at]!);
  }

  #set(at: number, tier: number, hits: number, key: number, seq: number): void {
    this.#tier[at] = tier;
    this.#hits[at] = hits;
    this.#key[at] = key;
    this.#seq[at] = seq;
  }

  offer(tier: number, hits: number, seq: number): void {
    const size = this.#seq.length;
    const key = this.idKeys[seq]!;
    if (size < this.k) {
      // Sift up: move worse parents down until the new entry's place is found.
      let i = size;
      while (i > 0) {
        const parent = (i - 1) >>> 1;
        if (this.#before(tier, hits, key, seq, parent)) break;
        this.#set(i, this.#tier[parent]!, this.#hits[parent]!, this.#key[parent]!, this.#seq[parent]!);
        i = parent;
      }
      this.#set(i, tier, hits, key, seq);
      if (size + 1 === this.k) this.#noteWorst();
      return;
    }
    if (size === 0 || !this.#before(tier, hits, key, seq, 0)) return;
    // Replace the worst (the root) and sift down.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      let worst = l;
      if (r < size && this.#rootward(l, r)) worst = r;
      // The worse child moves up while the new entry ranks before it.
      if (!this.#before(tier, hits, key, seq, worst)) break;
      this.#set(i, this.#tier[worst]!, this.#hits[worst]!, this.#key[worst]!, this.#seq[worst]!);
      i = worst;
    }
    this.#set(i, tier, hits, key, seq);
    this.#noteWorst();
  }

  #noteWorst(): void {
    this.full = true;
    this.worstTier = this.#tier[0]!;
    this.worstHits = this.#hits[0]!;
    this.worstKey = this.#key[0]!;
  }

  /** Whether the entry at r ranks after the one at l (so r belongs nearer the root of a max-heap). */
  #rootward(l: number, r: number): boolean {
    return this.#before(this.#tier[l]!, this.#hits[l]!, this.#key[l]!, this.#seq[l]!, r);
  }

  sortedSeqs(): number[] {
    const order = this.#seq.map((_, i) => i);
    order.sort((a, b) =>
      this.#before(this.#tier[a]!, this.#hits[a]!, this.#key[a]!, this.#seq[a]!, b)
        ? -1
        : this.#before(this.#tier[b]!, this.#hits[b]!, this.#key[b]!, this.#seq[b]!, a)
          ? 1
          : 0,
    );
    return order.map((i) => this.#seq[i]!);
  }
}

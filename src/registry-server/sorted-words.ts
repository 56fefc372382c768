// The search index's vocabulary: a set of strings kept in order for prefix scans, as a list of sorted chunks
// (a one-level B-tree). One flat sorted array made every new word a splice of the whole vocabulary, O(V) per
// registration (236 us at 1,000,000 agents); here an insert or delete finds its chunk by binary search over
// the chunks' first words and splices one chunk of at most CHUNK_MAX words, and a full chunk splits in two.

/** A chunk splits once it holds more than this many words (a splice moves at most this many pointers). */
const CHUNK_MAX = 512;

/** Index of the first element >= key in a sorted string array. */
function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class SortedWords {
  /** Sorted, non-empty chunks, each sorting after the one before (one empty chunk when the set is empty). */
  #chunks: string[][] = [[]];
  /** Each chunk's first word ("" for an empty first chunk), to find a word's chunk by binary search. */
  #firsts: string[] = [""];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** The chunk that holds `word` or would: the last one whose first word is <= word (else the first). */
  #chunkOf(word: string): number {
    const at = lowerBound(this.#firsts, word);
    if (at < this.#firsts.length && this.#firsts[at] === word) return at;
    return Math.max(0, at - 1);
  }

  has(word: string): boolean {
    const chunk = this.#chunks[this.#chunkOf(word)]!;
    return chunk[lowerBound(chunk, word)] === word;
  }

  /** Adds `word`; returns false when it was there already. */
  add(word: string): boolean {
    const c = this.#chunkOf(word);
    const chunk = this.#chunks[c]!;
    const at = lowerBound(chunk, word);
    if (chunk[at] === word) return false;
    chunk.splice(at, 0, word);
    this.#size++;
    if (at === 0) this.#firsts[c] = word;
    if (chunk.length > CHUNK_MAX) {
      const upper = chunk.splice(chunk.length >>> 1);
      this.#chunks.splice(c + 1, 0, upper);
      this.#firsts.splice(c + 1, 0, upper[0]!);
    }
    return true;
  }

  /** Removes `word`; returns false when it was not there. */
  delete(word: string): boolean {
    const c = this.#chunkOf(word);
    const chunk = this.#chunks[c]!;
    const at = lowerBound(chunk, word);
    if (chunk[at] !== word) return false;
    chunk.splice(at, 1);
    this.#size--;
    if (chunk.length === 0 && this.#chunks.length > 1) {
      this.#chunks.splice(c, 1);
      this.#firsts.splice(c, 1);
    } else if (at === 0) this.#firsts[c] = chunk[0] ?? "";
    return true;
  }

  /** Calls `visit` with every word starting with `prefix`, in order. */
  withPrefix(prefix: string, visit: (word: string) => void): void {
    const first = this.#chunkOf(prefix);
    for (let c = first; c < this.#chunks.length; c++) {
      const chunk = this.#chunks[c]!;
      for (let i = c === first ? lowerBound(chunk, prefix) : 0; i < chunk.length; i++) {
        const word = chunk[i]!;
        if (!word.startsWith(prefix)) return;
        visit(word);
      }
    }
  }

  /** Every word in order (for tests and checks). */
  *[Symbol.iterator](): IterableIterator<string> {
    for (const chunk of this.#chunks) yield* chunk;
  }
}

// Cost of adding one new word to the search vocabulary as it grows (100k / 300k / 1M words): SortedWords
// (chunked, what the index uses) against one sorted array with a binary-search splice (what it used before).
// Run: npx tsx bench/search-vocabulary.bench.ts. Prints one line per size.
import { SortedWords } from "../src/registry-server/sorted-words.js";

for (const V of [100_000, 300_000, 1_000_000]) {
  const words = new SortedWords();
  const flat: string[] = [];
  for (let i = 0; i < V; i++) flat.push(String(i * 2));
  flat.sort();
  for (const w of flat) words.add(w);
  const fresh = Array.from({ length: 5000 }, (_, i) => String(((i * 7919) % V) * 2 + 1));
  let t = performance.now();
  for (const w of fresh) words.add(w);
  const chunked = ((performance.now() - t) * 1000) / fresh.length;
  t = performance.now();
  for (const w of fresh) {
    let lo = 0;
    let hi = flat.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (flat[mid]! < w) lo = mid + 1;
      else hi = mid;
    }
    flat.splice(lo, 0, w);
  }
  const spliced = ((performance.now() - t) * 1000) / fresh.length;
  console.log(`V=${V}: chunked ${chunked.toFixed(2)} us/add, sorted array ${spliced.toFixed(2)} us/add`);
}

// SortedWords (the search index's vocabulary) against a plain sorted array: random words are added and
// deleted in random orders, chunks split and empty out, and every prefix scan must list the same words.
import { describe, expect, it } from "vitest";
import { SortedWords } from "../../src/registry-server/sorted-words.js";

function prng(seed: number) {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

/** Short words over a small alphabet (many shared prefixes), now and then non-ASCII or empty. */
function randomWord(next: () => number): string {
  const letters = ["a", "b", "c", "ab", "z", "é", "日", "1", "0"];
  return Array.from(
    { length: Math.floor(next() * 6) },
    () => letters[Math.floor(next() * letters.length)]!,
  ).join("");
}

const scan = (words: SortedWords, prefix: string): string[] => {
  const seen: string[] = [];
  words.withPrefix(prefix, (word) => seen.push(word));
  return seen;
};

describe("SortedWords", () => {
  it("holds the same ordered words whatever the order they came in", () => {
    const next = prng(11);
    const input = [...new Set(Array.from({ length: 5000 }, () => randomWord(next)))];
    const shuffled = [...input].sort(() => next() - 0.5);
    const a = new SortedWords();
    const b = new SortedWords();
    for (const word of input) a.add(word);
    for (const word of shuffled) b.add(word);
    const sorted = [...input].sort();
    expect([...a]).toEqual(sorted);
    expect([...b]).toEqual(sorted);
    expect(a.size).toBe(input.length);
  });

  it("lists every word with a prefix, in order, across chunk boundaries", () => {
    const words = new SortedWords();
    // 3,000 words under one prefix fill several chunks of 512.
    for (let n = 2999; n >= 0; n--) words.add(`w${n}`);
    words.add("v");
    words.add("x");
    const expected = Array.from({ length: 3000 }, (_, n) => `w${n}`).sort();
    expect(scan(words, "w")).toEqual(expected);
    expect(scan(words, "w1")).toEqual(expected.filter((w) => w.startsWith("w1")));
    expect(scan(words, "")).toEqual(["v", ...expected, "x"]);
    expect(scan(words, "y")).toEqual([]);
    expect(scan(words, "a")).toEqual([]);
  });

  it("adds a word once and deletes only what it holds", () => {
    const words = new SortedWords();
    expect(words.add("alpha")).toBe(true);
    expect(words.add("alpha")).toBe(false);
    expect(words.delete("alp")).toBe(false);
    expect(words.has("alpha")).toBe(true);
    expect(words.delete("alpha")).toBe(true);
    expect(words.has("alpha")).toBe(false);
    expect(words.size).toBe(0);
    expect(scan(words, "")).toEqual([]);
  });

  for (const seed of [1, 2, 3]) {
    it(`agrees with a sorted array through random adds, deletes and prefix scans (seed ${seed})`, () => {
      const next = prng(seed * 104729);
      const words = new SortedWords();
      const reference = new Set<string>();
      for (let step = 0; step < 20_000; step++) {
        const word = randomWord(next);
        const roll = next();
        if (roll < 0.55) expect(words.add(word)).toBe(!reference.has(word));
        else if (roll < 0.9) expect(words.delete(word)).toBe(reference.has(word));
        if (roll < 0.55) reference.add(word);
        else if (roll < 0.9) reference.delete(word);
        else {
          const prefix = word.slice(0, 2);
          expect(scan(words, prefix)).toEqual([...reference].filter((w) => w.startsWith(prefix)).sort());
        }
      }
      expect([...words]).toEqual([...reference].sort());
      expect(words.size).toBe(reference.size);
    });
  }
});

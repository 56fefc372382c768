import { describe, expect, it } from "vitest";
import { startsWord } from "../../src/registry-server/search-words.js";

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

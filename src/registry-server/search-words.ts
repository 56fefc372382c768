// What a search word is, for both stores: an agent's search text is its hostname, display name, description and
// capabilities, lowercased; its words are the runs of letters and digits (any script) in it; a query word must
// start one of them, and a query term with anything else in it (alpha-bot, c++) must also occur verbatim.
import type { StoredAgent } from "./store.js";

/** Runs of letters and digits: the words of a text. */
export const WORD = /[\p{L}\p{N}]+/gu;
const WORD_CHAR = /[\p{L}\p{N}]/u;

/** Whether a query term is one word (else it must also occur verbatim). */
export const isPlainWord = (term: string): boolean => /^[\p{L}\p{N}]+$/u.test(term);

/** The distinct words of `text`. */
export const wordsOf = (text: string): string[] => [...new Set<string>(text.match(WORD) ?? [])];

/** The text an agent is searched by. */
export const searchTextOf = (
  agent: Pick<StoredAgent, "hostname" | "displayName" | "description" | "capabilities">,
): string =>
  [agent.hostname, agent.displayName ?? "", agent.description ?? "", ...agent.capabilities]
    .join("\n")
    .toLowerCase();

/** Whether the character ending just before `at` is a letter or digit (ASCII by comparisons, the rest by regex). */
function wordCharBefore(text: string, at: number): boolean {
  const unit = text.charCodeAt(at - 1);
  if (unit < 0x80) return (unit >= 0x30 && unit <= 0x39) || ((unit | 0x20) >= 0x61 && (unit | 0x20) <= 0x7a);
  // A low surrogate ends a pair that starts one unit earlier (an astral letter such as U+1D49C).
  const start = unit >= 0xdc00 && unit <= 0xdfff && at >= 2 ? at - 2 : at - 1;
  return WORD_CHAR.test(String.fromCodePoint(text.codePointAt(start)!));
}

/** Whether `word` (letters and digits only) starts a word of `text`: an occurrence no letter or digit precedes. */
export function startsWord(text: string, word: string): boolean {
  for (let at = text.indexOf(word); at >= 0; at = text.indexOf(word, at + 1)) {
    if (at === 0 || !wordCharBefore(text, at)) return true;
  }
  return false;
}

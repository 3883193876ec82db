/**
 * Fits an infill's text to a model's canvas with the model's own tokenizer, dropping whole lines from the
 * start of the prefix (at anchor lines where possible, so the cut stays put while the user types: see
 * lineAnchors.ts) and from the end of the suffix. Only as much of each as can matter is tokenized: an end of
 * the prefix (a start of the suffix) that holds more tokens than the whole budget decides the cut, so a
 * megabyte of context costs no more than a few times the canvas.
 */
import { lineStarts, tailCut } from '../../common/lineAnchors';

/** The suffix gets at most this share of the budget when the prefix needs the rest (code before predicts more). */
const SUFFIX_SHARE = 0.25;

export interface FittedContext {
  prefix: string;
  suffix: string;
  /** Characters dropped from the start of the prefix and from the end of the suffix. */
  droppedPrefixChars: number;
  droppedSuffixChars: number;
}

type Tokenize = { count(text: string): number; encode(text: string): number[]; decode(ids: number[]): string };

/**
 * Token counts of each line (its newline included). A BPE pre-tokenizer seldom joins text across a newline, so
 * sums of these estimate any run of whole lines with one pass of encoding; a cut chosen by them is then checked
 * with an exact count.
 */
function lineTokenCounts(text: string, starts: number[], t: Tokenize): number[] {
  return starts.map((start, i) => t.count(text.slice(start, starts[i + 1] ?? text.length)));
}

/** Characters of the first window tried, per token of budget; each further window is WINDOW_GROWTH times longer. */
const WINDOW_CHARS_PER_TOKEN = 4;
const WINDOW_GROWTH = 4;

/**
 * The end of `prefix` from a line start that holds more than `budget` tokens, or all of it. No cut can start
 * before such a window (its tail alone is over budget), and within it every line's tokens and every exact count
 * are those of the whole prefix, so fitting the window gives the cut that fitting the whole prefix would.
 */
function prefixWindow(prefix: string, budget: number, t: Tokenize): string {
  for (let chars = Math.max(budget, 1) * WINDOW_CHARS_PER_TOKEN; chars < prefix.length; chars *= WINDOW_GROWTH) {
    const newline = prefix.lastIndexOf('\n', prefix.length - chars);
    if (newline < 0) break;
    const window = prefix.slice(newline + 1);
    if (t.count(window) > budget) return window;
  }
  return prefix;
}

/** The start of `suffix` up to a line end that holds more than `budget` tokens, or all of it (as prefixWindow). */
function suffixWindow(suffix: string, budget: number, t: Tokenize): string {
  for (let chars = Math.max(budget, 1) * WINDOW_CHARS_PER_TOKEN; chars < suffix.length; chars *= WINDOW_GROWTH) {
    const newline = suffix.indexOf('\n', chars);
    if (newline < 0) break;
    const window = suffix.slice(0, newline + 1);
    if (t.count(window) > budget) return window;
  }
  return suffix;
}

/**
 * The prefix within `budget` tokens: its longest tail that starts at an anchor line; failing that, at any
 * line; failing that (the line at the cursor alone is too long), its last `budget` tokens.
 */
function fitPrefix(prefix: string, budget: number, t: Tokenize): string {
  if (t.count(prefix) <= budget) return prefix;
  const starts = lineStarts(prefix);
  const counts = lineTokenCounts(prefix, starts, t);
  const tail = new Array<number>(starts.length + 1).fill(0);
  for (let i = starts.length - 1; i >= 0; i--) tail[i] = tail[i + 1] + counts[i];
  const start = tailCut(prefix, (offset, line) => tail[line] <= budget && t.count(prefix.slice(offset)) <= budget, starts);
  if (start !== undefined) return prefix.slice(start);
  const ids = t.encode(prefix);
  return budget > 0 ? t.decode(ids.slice(ids.length - budget)) : '';
}

/** The suffix within `budget` tokens: its longest head that ends at a line end, else its first `budget` tokens. */
function fitSuffix(suffix: string, budget: number, t: Tokenize): string {
  if (t.count(suffix) <= budget) return suffix;
  const starts = lineStarts(suffix);
  const counts = lineTokenCounts(suffix, starts, t);
  let end = 0; // lines [0, end) kept
  let estimate = 0;
  while (end < starts.length && estimate + counts[end] <= budget) estimate += counts[end++];
  for (; end > 0; end--) {
    const kept = suffix.slice(0, starts[end] ?? suffix.length);
    if (kept.endsWith('\n') && t.count(kept) <= budget) return kept;
  }
  return budget > 0 ? t.decode(t.encode(suffix).slice(0, budget)) : '';
}

/**
 * Prefix and suffix cut so that their tokens fit `budget` (the model's canvas less the fill and the model's own
 * framing tokens). The suffix keeps at most a quarter of the budget when the prefix needs the rest.
 */
export function fitContext(
  prefix: string,
  suffix: string,
  budget: number,
  tokenizer: { encode(text: string): number[]; decode(ids: number[]): string },
): FittedContext {
  const t: Tokenize = {
    encode: (text) => tokenizer.encode(text),
    decode: (ids) => tokenizer.decode(ids),
    count: (text) => tokenizer.encode(text).length,
  };
  const whole = { prefix, suffix, droppedPrefixChars: 0, droppedSuffixChars: 0 };
  // A window over budget stands for its whole text in every comparison below: all are against `budget` or less.
  const prefixPart = prefixWindow(prefix, budget, t);
  const suffixPart = suffixWindow(suffix, budget, t);
  const prefixTokens = t.count(prefixPart);
  const suffixTokens = t.count(suffixPart);
  if (prefixTokens + suffixTokens <= budget) return whole;
  const suffixBudget = Math.min(suffixTokens, Math.max(budget - prefixTokens, Math.floor(budget * SUFFIX_SHARE)));
  const keptSuffix = fitSuffix(suffixPart, suffixBudget, t);
  const keptPrefix = fitPrefix(prefixPart, budget - t.count(keptSuffix), t);
  return {
    prefix: keptPrefix,
    suffix: keptSuffix,
    droppedPrefixChars: prefix.length - keptPrefix.length,
    droppedSuffixChars: suffix.length - keptSuffix.length,
  };
}

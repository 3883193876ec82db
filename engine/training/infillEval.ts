/**
 * The infill evaluation of `dlm eval`: holes of whole lines cut at seeded random places in held-out files,
 * the context around each hole trimmed to the model's canvas, and the scores of a fill against the truth.
 *
 * A hole is cut as `dlm infill --select-lines` cuts it: the prefix ends at the start of the first line, the
 * hole is the lines' text, and the newline ending the last line stays in the suffix.
 */
import { readFileSync } from 'node:fs';
import { KeyedRandom, RandomStream } from '../denoiser/rng';

export interface EvalFile {
  id: string;
  lang: string;
  licence: string;
  text: string;
}

export type HoleKind = 'one-line' | 'multi-line';

export interface InfillCase {
  file: string;
  kind: HoleKind;
  /** 1-based line of the hole's first line in the file, and how many lines it spans. */
  line: number;
  lines: number;
  prefix: string;
  middle: string;
  suffix: string;
}

export function readEvalFiles(file: string): EvalFile[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => JSON.parse(line) as EvalFile);
}

/** The case sampler's seeded stream in (0, 1), from the denoiser's counter-based generator. */
export function seededRandom(seed: number): () => number {
  const random = new KeyedRandom(seed);
  const key = random.key(RandomStream.order);
  let index = 0;
  return () => random.uniformAt(key, index++);
}

/** Lines worth predicting: some code on them, and not so long that they are data. */
const isFillableLine = (line: string) => line.trim().length >= 2 && line.length <= 160;

/**
 * `count` cases, half one-line holes and half holes of 2-4 lines, cycling through the files in a seeded
 * order; a multi-line hole needs every line fillable-sized and at least two with code.
 */
export function makeCases(files: EvalFile[], count: number, seed: number): InfillCase[] {
  const random = seededRandom(seed);
  const order = files.map((f, i) => ({ f, key: random(), i })).sort((a, b) => a.key - b.key || a.i - b.i);
  const cases: InfillCase[] = [];
  for (let n = 0; cases.length < count && n < count * 20; n++) {
    const { f } = order[n % order.length];
    const kind: HoleKind = cases.length % 2 === 0 ? 'one-line' : 'multi-line';
    const span = kind === 'one-line' ? 1 : 2 + Math.floor(random() * 3);
    const lines = f.text.split('\n');
    const first = 1 + Math.floor(random() * Math.max(1, lines.length - span - 1));
    const hole = lines.slice(first, first + span);
    if (hole.length < span || !hole.every((l) => l.length <= 160) || hole.filter(isFillableLine).length < Math.min(span, 2)) {
      continue;
    }
    const prefix = lines.slice(0, first).join('\n') + '\n';
    const middle = hole.join('\n');
    const suffix = '\n' + lines.slice(first + span).join('\n');
    cases.push({ file: f.id, kind, line: first + 1, lines: span, prefix, middle, suffix });
  }
  return cases;
}

/**
 * The context the canvas can hold: whole lines of prefix (up to `prefixShare` of the room left by the
 * fill) nearest the hole, then whole lines of suffix in what remains. `countTokens` is the model's tokenizer.
 */
export function fitToCanvas(
  c: InfillCase,
  fillTokens: number,
  maxCanvasTokens: number,
  countTokens: (text: string) => number,
  prefixShare = 0.6,
): { prefix: string; suffix: string } {
  const room = maxCanvasTokens - fillTokens;
  const prefixLines = c.prefix.slice(0, -1).split('\n');
  let prefix = '';
  for (let k = prefixLines.length - 1; k >= 0; k--) {
    const candidate = prefixLines.slice(k).join('\n') + '\n';
    if (countTokens(candidate) > Math.floor(room * prefixShare)) break;
    prefix = candidate;
  }
  const suffixRoom = room - countTokens(prefix);
  const suffixLines = c.suffix.slice(1).split('\n');
  let suffix = '';
  for (let k = 1; k <= suffixLines.length; k++) {
    const candidate = '\n' + suffixLines.slice(0, k).join('\n');
    if (countTokens(candidate) > suffixRoom) break;
    suffix = candidate;
  }
  return { prefix, suffix };
}

/** Levenshtein distance over code points, two rows. */
export function editDistance(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const current = [i];
    for (let j = 1; j <= y.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[y.length];
}

/** 1 - normalized Levenshtein: 1 for identical text, 0 for nothing in common (or an empty fill). */
export function characterSimilarity(fill: string, truth: string): number {
  const longest = Math.max(Array.from(fill).length, Array.from(truth).length);
  return longest === 0 ? 1 : 1 - editDistance(fill, truth) / longest;
}

/** Baseline: the hole's lines filled with copies of the lines just above it (the line above, for one line). */
export function repeatLinesAbove(c: InfillCase): string {
  const above = c.prefix.slice(0, -1).split('\n');
  return above.slice(Math.max(0, above.length - c.lines)).join('\n');
}

export interface Scores {
  cases: number;
  /** Percent of fills equal to the truth. */
  exactMatch: number;
  /** Mean character similarity, in percent. */
  similarity: number;
}

export function score(pairs: { fill: string; truth: string }[]): Scores {
  const n = pairs.length;
  const exact = pairs.filter((p) => p.fill === p.truth).length;
  const similarity = pairs.reduce((s, p) => s + characterSimilarity(p.fill, p.truth), 0);
  return {
    cases: n,
    exactMatch: n ? round1((100 * exact) / n) : 0,
    similarity: n ? round1((100 * similarity) / n) : 0,
  };
}

const round1 = (x: number) => Math.round(x * 10) / 10;

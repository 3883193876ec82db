/**
 * The benchmark's canvases: a long prompt with a short fill, and a short prompt with a long fill; for real
 * geometries, an inline completion (the editor's 16-token line fill after about 1k tokens of context).
 */
import type { SpecialTokens } from '../architecture/architecture';

export interface BenchCanvas {
  name: string;
  promptTokens: number;
  genTokens: number;
  steps: number;
}

export const BENCH_CANVASES: readonly BenchCanvas[] = [
  { name: '1024+32', promptTokens: 1024, genTokens: 32, steps: 32 },
  { name: '128+256', promptTokens: 128, genTokens: 256, steps: 256 },
];

export const INLINE_CANVAS: BenchCanvas = { name: '1024+16', promptTokens: 1024, genTokens: 16, steps: 16 };

/**
 * Prompt ids drawn from the ordinary tokens (specials excluded) with a fixed seed; three quarters go
 * before the hole and one quarter after it, as when infilling in the middle of a file.
 */
export function benchPrompt(
  canvas: BenchCanvas,
  vocabSize: number,
  tokens: SpecialTokens,
): { prefixIds: number[]; suffixIds: number[] } {
  const special = new Set([tokens.mask, ...tokens.eos, ...(tokens.pad === null ? [] : [tokens.pad]), ...(tokens.bos === null ? [] : [tokens.bos])]);
  let state = 0x9e3779b9 ^ canvas.promptTokens;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % vocabSize;
  };
  const ids: number[] = [];
  while (ids.length < canvas.promptTokens) {
    const id = next();
    if (!special.has(id)) ids.push(id);
  }
  const prefixLength = Math.round((canvas.promptTokens * 3) / 4);
  return { prefixIds: ids.slice(0, prefixLength), suffixIds: ids.slice(prefixLength) };
}

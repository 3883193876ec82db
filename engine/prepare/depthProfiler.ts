/**
 * The offline depth profiler of BiCache (Go et al. 2026, `bicache_profiler.py`): for a set of prefix ratios r
 * (prefix rows over the whole canvas, masks included), the per-layer cosine similarity of a prefix's K/V
 * computed alone and computed in its full canvas, and the safe depth b(r): the number of leading layers whose
 * similarity is at least the threshold (BiCache: 0.97). Layers below b(r) may reuse a prefix's K/V across
 * requests; the deeper ones are recomputed.
 *
 * Canvases are windows of real source text laid out as at request time: `[prefix][MASK x fill][suffix]`. The
 * measured depths are made monotone in r the conservative way (b(r) = the smallest measured depth at any
 * ratio >= r), so a longer shared prefix never gets a shallower reuse. The profile is written beside the
 * graphs in the model folder, in the format the engine reads at request time (reuse/depthProfile.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromFloat16Array } from '../graph/float16';
import { fullPassFeeds, type KvArray, type StepModel } from '../graph/stepContract';
import { DEPTH_PROFILE_FILE, type DepthProfile, type RatioProfile } from '../reuse/depthProfile';
import { seededRandom } from './sourceTexts';

/** BiCache's similarity threshold (`run_eval.sh`). */
export const BICACHE_THRESHOLD = 0.97;
export const DEFAULT_PROFILE_RATIOS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

export interface ProfileOptions {
  ratios: number[];
  threshold: number;
  /** Canvas length, masks included. */
  canvasTokens: number;
  fillTokens: number;
  samplesPerRatio: number;
  seed: number;
  onProgress?(done: number, total: number): void;
}

/**
 * Profiles `model` on canvases cut from `tokens` (a stream of real source text's token ids) at random offsets.
 */
export async function profileDepth(
  model: StepModel,
  maskId: number,
  tokens: readonly number[],
  options: ProfileOptions,
): Promise<Omit<DepthProfile, 'format' | 'variant' | 'source'>> {
  const { canvasTokens: T, fillTokens: n, samplesPerRatio, threshold } = options;
  if (tokens.length < T) throw new Error(`the source text has ${tokens.length} tokens; a canvas needs ${T}`);
  if (!(samplesPerRatio >= 1)) throw new Error(`samples per ratio must be at least 1, got ${samplesPerRatio}`);
  const prefixLengths = options.ratios.map((r) => {
    const p = Math.round(r * T);
    if (!(r > 0 && r < 1) || p < 1 || p + n > T) {
      throw new Error(`ratio ${r} leaves no prefix or no room for ${n} masks in a canvas of ${T} tokens`);
    }
    return p;
  });
  const random = seededRandom(options.seed);
  const total = options.ratios.length * samplesPerRatio;
  let done = 0;
  const measured: RatioProfile[] = [];
  for (let i = 0; i < options.ratios.length; i++) {
    const p = prefixLengths[i];
    const sums = new Float64Array(model.numLayers);
    for (let sample = 0; sample < samplesPerRatio; sample++) {
      const offset = Math.floor(random() * (tokens.length - T + 1));
      const canvas = tokens.slice(offset, offset + T);
      canvas.fill(maskId, p, p + n);
      const alone = await model.run(fullPassFeeds(model, canvas.slice(0, p)));
      const inContext = await model.run(fullPassFeeds(model, canvas));
      for (let l = 0; l < model.numLayers; l++) {
        const keys = rowCosine(alone.newKeys[l], inContext.newKeys[l], model.numKvHeads, p, T, model.headDim);
        const values = rowCosine(alone.newValues[l], inContext.newValues[l], model.numKvHeads, p, T, model.headDim);
        sums[l] += (keys + values) / 2;
      }
      options.onProgress?.(++done, total);
    }
    const similarity = Array.from(sums, (s) => s / samplesPerRatio);
    let depth = 0;
    while (depth < similarity.length && similarity[depth] >= threshold) depth++;
    measured.push({ ratio: options.ratios[i], similarity, measuredDepth: depth, safeDepth: depth });
  }
  measured.sort((a, b) => a.ratio - b.ratio);
  for (let i = measured.length - 2; i >= 0; i--) measured[i].safeDepth = Math.min(measured[i].measuredDepth, measured[i + 1].safeDepth);
  return {
    threshold,
    canvasTokens: T,
    fillTokens: n,
    samplesPerRatio,
    ratios: measured,
  };
}

export function writeDepthProfile(modelDir: string, profile: DepthProfile): void {
  fs.writeFileSync(path.join(modelDir, DEPTH_PROFILE_FILE), `${JSON.stringify(profile, null, 2)}\n`);
}

/**
 * Mean over rows r < `rows` of the cosine between row r of `a` (`[heads, rows, dim]`) and row r of `b`
 * (`[heads, bRows, dim]`), each row's heads flattened into one vector.
 */
function rowCosine(a: KvArray, b: KvArray, heads: number, rows: number, bRows: number, dim: number): number {
  const x = a instanceof Uint16Array ? fromFloat16Array(a) : a;
  const y = b instanceof Uint16Array ? fromFloat16Array(b) : b;
  let total = 0;
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    let xx = 0;
    let yy = 0;
    for (let h = 0; h < heads; h++) {
      const xi = (h * rows + r) * dim;
      const yi = (h * bRows + r) * dim;
      for (let d = 0; d < dim; d++) {
        dot += x[xi + d] * y[yi + d];
        xx += x[xi + d] * x[xi + d];
        yy += y[yi + d] * y[yi + d];
      }
    }
    total += xx === 0 || yy === 0 ? (xx === yy ? 1 : 0) : dot / Math.sqrt(xx * yy);
  }
  return total / rows;
}

/** Shared by the graph and runtime tests: temporary folders, step feeds, comparisons. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fromFloat16Array, toFloat16Array } from '../../engine/graph/float16';
import { HIDDEN_BIAS, type CacheDtype, type KvArray, type StepFeeds, type StepModel } from '../../engine/graph/stepContract';

export function temporaryDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `dlm-${prefix}-`));
}

export function toCache(values: ArrayLike<number>, dtype: CacheDtype): KvArray {
  const f32 = Float32Array.from(values);
  return dtype === 'float16' ? toFloat16Array(f32) : f32;
}

export function fromCache(values: KvArray): Float32Array {
  return values instanceof Uint16Array ? fromFloat16Array(values) : values;
}

export interface StepCall {
  ids: number[];
  positions: number[];
  read: number[];
  /** Per layer [Hkv, C, D] as float32 (converted to the model's dtype). */
  pastKeys?: Float32Array[];
  pastValues?: Float32Array[];
  /** (query row, key column) pairs to hide; columns index [past ⊕ query]. */
  hidden?: [number, number][];
}

/** The [Q, C+Q] additive bias as the reference wants it (0 visible, -Infinity hidden). */
export function referenceBias(q: number, c: number, hidden: [number, number][] = []): number[][] {
  const bias = Array.from({ length: q }, () => new Array(c + q).fill(0));
  for (const [row, col] of hidden) bias[row][col] = -Infinity;
  return bias;
}

export function stepFeeds(model: StepModel, call: StepCall): StepFeeds {
  const q = call.ids.length;
  const c = call.pastKeys ? call.pastKeys[0].length / (model.numKvHeads * model.headDim) : 0;
  const bias = new Float32Array(q * (c + q));
  for (const [row, col] of call.hidden ?? []) bias[row * (c + q) + col] = HIDDEN_BIAS[model.cacheDtype];
  const empty = new Float32Array(0);
  const layers = Array.from({ length: model.numLayers }, (_, l) => l);
  return {
    inputIds: BigInt64Array.from(call.ids, BigInt),
    positionIds: BigInt64Array.from(call.positions, BigInt),
    attentionBias: toCache(bias, model.cacheDtype),
    logitsIndex: BigInt64Array.from(call.read, BigInt),
    pastKeys: layers.map((l) => toCache(call.pastKeys?.[l] ?? empty, model.cacheDtype)),
    pastValues: layers.map((l) => toCache(call.pastValues?.[l] ?? empty, model.cacheDtype)),
    contextLength: c,
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Rows `rows` (in that order) of a [H, N, D] cache, as [H, rows.length, D]. */
export function takeRows(cache: ArrayLike<number>, heads: number, n: number, d: number, rows: number[]): Float32Array {
  const out = new Float32Array(heads * rows.length * d);
  for (let h = 0; h < heads; h++) {
    rows.forEach((row, i) => {
      for (let k = 0; k < d; k++) out[(h * rows.length + i) * d + k] = cache[(h * n + row) * d + k];
    });
  }
  return out;
}

export function argmaxRows(logits: Float32Array, rows: number, vocab: number): number[] {
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let v = 1; v < vocab; v++) if (logits[r * vocab + v] > logits[r * vocab + best]) best = v;
    return best;
  });
}

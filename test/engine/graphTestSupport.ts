/** Shared by the graph and runtime tests: temporary folders, step feeds, comparisons. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { fromFloat16Array, toFloat16Array } from '../../engine/graph/float16';
import { OnnxGraphBuilder } from '../../engine/graph/onnxWriter';
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

/** `n` uniform values in [-scale, scale) from a fixed linear congruential stream. */
export function seeded(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/**
 * Runs `x` ([m, k], in the graph's dtype) through a graph of one linear layer that `addLinear` lowers, built in
 * memory, and returns the output's raw data.
 */
export async function runOneLinear(
  compute: CacheDtype,
  x: KvArray,
  shape: { m: number; k: number; n: number },
  addLinear: (g: OnnxGraphBuilder, input: string) => string,
): Promise<Float32Array | Uint16Array> {
  const g = new OnnxGraphBuilder('', 'inline', 'one_linear');
  const input = g.input('x', compute, [1, shape.m, shape.k]);
  g.output(addLinear(g, input), compute, [1, shape.m, shape.n]);
  const session = await InferenceSession.create(g.encode({ opset: 17, extraOpsets: { 'com.microsoft': 1 } }));
  try {
    const out = await session.run({ x: new Tensor(compute, x, [1, shape.m, shape.k]) });
    return out[session.outputNames[0]].data as Float32Array | Uint16Array;
  } finally {
    await session.release();
  }
}

/** y = x W^T for x [m, k], W [n, k], in float64. */
export function matmulT(x: Float32Array, w: Float32Array, m: number, n: number, k: number): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let t = 0; t < k; t++) s += x[i * k + t] * w[j * k + t];
    y[i * n + j] = s;
  }
  return y;
}

/**
 * Row-level helpers over K/V tensors laid out `[Hkv, N, D]` and hidden states `[N, H]`, in the graph's
 * activation dtype (fp32 as Float32Array, fp16 as raw half bits): concatenating and copying row blocks, and
 * moving cached keys to new positions (keys are stored after RoPE, and RoPE is a rotation, so a key moved by
 * δ positions is the stored key rotated by δ).
 */
import { fromFloat16Array, toFloat16Array } from '../graph/float16';
import type { CacheDtype, KvArray } from '../graph/stepContract';

export function allocate(dtype: CacheDtype, size: number): KvArray {
  return dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size);
}

/** A block of rows of a `[heads, rows, dim]` tensor. */
export interface RowBlock {
  data: KvArray;
  rows: number;
}

/** `[heads, Σrows, dim]`: the blocks' rows one after another, per head, into `out` (sized for them). */
export function concatRows(out: KvArray, blocks: readonly RowBlock[], heads: number, dim: number): KvArray {
  const total = blocks.reduce((n, b) => n + b.rows, 0);
  const view = out.subarray(0, heads * total * dim);
  for (let h = 0; h < heads; h++) {
    let at = h * total * dim;
    for (const { data, rows } of blocks) {
      if (rows === 0) continue;
      view.set(data.subarray(h * rows * dim, (h + 1) * rows * dim), at);
      at += rows * dim;
    }
  }
  return view;
}

/** out[h, to + i, :] = from[h, rows[i], :] for a `[heads, fromRows, dim]` source and `[heads, toRows, dim]` target. */
export function copyRows(
  from: KvArray,
  fromRows: number,
  rows: ArrayLike<number>,
  out: KvArray,
  toRows: number,
  to: number,
  heads: number,
  dim: number,
): void {
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < rows.length; i++) {
      const src = (h * fromRows + rows[i]) * dim;
      out.set(from.subarray(src, src + dim), (h * toRows + to + i) * dim);
    }
  }
}

/**
 * Keys `[heads, rows, dim]` computed at some positions, as they would be δ positions later: each (i, i + dim/2)
 * pair (rotate_half RoPE) rotated by δ·θ^(-2i/dim). Exact up to rounding for the position part of a key.
 */
export function shiftKeyPositions(keys: KvArray, heads: number, rows: number, dim: number, delta: number, theta: number): KvArray {
  if (delta === 0) return keys;
  const values = keys instanceof Uint16Array ? fromFloat16Array(keys) : Float32Array.from(keys);
  const half = dim / 2;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const angle = delta * Math.pow(theta, (-2 * i) / dim);
    cos[i] = Math.cos(angle);
    sin[i] = Math.sin(angle);
  }
  for (let r = 0; r < heads * rows; r++) {
    const base = r * dim;
    for (let i = 0; i < half; i++) {
      const x1 = values[base + i];
      const x2 = values[base + i + half];
      values[base + i] = x1 * cos[i] - x2 * sin[i];
      values[base + i + half] = x2 * cos[i] + x1 * sin[i];
    }
  }
  return keys instanceof Uint16Array ? toFloat16Array(values) : values;
}

/** The first `rows` rows of a `[heads, total, dim]` tensor (the tensor itself when that is all of them). */
export function leadingRows(data: KvArray, total: number, rows: number, heads: number, dim: number): KvArray {
  if (rows === total) return data;
  const out = data instanceof Uint16Array ? new Uint16Array(heads * rows * dim) : new Float32Array(heads * rows * dim);
  for (let h = 0; h < heads; h++) out.set(data.subarray(h * total * dim, (h * total + rows) * dim), h * rows * dim);
  return out;
}

/**
 * int4 weights for linear layers: com.microsoft MatMulNBits with 4 bits, blocks of 32 along the input axis,
 * symmetric per-block scales and no zero_points input (the op's default zero point is 8). The packing was
 * verified bit-exactly against onnxruntime 1.30 (test/engine/convertInt4.test.ts):
 *
 *   weight as Hugging Face stores it, [N = out, K = in], no transpose;
 *   per row n and block b of 32 along K: scale = max|w| / 7, q = clamp(round(w / scale) + 8, 0, 15);
 *   byte j of a block holds element 2j in the low nibble and element 2j+1 in the high nibble.
 *
 * A K that is not a multiple of 32 is padded with zeros (q = 8) in the last block.
 *
 * `accuracy_level` 4 lets the CPU provider quantise each block of activations to int8 on the fly and multiply
 * in integers (its AVX2 / AVX-512 VNNI kernels); without it the weights are dequantised to the activation
 * dtype and multiplied in floating point.
 */
import { fromFloat16Bits, toFloat16Bits } from './float16';
import type { GraphContext } from './graphContext';
import type { LinearWeights } from './linearWeights';
import type { CacheDtype } from './stepContract';

export const INT4_BLOCK_SIZE = 32;
/** Bytes per block: 32 values of 4 bits. */
const BLOB_BYTES = INT4_BLOCK_SIZE / 2;
const ZERO_POINT = 8;

export interface PackedInt4 {
  /** [N, kBlocks, 16] */
  packed: Uint8Array;
  /** [N, kBlocks], already rounded to the dtype they are stored in. */
  scales: Float32Array;
  n: number;
  k: number;
  kBlocks: number;
}

/**
 * Quantises a `[n, k]` weight. `scaleDtype` is the dtype the scales are stored in: a float16 graph stores
 * float16 scales, so the scale is rounded first and the weights are quantised against the rounded value
 * (what the kernel will multiply by).
 */
export function packInt4(weight: Float32Array, n: number, k: number, scaleDtype: CacheDtype): PackedInt4 {
  if (weight.length !== n * k) throw new Error(`int4 packing: ${weight.length} values for [${n}, ${k}]`);
  const kBlocks = Math.ceil(k / INT4_BLOCK_SIZE);
  const packed = new Uint8Array(n * kBlocks * BLOB_BYTES);
  const scales = new Float32Array(n * kBlocks);
  const q = new Uint8Array(INT4_BLOCK_SIZE);
  for (let row = 0; row < n; row++) {
    const rowStart = row * k;
    for (let block = 0; block < kBlocks; block++) {
      const k0 = block * INT4_BLOCK_SIZE;
      const k1 = Math.min(k0 + INT4_BLOCK_SIZE, k);
      let maxAbs = 0;
      for (let i = k0; i < k1; i++) maxAbs = Math.max(maxAbs, Math.abs(weight[rowStart + i]));
      let scale = maxAbs / 7;
      if (scaleDtype === 'float16') scale = fromFloat16Bits(toFloat16Bits(scale));
      else scale = Math.fround(scale);
      scales[row * kBlocks + block] = scale;
      q.fill(ZERO_POINT);
      if (scale > 0) {
        for (let i = k0; i < k1; i++) {
          const level = Math.round(weight[rowStart + i] / scale) + ZERO_POINT;
          q[i - k0] = level < 0 ? 0 : level > 15 ? 15 : level;
        }
      }
      const blob = (row * kBlocks + block) * BLOB_BYTES;
      for (let j = 0; j < BLOB_BYTES; j++) packed[blob + j] = q[2 * j] | (q[2 * j + 1] << 4);
    }
  }
  return { packed, scales, n, k, kBlocks };
}

/** The weight the kernel computes with: (q - 8) · scale, as `[n, k]` float32. Plain and independent. */
export function dequantizeInt4(p: PackedInt4): Float32Array {
  const out = new Float32Array(p.n * p.k);
  for (let row = 0; row < p.n; row++) {
    for (let col = 0; col < p.k; col++) {
      const block = Math.floor(col / INT4_BLOCK_SIZE);
      const within = col % INT4_BLOCK_SIZE;
      const byte = p.packed[(row * p.kBlocks + block) * BLOB_BYTES + (within >> 1)];
      const level = within % 2 === 0 ? byte & 0x0f : byte >> 4;
      out[row * p.k + col] = (level - ZERO_POINT) * p.scales[row * p.kBlocks + block];
    }
  }
  return out;
}

/** `y = x W^T (+ b)` with W as int4 MatMulNBits; bias added by the caller's shared path. */
export function addMatMulNBits(ctx: GraphContext, input: string, w: LinearWeights): string {
  const p = packInt4(w.weight, w.outFeatures, w.inFeatures, ctx.compute);
  const packed = ctx.g.initializer(`${w.name}.int4`, 'uint8', [p.n, p.kBlocks, BLOB_BYTES], p.packed);
  const scaleData = ctx.compute === 'float16' ? Uint16Array.from(p.scales, (s) => toFloat16Bits(s)) : p.scales;
  const scales = ctx.g.initializer(`${w.name}.scales`, ctx.compute, [p.n, p.kBlocks], scaleData);
  return ctx.g.op('MatMulNBits', [input, packed, scales], {
    domain: 'com.microsoft',
    name: `${w.name}.matmul`,
    attrs: {
      K: { int: p.k },
      N: { int: p.n },
      bits: { int: 4 },
      block_size: { int: INT4_BLOCK_SIZE },
      ...(ctx.int4AccuracyLevel ? { accuracy_level: { int: ctx.int4AccuracyLevel } } : {}),
    },
  });
}

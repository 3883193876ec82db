/**
 * int8 weights for linear layers: com.microsoft DynamicQuantizeMatMul. The weight is stored transposed,
 * `[K = in, N = out]`, as int8 with one symmetric scale per output column (scale = max|w| / 127, q = round(w /
 * scale), no zero point); at run time onnxruntime quantises the activations to uint8 (one scale and zero point
 * per call) and multiplies in integers with its u8s8 GEMM (AVX2 / AVX-512 VNNI on x86, the dot-product kernels on
 * ARM). Unlike MatMulNBits, that GEMM packs its weights once and stays efficient as the rows of a call grow: on
 * the 0.5B geometry's layers on this 2-core machine, 65 rows cost about a quarter of int4 `accuracy_level` 4's
 * time, a 640-row pass a fifth; one row costs about twice as much (twice the bytes to read). README, "The cost
 * of one step".
 *
 * The op takes float32 activations only, so int8 graphs are float32 graphs (the CPU's).
 */
import type { GraphContext } from './graphContext';
import type { LinearWeights } from './linearWeights';

const LEVELS = 127;

export interface QuantizedInt8 {
  /** [K, N], row-major: the transposed weight. */
  quantized: Int8Array;
  /** [N] */
  scales: Float32Array;
  n: number;
  k: number;
}

/** Quantises a `[n, k]` weight (Hugging Face's [out, in]) per output row into the op's `[k, n]` layout. */
export function quantizeInt8(weight: Float32Array, n: number, k: number): QuantizedInt8 {
  if (weight.length !== n * k) throw new Error(`${weight.length} values for [${n}, ${k}]`);
  const quantized = new Int8Array(k * n);
  const scales = new Float32Array(n);
  for (let row = 0; row < n; row++) {
    let max = 0;
    for (let col = 0; col < k; col++) max = Math.max(max, Math.abs(weight[row * k + col]));
    const scale = max / LEVELS;
    scales[row] = scale;
    if (scale === 0) continue;
    for (let col = 0; col < k; col++) quantized[col * n + row] = Math.round(weight[row * k + col] / scale);
  }
  return { quantized, scales, n, k };
}

/** The float weight `[n, k]` the quantised one stands for. */
export function dequantizeInt8(q: QuantizedInt8): Float32Array {
  const out = new Float32Array(q.n * q.k);
  for (let row = 0; row < q.n; row++) {
    for (let col = 0; col < q.k; col++) out[row * q.k + col] = q.quantized[col * q.n + row] * q.scales[row];
  }
  return out;
}

/** `y = x W^T` with W as int8 DynamicQuantizeMatMul; bias added by the caller's shared path. */
export function addDynamicQuantizeMatMul(ctx: GraphContext, input: string, w: LinearWeights): string {
  if (ctx.compute !== 'float32') throw new Error(`${w.name}: int8 weights need float32 activations, not ${ctx.compute}`);
  const q = quantizeInt8(w.weight, w.outFeatures, w.inFeatures);
  const weight = ctx.g.initializer(`${w.name}.int8`, 'int8', [q.k, q.n], q.quantized);
  const scales = ctx.g.initializer(`${w.name}.scales`, 'float32', [q.n], q.scales);
  return ctx.g.op('DynamicQuantizeMatMul', [input, weight, scales], { domain: 'com.microsoft', name: `${w.name}.matmul` });
}

/**
 * The one place a linear layer (q/k/v/o projections, the MLP, the LM head) becomes ONNX nodes, so the weight
 * format decides the lowering in a single spot: fp32/fp16 weights become a MatMul over the transposed matrix,
 * int4 weights a MatMulNBits (`int4.ts`), int8 weights a DynamicQuantizeMatMul (`int8.ts`).
 */
import { toFloat16Array } from './float16';
import { computeTensor, type GraphContext } from './graphContext';
import { addMatMulNBits } from './int4';
import { addDynamicQuantizeMatMul } from './int8';
import type { LinearWeights } from './linearWeights';
import { onnxDataType } from './onnxWriter';

/** `y = x W^T (+ b)` over the last axis of `input`; returns the output value name. */
export function addLinear(ctx: GraphContext, input: string, w: LinearWeights): string {
  if (w.weight.length !== w.outFeatures * w.inFeatures) {
    throw new Error(`${w.name}: ${w.weight.length} values for [${w.outFeatures}, ${w.inFeatures}]`);
  }
  let output: string;
  switch (ctx.precision) {
    case 'fp32':
    case 'fp16':
      output = addDenseMatMul(ctx, input, w);
      break;
    case 'int4':
      output = addMatMulNBits(ctx, input, w);
      break;
    case 'int8':
      output = addDynamicQuantizeMatMul(ctx, input, w);
      break;
  }
  if (!w.bias) return output;
  const bias = computeTensor(ctx, w.bias.name, [w.outFeatures], w.bias.values);
  return ctx.g.op('Add', [output, bias], { name: `${w.name}.add_bias` });
}

function addDenseMatMul(ctx: GraphContext, input: string, w: LinearWeights): string {
  const transposed = transpose(w.weight, w.outFeatures, w.inFeatures);
  const stored = ctx.precision === 'fp16' ? 'float16' : 'float32';
  const data = stored === 'float16' ? toFloat16Array(transposed) : transposed;
  let matrix = ctx.g.initializer(`${w.name}.T`, stored, [w.inFeatures, w.outFeatures], data);
  // Weights stored in a narrower type than the activations are widened once: onnxruntime folds this Cast
  // of a constant when the session is created, so it costs nothing per step.
  if (stored !== ctx.compute) matrix = castTo(ctx, matrix, ctx.compute);
  return ctx.g.op('MatMul', [input, matrix], { name: `${w.name}.matmul` });
}

export function castTo(ctx: GraphContext, value: string, type: 'float32' | 'float16'): string {
  return ctx.g.op('Cast', [value], { attrs: { to: { int: onnxDataType(type) } }, name: `${value}.cast` });
}

/** Row-major `[rows, cols]` to `[cols, rows]`, in tiles so big matrices stay cache-friendly. */
export function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  const tile = 64;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(r0 + tile, rows);
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(c0 + tile, cols);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) out[c * rows + r] = m[r * cols + c];
      }
    }
  }
  return out;
}

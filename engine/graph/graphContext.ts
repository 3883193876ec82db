/**
 * What every piece of the step-graph lowering shares: the graph being built, the model geometry, the
 * activation dtype and the weight precision, plus constants in the activation dtype.
 */
import type { ModelArchitecture } from '../architecture/architecture';
import { toFloat16Array } from './float16';
import type { OnnxGraphBuilder } from './onnxWriter';
import type { CacheDtype, Int4AccuracyLevel, WeightPrecision } from './stepContract';

export interface GraphContext {
  g: OnnxGraphBuilder;
  arch: ModelArchitecture;
  /** Activations, K/V and attention_bias element type. */
  compute: CacheDtype;
  precision: WeightPrecision;
  /** MatMulNBits `accuracy_level` of int4 linear layers. */
  int4AccuracyLevel?: Int4AccuracyLevel;
}

/** Stores `values` as an initializer in the activation dtype under `name` (or a generated name). */
export function computeTensor(ctx: GraphContext, name: string, dims: number[], values: Float32Array, generated = false): string {
  const data = ctx.compute === 'float16' ? toFloat16Array(values) : values;
  return generated ? ctx.g.constant(name, ctx.compute, dims, data) : ctx.g.initializer(name, ctx.compute, dims, data);
}

export function computeScalar(ctx: GraphContext, base: string, value: number): string {
  return computeTensor(ctx, base, [], Float32Array.of(value), true);
}

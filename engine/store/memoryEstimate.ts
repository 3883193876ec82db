/**
 * How much memory a model needs to run one canvas, computed from its geometry: the weights at their precision,
 * the K/V cache of the canvas, and the largest temporaries of a full pass over it (the attention scores of one
 * layer as the decomposed lowering materialises them, the MLP's gate and up projections, and the logits of the
 * rows the fill reads). It is an estimate of what onnxruntime allocates, not a measurement; the model picker's verdicts
 * and the memory guard both use it, so they agree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CacheDtype, WeightPrecision } from '../graph/stepContract';
import { estimateWeightBytes } from '../graph/stepGraphBuilder';
import type { MemoryNeed } from '../../common/protocol';
import type { ModelArchitecture } from '../architecture/architecture';
import type { GraphVariant } from '../model/manifest';

/**
 * The canvas the estimate plans for (or the model's own limit when smaller): the README's K/V figures are for
 * 2,048 tokens, about what the default context (`dlm.contextBytes`, 4 KiB of code) plus a fill comes to with
 * room to spare.
 */
export const PLANNING_CANVAS_TOKENS = 2048;

/**
 * Rows whose logits a step reads, planned for: fills of up to 256 tokens (`dlm.steps`' default; the inline fill
 * lengths are 16 and 32). A longer block fill reads more rows.
 */
export const PLANNING_FILL_TOKENS = 256;

const dtypeBytes = (dtype: CacheDtype) => (dtype === 'float16' ? 2 : 4);

/** Bytes of K and V for `tokens` canvas positions across all layers. */
export function kvCacheBytes(arch: ModelArchitecture, tokens: number, dtype: CacheDtype): number {
  return arch.numLayers * 2 * arch.numKvHeads * arch.headDim * tokens * dtypeBytes(dtype);
}

/** The largest temporaries of one full pass over `tokens` rows (logits in float32, the rest in `dtype`). */
export function activationBytes(arch: ModelArchitecture, tokens: number, dtype: CacheDtype): number {
  const b = dtypeBytes(dtype);
  const attentionScores = arch.numHeads * tokens * tokens * b;
  const mlp = 2 * tokens * arch.intermediateSize * b;
  const logits = Math.min(tokens, PLANNING_FILL_TOKENS) * arch.vocabSize * 4;
  return attentionScores + mlp + logits;
}

export function memoryNeed(
  arch: ModelArchitecture,
  graph: { precision: WeightPrecision; cacheDtype: CacheDtype },
  options: { canvasTokens?: number; weightBytes?: number } = {},
): MemoryNeed {
  const canvasTokens = options.canvasTokens ?? Math.min(PLANNING_CANVAS_TOKENS, arch.maxPositions);
  const weightBytes = options.weightBytes ?? estimateWeightBytes(arch, graph.precision);
  const kv = kvCacheBytes(arch, canvasTokens, graph.cacheDtype);
  const activations = activationBytes(arch, canvasTokens, graph.cacheDtype);
  return {
    precision: graph.precision,
    weightBytes,
    kvCacheBytes: kv,
    activationBytes: activations,
    totalBytes: weightBytes + kv + activations,
    canvasTokens,
  };
}

/** The bytes of a graph variant on disk: its ONNX file, its external data and the segment graphs cut from it. */
export function variantBytes(modelDir: string, variant: GraphVariant): number {
  let bytes = 0;
  for (const name of fs.readdirSync(modelDir)) {
    if (name.startsWith(variant.file)) bytes += fs.statSync(path.join(modelDir, name)).size;
  }
  return bytes;
}

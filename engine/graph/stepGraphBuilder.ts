/**
 * Writes the denoise step graph of `stepContract.ts` for a bidirectional Qwen2-layout transformer (Dream
 * family; LLaDA arrives mapped to the same canonical names, without biases or GQA).
 *
 * Per layer: RMSNorm → q/k/v (+bias) → optional per-head q/k RMSNorm → RoPE → attention over past ⊕ new
 * → o_proj → residual → RMSNorm → SwiGLU MLP → residual. The head gathers the requested rows first, so the
 * final norm and the LM head only run on R rows, then returns fp32 logits or top-k/entropy statistics.
 * Residual adds followed by RMSNorm are left as Add + SimplifiedLayerNormalization, which onnxruntime fuses
 * into SkipSimplifiedLayerNormalization on the providers that have it.
 */
import { WeightNames, expectedWeights, type ModelArchitecture } from '../architecture/architecture';
import { checkWeights, type WeightSource } from '../architecture/weights';
import { addAttention, prepareAttention } from './attention';
import { toFloat16Array } from './float16';
import { computeTensor, type GraphContext } from './graphContext';
import { addLinear, castTo } from './linear';
import { OnnxGraphBuilder, type InitializerPlacement } from './onnxWriter';
import {
  StepInput,
  StepOutput,
  type AttentionLowering,
  type CacheDtype,
  type HeadKind,
  type Int4AccuracyLevel,
  type WeightPrecision,
} from './stepContract';

export interface StepGraphOptions {
  precision: WeightPrecision;
  cacheDtype: CacheDtype;
  attention: AttentionLowering;
  head: HeadKind;
  /** K of the stats head (ignored by the logits head). */
  topK: number;
  /**
   * int4 only: MatMulNBits `accuracy_level` (int4.ts). 4 lets the CPU provider quantise activations to int8 and
   * use its integer kernels (AVX2 / AVX-512 VNNI); absent or 0 computes in the activation dtype.
   */
  int4AccuracyLevel?: Int4AccuracyLevel;
}

export interface StepGraphIo {
  /** `auto` (default): external data once the weights pass EXTERNAL_DATA_THRESHOLD_BYTES; `always`: always. */
  externalData?: 'auto' | 'always';
  /** Called after each weight tensor is written. */
  onProgress?: (done: number, total: number) => void;
  /** Extra `metadata_props` (e.g. special token ids, source hash), added to the `dlm.*` geometry entries. */
  metadata?: Record<string, string>;
}

/** The ONNX protobuf is capped at 2 GB; weights move to `<model>.onnx_data` well before that. */
export const EXTERNAL_DATA_THRESHOLD_BYTES = 1.5 * 1024 ** 3;

/** ai.onnx opset of the step graph; every op used exists there on all execution providers we target. */
export const STEP_GRAPH_OPSET = 17;
export const STEP_GRAPH_CONTRACT = 'denoise-v1';

/** Symbolic dimension names of the step graph's I/O. */
export const StepDims = { query: 'query_rows', context: 'context_rows', keys: 'key_rows', read: 'read_rows' } as const;

/**
 * The residual-stream Add nodes of layer l; each one's single output carries the node's name. The depth-wise
 * segments (engine/prepare/segmentGraphs.ts) cut the step graph at these values, so they are part of the graph's
 * shape, not just labels.
 */
export const ResidualNodes = {
  /** `x + attention(x)`; its first input is the hidden state entering layer l. */
  attention: (layer: number) => `layers.${layer}.attn_residual`,
  /** `x + mlp(x)`; its output is the hidden state leaving layer l. */
  mlp: (layer: number) => `layers.${layer}.mlp_residual`,
} as const;

export function validateStepGraphOptions(arch: ModelArchitecture, options: StepGraphOptions): void {
  const problems: string[] = [];
  if (arch.numHeads % arch.numKvHeads !== 0) problems.push(`numHeads ${arch.numHeads} is not a multiple of numKvHeads ${arch.numKvHeads}`);
  if (arch.headDim % 2 !== 0) problems.push(`headDim ${arch.headDim} must be even for RoPE`);
  if (options.int4AccuracyLevel && options.precision !== 'int4') problems.push('int4AccuracyLevel applies to int4 weights only');
  if (options.precision === 'int8' && options.cacheDtype !== 'float32') problems.push('int8 weights need float32 activations (--cache-dtype float32)');
  if (options.head === 'stats' && !(Number.isInteger(options.topK) && options.topK >= 1 && options.topK <= arch.vocabSize)) {
    problems.push(`topK ${options.topK} must be an integer in 1..${arch.vocabSize}`);
  }
  if (problems.length) throw new Error(`cannot build the step graph: ${problems.join('; ')}`);
}

/** The embedding table is gathered, never multiplied, so int4 and int8 models keep it in fp16. */
function embeddingTableType(precision: WeightPrecision): 'float32' | 'float16' {
  return precision === 'fp32' ? 'float32' : 'float16';
}

/** Size of the weights as written (a tied LM head is written a second time as a linear layer). */
export function estimateWeightBytes(arch: ModelArchitecture, precision: WeightPrecision): number {
  // int4: 4 bits + a scale per 32; int8: 1 byte (+ one scale per output row)
  const linearBytes = { fp32: 4, fp16: 2, int8: 1, int4: 0.5625 }[precision];
  const embeddingBytes = embeddingTableType(precision) === 'float32' ? 4 : 2;
  let bytes = 0;
  for (const [name, shape] of expectedWeights(arch)) {
    const elements = shape.reduce((a, b) => a * b, 1);
    bytes += elements * (name === WeightNames.embedTokens ? embeddingBytes : linearBytes);
  }
  if (arch.tieWordEmbeddings) bytes += arch.vocabSize * arch.hiddenSize * linearBytes;
  return bytes;
}

export function stepGraphMetadata(arch: ModelArchitecture, options: StepGraphOptions): Record<string, string> {
  return {
    'dlm.contract': STEP_GRAPH_CONTRACT,
    'dlm.family': arch.family,
    'dlm.logit_shift': String(arch.logitShift),
    'dlm.num_layers': String(arch.numLayers),
    'dlm.num_heads': String(arch.numHeads),
    'dlm.num_kv_heads': String(arch.numKvHeads),
    'dlm.head_dim': String(arch.headDim),
    'dlm.hidden_size': String(arch.hiddenSize),
    'dlm.vocab_size': String(arch.vocabSize),
    'dlm.rope_theta': String(arch.ropeTheta),
    'dlm.max_position': String(arch.maxPositions),
    'dlm.cache_dtype': options.cacheDtype,
    'dlm.weight_format': options.precision,
    'dlm.attention': options.attention,
    'dlm.head': options.head,
    ...(options.head === 'stats' ? { 'dlm.top_k': String(options.topK) } : {}),
    ...(options.int4AccuracyLevel ? { 'dlm.int4_accuracy_level': String(options.int4AccuracyLevel) } : {}),
  };
}

export async function writeStepGraph(
  arch: ModelArchitecture,
  weights: WeightSource,
  options: StepGraphOptions,
  onnxPath: string,
  io: StepGraphIo = {},
): Promise<void> {
  validateStepGraphOptions(arch, options);
  checkWeights(arch, weights);
  const placement: InitializerPlacement =
    io.externalData === 'always' || estimateWeightBytes(arch, options.precision) > EXTERNAL_DATA_THRESHOLD_BYTES
      ? 'external'
      : 'inline';
  const g = new OnnxGraphBuilder(onnxPath, placement, 'dlm_denoise_step');
  const ctx: GraphContext = { g, arch, compute: options.cacheDtype, precision: options.precision, int4AccuracyLevel: options.int4AccuracyLevel };
  const F = options.cacheDtype;
  const { numLayers, numKvHeads, headDim, hiddenSize, numHeads } = arch;
  const D = StepDims;

  const totalTensors = expectedWeights(arch).size;
  let doneTensors = 0;
  const read = async (name: string): Promise<Float32Array> => {
    const values = await weights.read(name);
    io.onProgress?.(++doneTensors, totalTensors);
    return values;
  };

  const inputIds = g.input(StepInput.inputIds, 'int64', [1, D.query]);
  const positionIds = g.input(StepInput.positionIds, 'int64', [1, D.query]);
  const attentionBias = g.input(StepInput.attentionBias, F, [1, 1, D.query, D.keys]);
  const logitsIndex = g.input(StepInput.logitsIndex, 'int64', [1, D.read]);
  for (let l = 0; l < numLayers; l++) {
    g.input(StepInput.pastKey(l), F, [1, numKvHeads, D.context, headDim]);
    g.input(StepInput.pastValue(l), F, [1, numKvHeads, D.context, headDim]);
  }

  // Embedding: gather rows from the table as stored, then widen only those rows.
  const embedding = await read(WeightNames.embedTokens);
  const tableType = embeddingTableType(options.precision);
  const table = g.initializer(
    WeightNames.embedTokens,
    tableType,
    [arch.vocabSize, hiddenSize],
    tableType === 'float16' ? toFloat16Array(embedding) : embedding,
  );
  let residual = g.op('Gather', [table, inputIds], { name: 'embed' });
  if (tableType !== F) residual = castTo(ctx, residual, F);

  const rmsNorm = async (input: string, weightName: string, name: string): Promise<string> => {
    const scale = computeTensor(ctx, weightName, [hiddenSize], await read(weightName));
    return g.op('SimplifiedLayerNormalization', [input, scale], {
      attrs: { axis: { int: -1 }, epsilon: { float: arch.rmsNormEps }, stash_type: { int: 1 } },
      name,
    });
  };
  const linear = async (input: string, weightName: string, out: number, inp: number, biasName?: string) =>
    addLinear(ctx, input, {
      name: weightName,
      weight: await read(weightName),
      outFeatures: out,
      inFeatures: inp,
      ...(biasName ? { bias: { name: biasName, values: await read(biasName) } } : {}),
    });
  // Qwen3-style per-head RMSNorm over D, applied to [1, Q, n·D] by viewing it as [1, Q, n, D].
  const headNorm = async (input: string, weightName: string, heads: number, name: string): Promise<string> => {
    const scale = computeTensor(ctx, weightName, [headDim], await read(weightName));
    const perHead = g.op('Reshape', [input, g.constInt64('heads_shape', [1, -1, heads, headDim])]);
    const normed = g.op('SimplifiedLayerNormalization', [perHead, scale], {
      attrs: { axis: { int: -1 }, epsilon: { float: arch.rmsNormEps }, stash_type: { int: 1 } },
      name,
    });
    return g.op('Reshape', [normed, g.constInt64('merged_shape', [1, -1, heads * headDim])]);
  };

  const shared = prepareAttention(ctx, options.attention, positionIds, attentionBias);
  for (let l = 0; l < numLayers; l++) {
    const w = WeightNames.layer(l);
    const hidden = await rmsNorm(residual, w.inputNorm, `layers.${l}.input_norm`);
    let query = await linear(hidden, w.qProj, numHeads * headDim, hiddenSize, arch.qkvBias ? w.qBias : undefined);
    let key = await linear(hidden, w.kProj, numKvHeads * headDim, hiddenSize, arch.qkvBias ? w.kBias : undefined);
    const value = await linear(hidden, w.vProj, numKvHeads * headDim, hiddenSize, arch.qkvBias ? w.vBias : undefined);
    if (arch.qkNorm) {
      query = await headNorm(query, w.qNorm, numHeads, `layers.${l}.q_norm`);
      key = await headNorm(key, w.kNorm, numKvHeads, `layers.${l}.k_norm`);
    }
    const attention = addAttention(ctx, shared, {
      layer: l,
      query,
      key,
      value,
      pastKey: StepInput.pastKey(l),
      pastValue: StepInput.pastValue(l),
      newKeyName: StepOutput.newKey(l),
      newValueName: StepOutput.newValue(l),
    });
    const attended = await linear(attention, w.oProj, hiddenSize, numHeads * headDim);
    residual = g.op('Add', [residual, attended], { name: ResidualNodes.attention(l) });

    const mlpInput = await rmsNorm(residual, w.postAttentionNorm, `layers.${l}.post_attention_norm`);
    const gate = await linear(mlpInput, w.gateProj, arch.intermediateSize, hiddenSize);
    const up = await linear(mlpInput, w.upProj, arch.intermediateSize, hiddenSize);
    const activated = g.op('Mul', [gate, g.op('Sigmoid', [gate])], { name: `layers.${l}.mlp.silu` });
    const down = await linear(g.op('Mul', [activated, up]), w.downProj, hiddenSize, arch.intermediateSize);
    residual = g.op('Add', [residual, down], { name: ResidualNodes.mlp(l) });
  }

  // Head: only the requested rows go through the final norm and the LM head.
  const index = g.op('Unsqueeze', [logitsIndex, g.constInt64('axes_last', [-1])], { name: 'logits_index.unsqueeze' });
  const rows = g.op('GatherND', [residual, index], { attrs: { batch_dims: { int: 1 } }, name: 'read_rows' });
  const normed = await rmsNorm(rows, WeightNames.finalNorm, 'final_norm');
  // A tied head reads the embedding table again rather than holding it (2 GB at 7B) through every layer.
  let logits = addLinear(ctx, normed, {
    name: arch.tieWordEmbeddings ? 'lm_head.tied' : WeightNames.lmHead,
    weight: arch.tieWordEmbeddings ? await weights.read(WeightNames.embedTokens) : await read(WeightNames.lmHead),
    outFeatures: arch.vocabSize,
    inFeatures: hiddenSize,
  });
  if (F !== 'float32') logits = castTo(ctx, logits, 'float32');
  addHead(g, logits, options, arch.vocabSize);

  for (let l = 0; l < numLayers; l++) {
    g.output(StepOutput.newKey(l), F, [1, numKvHeads, D.query, headDim]);
    g.output(StepOutput.newValue(l), F, [1, numKvHeads, D.query, headDim]);
  }
  g.write({
    opset: STEP_GRAPH_OPSET,
    extraOpsets: { 'com.microsoft': 1 },
    metadata: { ...stepGraphMetadata(arch, options), ...io.metadata },
    docString: 'DLM denoise step graph (contract denoise-v1, engine/graph/stepContract.ts)',
  });
}

/** `logits` as is, or the stats head: top-K probabilities and ids plus the entropy of the full distribution. */
function addHead(g: OnnxGraphBuilder, logits32: string, options: StepGraphOptions, vocabSize: number): void {
  const D = StepDims;
  if (options.head === 'logits') {
    g.node('Identity', [logits32], { outputs: [StepOutput.logits] });
    g.output(StepOutput.logits, 'float32', [1, D.read, vocabSize]);
    return;
  }
  const logProbs = g.op('LogSoftmax', [logits32], { attrs: { axis: { int: -1 } }, name: 'log_probs' });
  const [topLogProbs] = g.node('TopK', [logProbs, g.constInt64('top_k', [options.topK])], {
    attrs: { axis: { int: -1 }, largest: { int: 1 }, sorted: { int: 1 } },
    outputs: ['top_log_probs', StepOutput.topIds],
    name: 'top_k',
  });
  g.node('Exp', [topLogProbs], { outputs: [StepOutput.topProbs] });
  // H = -Σ p·log p; underflowed p are exactly 0 and their log p stays finite, so no NaN appears.
  const plogp = g.op('Mul', [g.op('Exp', [logProbs], { name: 'probs' }), logProbs]);
  const negEntropy = g.op('ReduceSum', [plogp, g.constInt64('axes_last', [-1])], { attrs: { keepdims: { int: 0 } } });
  g.node('Neg', [negEntropy], { outputs: [StepOutput.entropy] });
  g.output(StepOutput.topIds, 'int64', [1, D.read, options.topK]);
  g.output(StepOutput.topProbs, 'float32', [1, D.read, options.topK]);
  g.output(StepOutput.entropy, 'float32', [1, D.read]);
}

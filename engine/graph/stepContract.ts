/**
 * The step-graph contract (design §2, models-and-runtime.md R3): one ONNX graph per model that serves a full
 * pass (C = 0) and every cached step. Batch is always 1 (GroupQueryAttention with past context requires it).
 *
 *   inputs                                    outputs
 *   input_ids       int64 [1, Q]              logits        float32 [1, R, V]      (head 'logits')
 *   position_ids    int64 [1, Q]              top_ids       int64   [1, R, K]      (head 'stats')
 *   attention_bias  F     [1, 1, Q, C+Q]      top_probs     float32 [1, R, K]      (head 'stats')
 *   logits_index    int64 [1, R]              entropy       float32 [1, R]         (head 'stats')
 *   past_key.{l}    F     [1, Hkv, C, D]      new_key.{l}   F       [1, Hkv, Q, D]
 *   past_value.{l}  F     [1, Hkv, C, D]      new_value.{l} F       [1, Hkv, Q, D]
 *
 * Q = rows computed this step, C = cached rows (keys stored after RoPE, so their order does not matter),
 * R = rows whose prediction is read. `attention_bias` columns 0..C-1 are the cached rows in the order of
 * `past_key.*`, columns C..C+Q-1 the query rows; 0 = visible, the dtype's lowest finite value = hidden.
 * `logits_index` indexes the Q axis. Logits are raw and un-shifted: for a shifted model the engine asks for
 * the row of p-1 to predict p.
 */

export const StepInput = {
  inputIds: 'input_ids',
  positionIds: 'position_ids',
  attentionBias: 'attention_bias',
  logitsIndex: 'logits_index',
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
} as const;

export const StepOutput = {
  logits: 'logits',
  topIds: 'top_ids',
  topProbs: 'top_probs',
  entropy: 'entropy',
  newKey: (layer: number) => `new_key.${layer}`,
  newValue: (layer: number) => `new_value.${layer}`,
} as const;

/** `logits`: full vocabulary rows. `stats`: top-k ids and probabilities plus entropy, far less to transfer. */
export type HeadKind = 'logits' | 'stats';
export type WeightPrecision = 'fp32' | 'fp16' | 'int4';
/** Element type of activations, the K/V cache and attention_bias at the graph boundary. */
export type CacheDtype = 'float32' | 'float16';
/** `gqa`: com.microsoft.GroupQueryAttention with causal=0. `decomposed`: plain ONNX ops, runs everywhere. */
export type AttentionLowering = 'gqa' | 'decomposed';

/** Value used in attention_bias for a hidden key, per dtype. */
export const HIDDEN_BIAS: Record<CacheDtype, number> = { float32: -3.4028234663852886e38, float16: -65504 };

/** Host-side K/V rows: fp32 as Float32Array, fp16 as raw IEEE half bits in a Uint16Array. */
export type KvArray = Float32Array | Uint16Array;

/** One graph call, batch 1, in host memory. */
export interface StepFeeds {
  inputIds: BigInt64Array; // [Q]
  positionIds: BigInt64Array; // [Q]
  /** [Q, C+Q], in the graph's cache dtype. */
  attentionBias: KvArray;
  logitsIndex: BigInt64Array; // [R]
  /** Per layer [Hkv, C, D]. */
  pastKeys: KvArray[];
  pastValues: KvArray[];
  /** C: the number of cached rows passed in. */
  contextLength: number;
}

/** Predictions for the R requested rows. */
export type RowPredictions =
  | { kind: 'logits'; rows: number; vocabSize: number; logits: Float32Array /* [R, V] */ }
  | {
      kind: 'stats';
      rows: number;
      k: number;
      topIds: Int32Array /* [R, K], descending probability */;
      topProbs: Float32Array /* [R, K] */;
      entropy: Float32Array /* [R], natural log */;
    };

export interface StepResult {
  predictions: RowPredictions;
  /** Per layer [Hkv, Q, D], in the graph's cache dtype. */
  newKeys: KvArray[];
  newValues: KvArray[];
}

/** What the denoiser needs from a loaded step graph; implemented over onnxruntime-node. */
export interface StepModel {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly cacheDtype: CacheDtype;
  readonly head: HeadKind;
  run(feeds: StepFeeds): Promise<StepResult>;
}

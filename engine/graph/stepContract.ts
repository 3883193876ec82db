/**
 * The step-graph contract (ARCHITECTURE.md, "The model folder"): one ONNX graph per model that serves a full
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
export const WEIGHT_PRECISIONS = ['fp32', 'fp16', 'int4', 'int8'] as const;
export type WeightPrecision = (typeof WEIGHT_PRECISIONS)[number];
/** MatMulNBits `accuracy_level`: 0 = compute in the activation dtype, 4 = int8 activations (int4.ts). */
export type Int4AccuracyLevel = 0 | 4;
export const INT4_ACCURACY_LEVELS: readonly Int4AccuracyLevel[] = [0, 4];
/** Element type of activations, the K/V cache and attention_bias at the graph boundary. */
export type CacheDtype = 'float32' | 'float16';
/**
 * `gqa`: com.microsoft.GroupQueryAttention with causal=0. `decomposed`: plain ONNX ops, runs everywhere.
 * `hybrid`: GroupQueryAttention on full passes, the plain ops on calls with cached rows (attention.ts).
 */
export const ATTENTION_LOWERINGS = ['gqa', 'decomposed', 'hybrid'] as const;
export type AttentionLowering = (typeof ATTENTION_LOWERINGS)[number];

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
  /** Per layer [Hkv, Q, D], in the graph's cache dtype; empty (0 elements) unless `newKv` was 'host'. */
  newKeys: KvArray[];
  newValues: KvArray[];
  /** The query rows' new K/V left on the device (`newKv: 'device'`); the caller disposes it. */
  deviceNewKv?: DeviceKv;
}

/**
 * K/V rows kept in device memory between graph calls (WebGPU): per layer [1, Hkv, rows, D] in the cache dtype.
 * Opaque to the host: onnxruntime-node 1.30 cannot read a device tensor back. Whoever holds one disposes it.
 */
export interface DeviceKv {
  readonly rows: number;
  dispose(): void;
}

/** What a model that keeps K/V on its device offers besides `run`. */
export interface DeviceKvOps {
  /**
   * A new device K/V of `index.length` rows: row r is row index[r] of `base` when index[r] < base.rows, else
   * row index[r] - base.rows of `fresh` (with no base, row index[r] of `fresh`). Neither input is consumed.
   */
  merge(base: DeviceKv | null, fresh: DeviceKv, index: BigInt64Array): Promise<DeviceKv>;
}

/**
 * Where a call's new K/V go: 'host' into StepResult.newKeys/newValues; 'none' nowhere (nobody reads them, so
 * they are not transferred); 'device' into StepResult.deviceNewKv (models with `deviceKv` only).
 */
export type NewKvDestination = 'host' | 'none' | 'device';

export interface StepRunOptions {
  /** Default 'host'. */
  newKv?: NewKvDestination;
  /**
   * Context K/V on the device (models with `deviceKv` only): replaces `pastKeys`/`pastValues`, and
   * `contextLength` must equal its rows.
   */
  devicePast?: DeviceKv;
}

/** What the denoiser needs from a loaded step graph; implemented over onnxruntime-node. */
export interface StepModel {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly cacheDtype: CacheDtype;
  readonly head: HeadKind;
  /** Present when the model can keep K/V on its device between calls (WebGPU). */
  readonly deviceKv?: DeviceKvOps;
  /** Wrappers that do not pass `options` on get every new K/V on the host, which is always correct. */
  run(feeds: StepFeeds, options?: StepRunOptions): Promise<StepResult>;
}

/** A step model's geometry and head: what a wrapper copies before it brings its own `run` (and `deviceKv`). */
export function stepModelShape(model: StepModel): Pick<StepModel, 'numLayers' | 'numKvHeads' | 'headDim' | 'cacheDtype' | 'head'> {
  const { numLayers, numKvHeads, headDim, cacheDtype, head } = model;
  return { numLayers, numKvHeads, headDim, cacheDtype, head };
}

/**
 * A full pass (C = 0) over `ids` at positions 0.., every row visible to every row, reading the rows `read`. With
 * `zeroContext` > 0 the rows come after that many cached rows whose K/V are all zero (visible): a call of a cached
 * step's shape, for timing it.
 */
export function fullPassFeeds(
  model: Pick<StepModel, 'cacheDtype' | 'numLayers' | 'numKvHeads' | 'headDim'>,
  ids: ArrayLike<number>,
  read: readonly number[] = [0],
  zeroContext = 0,
): StepFeeds {
  const q = ids.length;
  const c = zeroContext;
  const zeros = (n: number) => (model.cacheDtype === 'float16' ? new Uint16Array(n) : new Float32Array(n));
  const context = zeros(model.numKvHeads * c * model.headDim);
  return {
    inputIds: BigInt64Array.from({ length: q }, (_, i) => BigInt(ids[i])),
    positionIds: BigInt64Array.from({ length: q }, (_, i) => BigInt(c + i)),
    // Zero is a visible key in either dtype (fp16 zero is all-zero bits too).
    attentionBias: zeros(q * (c + q)),
    logitsIndex: BigInt64Array.from(read, BigInt),
    pastKeys: new Array(model.numLayers).fill(context),
    pastValues: new Array(model.numLayers).fill(context),
    contextLength: c,
  };
}

/**
 * Checkpoint families: how a Hugging Face `config.json` maps onto `ModelArchitecture`, and how the
 * checkpoint names its tensors relative to the canonical (Hugging Face Qwen2) names of `architecture.ts`.
 *
 * - `dream`: Dream, Dream-Coder, DiffuCoder (model_type "Dream", DreamModel): Qwen2 layout, q/k/v bias, GQA,
 *   logits shifted by one.
 * - `qwen2`: Open-dCoder (model_type "qwen2", Qwen2ForCausalLM, a mask token in its tokenizer): the same,
 *   usually with tied embeddings.
 * - `coda`: Salesforce CoDA (model_type "CoDA"): Qwen3 layout (per-head q/k RMSNorm, no bias), shifted.
 * - `llada`: LLaDA (model_type "llada", LLaDAModelLM): its own names under `model.transformer`, no GQA
 *   in the 8B, no shift.
 */
import type { CheckpointFamilyId } from '../../common/modelFamilies';
import type { ModelArchitecture, ModelFamily } from '../architecture/architecture';

export type { CheckpointFamilyId };
export type HfConfig = Record<string, unknown>;

export interface CheckpointFamily {
  id: CheckpointFamilyId;
  /** The engine-side family (graph behaviour and manifest). */
  family: ModelFamily;
  /** For error messages: which checkpoints this covers. */
  description: string;
  matches(config: HfConfig): boolean;
  /** Throws a ConversionError naming the unsupported setting. */
  architecture(config: HfConfig): ModelArchitecture;
  /** The checkpoint's name for a canonical weight name. */
  sourceName(canonical: string): string;
}

export class ConversionError extends Error {
  override name = 'ConversionError';
}

/**
 * RoPE tables are sized to this many positions at most: an infill canvas is the code around the cursor, a few
 * thousand tokens, and a 131072-row table would cost memory on every session for nothing. `--max-positions`
 * raises it.
 */
export const DEFAULT_MAX_POSITIONS = 16384;

const modelType = (c: HfConfig) => String(c.model_type ?? '');
const architectures = (c: HfConfig) => (Array.isArray(c.architectures) ? c.architectures.map(String) : []);

function int(config: HfConfig, key: string, fallback?: number): number {
  const value = config[key] ?? fallback;
  if (!Number.isInteger(value) || (value as number) <= 0) {
    throw new ConversionError(`config.json: "${key}" must be a positive integer, got ${JSON.stringify(config[key])}`);
  }
  return value as number;
}

function num(config: HfConfig, key: string, fallback: number): number {
  const value = config[key] ?? fallback;
  if (typeof value !== 'number' || !(value > 0)) {
    throw new ConversionError(`config.json: "${key}" must be a positive number, got ${JSON.stringify(config[key])}`);
  }
  return value;
}

function bool(config: HfConfig, key: string, fallback: boolean): boolean {
  const value = config[key] ?? fallback;
  if (typeof value !== 'boolean') throw new ConversionError(`config.json: "${key}" must be true or false`);
  return value;
}

function refuse(condition: boolean, what: string): void {
  if (condition) throw new ConversionError(`config.json: ${what} is not supported by the converter`);
}

/** Qwen2 and Qwen3 configs share their keys (HF `Qwen2Config`/`Qwen3Config`, Dream's and CoDA's copies). */
function qwenArchitecture(
  config: HfConfig,
  family: ModelFamily,
  layout: { qkvBias: boolean; qkNorm: boolean; logitShift: boolean; tiedByDefault: boolean },
): ModelArchitecture {
  const scaling = config.rope_scaling as { type?: string; rope_type?: string } | null | undefined;
  const scalingType = scaling ? (scaling.rope_type ?? scaling.type) : undefined;
  refuse(scalingType !== undefined && scalingType !== 'default', `rope_scaling ${JSON.stringify(scaling)}`);
  refuse(config.use_sliding_window === true, 'use_sliding_window: true');
  refuse(config.hidden_act !== undefined && config.hidden_act !== 'silu', `hidden_act "${config.hidden_act}"`);
  const hiddenSize = int(config, 'hidden_size');
  const numHeads = int(config, 'num_attention_heads');
  const qkvBias = layout.qkNorm ? bool(config, 'attention_bias', layout.qkvBias) : layout.qkvBias;
  return {
    family,
    hiddenSize,
    numLayers: int(config, 'num_hidden_layers'),
    numHeads,
    numKvHeads: int(config, 'num_key_value_heads', numHeads),
    headDim: int(config, 'head_dim', hiddenSize / numHeads),
    intermediateSize: int(config, 'intermediate_size'),
    vocabSize: int(config, 'vocab_size'),
    ropeTheta: num(config, 'rope_theta', 10000),
    rmsNormEps: num(config, 'rms_norm_eps', 1e-6),
    maxPositions: Math.min(int(config, 'max_position_embeddings', 32768), DEFAULT_MAX_POSITIONS),
    tieWordEmbeddings: bool(config, 'tie_word_embeddings', layout.tiedByDefault),
    qkvBias,
    qkNorm: layout.qkNorm,
    logitShift: layout.logitShift,
  };
}

const identity = (canonical: string) => canonical;

const dream: CheckpointFamily = {
  id: 'dream',
  family: 'dream',
  description: 'Dream / Dream-Coder / DiffuCoder (model_type "Dream", DreamModel)',
  matches: (c) => modelType(c).toLowerCase() === 'dream' || architectures(c).includes('DreamModel'),
  architecture: (c) => qwenArchitecture(c, 'dream', { qkvBias: true, qkNorm: false, logitShift: true, tiedByDefault: false }),
  sourceName: identity,
};

const qwen2: CheckpointFamily = {
  id: 'qwen2',
  family: 'dream',
  description: 'Open-dCoder and other Qwen2 masked-diffusion models (model_type "qwen2", Qwen2ForCausalLM)',
  matches: (c) => modelType(c) === 'qwen2',
  architecture: (c) => qwenArchitecture(c, 'dream', { qkvBias: true, qkNorm: false, logitShift: true, tiedByDefault: false }),
  sourceName: identity,
};

const coda: CheckpointFamily = {
  id: 'coda',
  family: 'dream',
  description: 'CoDA (model_type "CoDA", Qwen3 layout with q/k norm)',
  matches: (c) => modelType(c).toLowerCase() === 'coda',
  // CoDAConfig defaults tie_word_embeddings to true and its config.json omits the key.
  architecture: (c) => qwenArchitecture(c, 'dream', { qkvBias: false, qkNorm: true, logitShift: true, tiedByDefault: true }),
  sourceName: identity,
};

/** Canonical per-layer suffix → LLaDA block suffix. `blocks.N.ff_out` is the MLP down projection. */
const LLADA_LAYER_NAMES: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'q_proj.weight',
  'self_attn.q_proj.bias': 'q_proj.bias',
  'self_attn.k_proj.weight': 'k_proj.weight',
  'self_attn.k_proj.bias': 'k_proj.bias',
  'self_attn.v_proj.weight': 'v_proj.weight',
  'self_attn.v_proj.bias': 'v_proj.bias',
  'self_attn.o_proj.weight': 'attn_out.weight',
  'post_attention_layernorm.weight': 'ff_norm.weight',
  'mlp.gate_proj.weight': 'ff_proj.weight',
  'mlp.up_proj.weight': 'up_proj.weight',
  'mlp.down_proj.weight': 'ff_out.weight',
};

/** ...while `transformer.ff_out` (outside the blocks) is the LM head. */
const LLADA_GLOBAL_NAMES: Record<string, string> = {
  'model.embed_tokens.weight': 'model.transformer.wte.weight',
  'model.norm.weight': 'model.transformer.ln_f.weight',
  'lm_head.weight': 'model.transformer.ff_out.weight',
};

const llada: CheckpointFamily = {
  id: 'llada',
  family: 'llada',
  description: 'LLaDA (model_type "llada", LLaDAModelLM, block_type "llama")',
  matches: (c) => modelType(c).toLowerCase() === 'llada' || architectures(c).includes('LLaDAModelLM'),
  architecture(c) {
    refuse(c.block_type !== undefined && c.block_type !== 'llama', `block_type "${c.block_type}" (only "llama")`);
    refuse(c.activation_type !== undefined && c.activation_type !== 'silu', `activation_type "${c.activation_type}"`);
    refuse(c.rope === false, 'a LLaDA model without RoPE ("rope": false)');
    refuse(c.alibi === true, 'alibi');
    refuse(c.yarn === true, 'YaRN RoPE scaling');
    refuse(c.attention_layer_norm === true, 'attention_layer_norm');
    refuse(c.input_emb_norm === true, 'input_emb_norm');
    refuse(c.scale_logits === true, 'scale_logits');
    refuse(c.include_bias === true || c.bias_for_layer_norm === true, 'biases outside q/k/v (include_bias)');
    refuse(c.clip_qkv !== undefined && c.clip_qkv !== null, 'clip_qkv');
    refuse(c.layer_norm_type !== undefined && c.layer_norm_type !== 'rms', `layer_norm_type "${c.layer_norm_type}"`);
    const hiddenSize = int(c, 'd_model');
    const numHeads = int(c, 'n_heads');
    const numKvHeads = c.multi_query_attention === true ? 1 : int(c, 'n_kv_heads', numHeads);
    return {
      family: 'llada',
      hiddenSize,
      numLayers: int(c, 'n_layers'),
      numHeads,
      numKvHeads,
      headDim: hiddenSize / numHeads,
      intermediateSize: int(c, 'mlp_hidden_size', int(c, 'mlp_ratio', 4) * hiddenSize),
      vocabSize: int(c, 'embedding_size', int(c, 'vocab_size')),
      ropeTheta: num(c, 'rope_theta', 10000),
      rmsNormEps: num(c, 'rms_norm_eps', 1e-5),
      maxPositions: Math.min(int(c, 'max_sequence_length', 4096), DEFAULT_MAX_POSITIONS),
      tieWordEmbeddings: bool(c, 'weight_tying', false),
      qkvBias: bool(c, 'include_qkv_bias', false),
      qkNorm: false,
      logitShift: false,
    };
  },
  sourceName(canonical) {
    const global = LLADA_GLOBAL_NAMES[canonical];
    if (global) return global;
    const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(canonical);
    const suffix = layer ? LLADA_LAYER_NAMES[layer[2]] : undefined;
    if (!layer || !suffix) throw new ConversionError(`LLaDA checkpoints have no equivalent of ${canonical}`);
    return `model.transformer.blocks.${layer[1]}.${suffix}`;
  },
};

export const CHECKPOINT_FAMILIES: readonly CheckpointFamily[] = [dream, qwen2, coda, llada];

/** The family of a checkpoint, or an error naming its architecture and what is supported. */
export function detectFamily(config: HfConfig): CheckpointFamily {
  const found = CHECKPOINT_FAMILIES.find((f) => f.matches(config));
  if (found) return found;
  const named = [architectures(config).join(', '), config.model_type ? `model_type "${config.model_type}"` : '']
    .filter(Boolean)
    .join(', ');
  throw new ConversionError(
    `unsupported architecture ${named || '(config.json names none)'}; supported: ` +
      CHECKPOINT_FAMILIES.map((f) => f.description).join('; '),
  );
}

/** Validates the geometry the graph builder relies on. */
export function checkArchitecture(arch: ModelArchitecture): void {
  const problems: string[] = [];
  if (!Number.isInteger(arch.headDim)) problems.push(`hidden size ${arch.hiddenSize} is not a multiple of ${arch.numHeads} heads`);
  if (arch.numHeads % arch.numKvHeads !== 0) problems.push(`${arch.numHeads} heads are not a multiple of ${arch.numKvHeads} KV heads`);
  if (arch.headDim % 2 !== 0) problems.push(`head dimension ${arch.headDim} is odd (RoPE needs pairs)`);
  if (problems.length) throw new ConversionError(`config.json: ${problems.join('; ')}`);
}

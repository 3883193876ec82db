/**
 * Hugging Face checkpoint folders with random weights in the exact layout and geometry of real diffusion code
 * models (config.json, bf16 safetensors under the real tensor names, tokenizer.json, tokenizer_config.json,
 * generation_config.json), so the converter and every speed claim can be checked at real scale without a
 * download. The configs follow the published config.json of Qwen/Qwen2.5-0.5B (Open-dCoder-0.5B's base, same
 * geometry) and of Dream-org/Dream-Coder-v0-Instruct-7B (Qwen2.5-7B geometry, DreamModel).
 *
 * The weights are the synthetic models' seeded draws (model/synthetic.ts), scaled to make the model decisive,
 * rounded to bf16 and streamed to disk chunk by chunk: a 7B checkpoint (15 GB) never sits in memory.
 *
 * The tokenizer is the built-in model's code BPE (4,093 tokens and their merges) padded to the real base
 * vocabulary's size with tokens no merge produces (decodable, never encoded), then the real checkpoints'
 * added tokens at their real ids. Qwen's own 151k merges are not reproduced, so a text encodes to the
 * built-in tokenizer's token count, not Qwen's.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkFreeSpace } from '../convert/convert';
import { planShards, writeShardIndex, writeSafetensorsStreamed, SINGLE_FILE, type TensorLayout } from '../convert/safetensors';
import { qwen2TokenizerJson } from '../convert/tokenizerFiles';
import { expectedWeights, type ModelArchitecture } from '../model/architecture';
import { builtinModelDir } from '../model/modelManager';
import { byteLevelAlphabet, syntheticDraws } from '../model/synthetic';
import { specialToken, type AddedToken } from '../model/tokenizerJson';

export interface CheckpointGeometry {
  /** One line for `dlm make-checkpoint --help`. */
  description: string;
  /** What the converter should derive from `config`. */
  architecture: ModelArchitecture;
  config: Record<string, unknown>;
  generationConfig: Record<string, unknown>;
  /** The id of `<|endoftext|>`, the first added token: the base vocabulary fills the ids below it. */
  firstAddedId: number;
  /** Added tokens after Qwen2.5's own (ids from firstAddedId + QWEN_ADDED.length on). */
  extraAddedTokens: string[];
  /** `mask_token` of tokenizer_config.json, where the checkpoint names its mask there. */
  maskToken?: string;
  modelMaxLength: number;
  /** Shards of at most this many bytes (`save_pretrained`'s default 5 GB); below it one model.safetensors. */
  maxShardBytes: number;
}

/** Qwen2.5's added tokens from `<|endoftext|>` on, in id order; the tool and FIM ones are not special. */
const QWEN_ADDED: [string, boolean][] = [
  ['<|endoftext|>', true], ['<|im_start|>', true], ['<|im_end|>', true], ['<|object_ref_start|>', true],
  ['<|object_ref_end|>', true], ['<|box_start|>', true], ['<|box_end|>', true], ['<|quad_start|>', true],
  ['<|quad_end|>', true], ['<|vision_start|>', true], ['<|vision_end|>', true], ['<|vision_pad|>', true],
  ['<|image_pad|>', true], ['<|video_pad|>', true], ['<tool_call>', false], ['</tool_call>', false],
  ['<|fim_prefix|>', false], ['<|fim_middle|>', false], ['<|fim_suffix|>', false], ['<|fim_pad|>', false],
  ['<|repo_name|>', false], ['<|file_sep|>', false],
];

const SAVE_PRETRAINED_SHARD_BYTES = 5e9;

/** Qwen2.5-0.5B's config.json with the geometry as parameters (Qwen2ForCausalLM, tied, qkv bias). */
function qwen2Config(a: ModelArchitecture, firstAddedId: number, nameOrPath: string, maxPositions: number) {
  return {
    _name_or_path: nameOrPath,
    architectures: ['Qwen2ForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: firstAddedId,
    eos_token_id: firstAddedId,
    hidden_act: 'silu',
    hidden_size: a.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: a.intermediateSize,
    max_position_embeddings: maxPositions,
    max_window_layers: a.numLayers,
    model_type: 'qwen2',
    num_attention_heads: a.numHeads,
    num_hidden_layers: a.numLayers,
    num_key_value_heads: a.numKvHeads,
    rms_norm_eps: a.rmsNormEps,
    rope_theta: a.ropeTheta,
    sliding_window: maxPositions,
    tie_word_embeddings: a.tieWordEmbeddings,
    torch_dtype: 'bfloat16',
    transformers_version: '4.46.1',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: a.vocabSize,
  };
}

const QWEN25_05B: ModelArchitecture = {
  family: 'dream', hiddenSize: 896, numLayers: 24, numHeads: 14, numKvHeads: 2, headDim: 64, intermediateSize: 4864,
  vocabSize: 151936, ropeTheta: 1000000, rmsNormEps: 1e-6, maxPositions: 16384, tieWordEmbeddings: true, qkvBias: true,
  qkNorm: false, logitShift: true,
};

const DREAM_CODER_7B: ModelArchitecture = {
  family: 'dream', hiddenSize: 3584, numLayers: 28, numHeads: 28, numKvHeads: 4, headDim: 128, intermediateSize: 18944,
  vocabSize: 152064, ropeTheta: 1000000, rmsNormEps: 1e-6, maxPositions: 16384, tieWordEmbeddings: false, qkvBias: true,
  qkNorm: false, logitShift: true,
};

/** The built-in tokenizer's size: its 4,093 BPE tokens become the base vocabulary. */
const TINY_FIRST_ADDED = 4093;
const TINY: ModelArchitecture = {
  family: 'dream', hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 128,
  vocabSize: 4160, ropeTheta: 1000000, rmsNormEps: 1e-6, maxPositions: 2048, tieWordEmbeddings: true, qkvBias: true,
  qkNorm: false, logitShift: true,
};

export const CHECKPOINT_GEOMETRIES = {
  /** Open-dCoder-0.5B (continued pretraining of Qwen2.5-Coder-0.5B): its mask is the added token `<M>`. */
  'qwen2.5-0.5b': {
    description: 'Open-dCoder-0.5B / Qwen2.5-0.5B: 24 layers, hidden 896, 14 / 2 K/V heads, vocab 151,936, tied (0.49B, ~1 GB)',
    architecture: QWEN25_05B,
    config: qwen2Config(QWEN25_05B, 151643, 'random-weights/open-dcoder-0.5B-geometry', 32768),
    generationConfig: { bos_token_id: 151643, eos_token_id: 151643, max_new_tokens: 2048 },
    firstAddedId: 151643,
    extraAddedTokens: ['<M>'],
    maskToken: '<M>',
    modelMaxLength: 32768,
    maxShardBytes: SAVE_PRETRAINED_SHARD_BYTES,
  },
  /** Dream-Coder-v0-7B (Qwen2.5-7B geometry, DreamModel): mask 151666 in config.json, bos `<|beginoftext|>`. */
  'dream-coder-7b': {
    description: 'Dream-Coder-v0-7B (Qwen2.5-7B): 28 layers, hidden 3584, 28 / 4 K/V heads, vocab 152,064, untied (7.6B, ~15 GB)',
    architecture: DREAM_CODER_7B,
    config: {
      _name_or_path: 'random-weights/Dream-Coder-v0-7B-geometry',
      architectures: ['DreamModel'],
      auto_map: { AutoConfig: 'configuration_dream.DreamConfig', AutoModel: 'modeling_dream.DreamModel' },
      attention_dropout: 0.0,
      bos_token_id: 151665,
      eos_token_id: 151643,
      hidden_act: 'silu',
      hidden_size: 3584,
      initializer_range: 0.02,
      intermediate_size: 18944,
      mask_token_id: 151666,
      max_position_embeddings: 32768,
      max_window_layers: 28,
      model_type: 'Dream',
      num_attention_heads: 28,
      num_hidden_layers: 28,
      num_key_value_heads: 4,
      pad_token_id: 151643,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 1000000.0,
      sliding_window: null,
      tie_word_embeddings: false,
      torch_dtype: 'bfloat16',
      transformers_version: '4.46.2',
      use_cache: true,
      use_sliding_window: false,
      vocab_size: 152064,
    },
    generationConfig: { bos_token_id: 151665, eos_token_id: 151643, pad_token_id: 151643, alg: 'entropy', steps: 768, temperature: 0.1 },
    firstAddedId: 151643,
    extraAddedTokens: ['<|beginoftext|>', '<|mask|>'],
    modelMaxLength: 32768,
    maxShardBytes: SAVE_PRETRAINED_SHARD_BYTES,
  },
  /** The 0.5B's layout at toy size, for tests: the same files, tensor names and tokens, in a few megabytes. */
  'tiny-qwen2': {
    description: 'the qwen2.5-0.5b layout at toy size (2 layers, hidden 64, vocab 4,160), for tests',
    architecture: TINY,
    config: qwen2Config(TINY, TINY_FIRST_ADDED, 'random-weights/tiny-qwen2', 2048),
    generationConfig: { bos_token_id: TINY_FIRST_ADDED, eos_token_id: TINY_FIRST_ADDED },
    firstAddedId: TINY_FIRST_ADDED,
    extraAddedTokens: ['<M>'],
    maskToken: '<M>',
    modelMaxLength: 2048,
    maxShardBytes: SAVE_PRETRAINED_SHARD_BYTES,
  },
} as const satisfies Record<string, CheckpointGeometry>;

export type CheckpointGeometryName = keyof typeof CHECKPOINT_GEOMETRIES;
export const CHECKPOINT_GEOMETRY_NAMES = Object.keys(CHECKPOINT_GEOMETRIES) as CheckpointGeometryName[];

export function isCheckpointGeometryName(name: string): name is CheckpointGeometryName {
  return Object.prototype.hasOwnProperty.call(CHECKPOINT_GEOMETRIES, name);
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizer

function addedTokensOf(geometry: CheckpointGeometry): AddedToken[] {
  const qwen = QWEN_ADDED.map(([content, special], i) => ({ ...specialToken(geometry.firstAddedId + i, content), special }));
  const extra = geometry.extraAddedTokens.map((content, i) => specialToken(geometry.firstAddedId + QWEN_ADDED.length + i, content));
  return [...qwen, ...extra];
}

/**
 * Pieces of 2, then 3 byte-level characters that the vocabulary lacks, in a fixed order: tokens that decode
 * to bytes but that no merge builds, to give the vocabulary its real size.
 */
function* unreachablePieces(taken: Set<string>): Generator<string> {
  const alphabet = byteLevelAlphabet();
  for (const a of alphabet) for (const b of alphabet) if (!taken.has(a + b)) yield a + b;
  for (const a of alphabet) for (const b of alphabet) for (const c of alphabet) if (!taken.has(a + b + c)) yield a + b + c;
}

interface BpeFiles {
  model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
}

export function randomCheckpointTokenizer(geometry: CheckpointGeometry): string {
  const builtin = JSON.parse(fs.readFileSync(path.join(builtinModelDir({}), 'tokenizer.json'), 'utf8')) as BpeFiles;
  const vocab: Record<string, number> = {};
  let size = 0;
  for (const [piece, id] of Object.entries(builtin.model.vocab)) {
    if (id < geometry.firstAddedId) {
      vocab[piece] = id;
      size = Math.max(size, id + 1);
    }
  }
  if (size !== Object.keys(vocab).length) throw new Error('the built-in tokenizer has gaps in its vocabulary ids');
  const pieces = unreachablePieces(new Set(Object.keys(vocab)));
  while (size < geometry.firstAddedId) vocab[pieces.next().value as string] = size++;
  const merges = builtin.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m));
  return JSON.stringify(qwen2TokenizerJson(vocab, `#version: 0.2\n${merges.join('\n')}\n`, addedTokensOf(geometry)));
}

/** Qwen2.5's tokenizer_config.json: the added tokens, no bos, `<|endoftext|>` as eos and pad. */
function tokenizerConfig(geometry: CheckpointGeometry): Record<string, unknown> {
  const added = addedTokensOf(geometry);
  const endOfText = added[0].content;
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...token }) => [String(id), token])),
    additional_special_tokens: added.filter((t) => t.special && t.content !== endOfText).map((t) => t.content),
    bos_token: null,
    clean_up_tokenization_spaces: false,
    eos_token: endOfText,
    errors: 'replace',
    ...(geometry.maskToken ? { mask_token: geometry.maskToken } : {}),
    model_max_length: geometry.modelMaxLength,
    pad_token: endOfText,
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
}

// ---------------------------------------------------------------------------------------------------------
// The folder

export interface RandomCheckpointProgress {
  bytesWritten: number;
  totalBytes: number;
}

export interface RandomCheckpointOptions {
  seed?: number;
  onProgress?: (p: RandomCheckpointProgress) => void;
}

/** Values per chunk streamed to disk: 16 MiB of float32 at a time. */
const CHUNK_VALUES = 1 << 22;

/** The tensors in module order (as `save_pretrained` writes them), bf16; a tied model has no lm_head. */
export function checkpointTensors(architecture: ModelArchitecture): TensorLayout[] {
  return [...expectedWeights(architecture)].map(([name, shape]) => ({ name, dtype: 'BF16' as const, shape }));
}

function* drawsInChunks(architecture: ModelArchitecture, seed: number, tensor: TensorLayout): Generator<Float32Array> {
  const draw = syntheticDraws(architecture, seed, tensor.name, tensor.shape);
  const total = tensor.shape.reduce((a, b) => a * b, 1);
  const buffer = new Float32Array(Math.min(CHUNK_VALUES, total));
  for (let done = 0; done < total; done += buffer.length) {
    yield draw(total - done < buffer.length ? buffer.subarray(0, total - done) : buffer);
  }
}

/**
 * Writes the checkpoint of `geometry` into `outDir` (which must not exist or be empty). All or nothing: it is
 * written as a hidden sibling and renamed into place at the end.
 */
export async function writeRandomCheckpoint(
  geometryName: CheckpointGeometryName,
  outDir: string,
  options: RandomCheckpointOptions = {},
): Promise<string> {
  const geometry: CheckpointGeometry = CHECKPOINT_GEOMETRIES[geometryName];
  const seed = options.seed ?? 1;
  const out = path.resolve(outDir);
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0) {
    throw new Error(`${out} already exists and is not empty; remove it or choose another folder`);
  }
  const tensors = checkpointTensors(geometry.architecture);
  const totalBytes = tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 2), 0);
  const parent = path.dirname(out);
  fs.mkdirSync(parent, { recursive: true });
  await checkFreeSpace(parent, totalBytes * 1.01 + 64 * 1024 ** 2);
  const temp = path.join(parent, `.${path.basename(out)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    fs.mkdirSync(temp);
    const json = (name: string, value: unknown) => fs.writeFileSync(path.join(temp, name), `${JSON.stringify(value, null, 2)}\n`);
    json('config.json', geometry.config);
    json('generation_config.json', geometry.generationConfig);
    json('tokenizer_config.json', tokenizerConfig(geometry));
    fs.writeFileSync(path.join(temp, 'tokenizer.json'), randomCheckpointTokenizer(geometry));
    let bytesWritten = 0;
    const values = function* (tensor: TensorLayout) {
      for (const chunk of drawsInChunks(geometry.architecture, seed, tensor)) {
        yield chunk;
        bytesWritten += chunk.length * 2;
        options.onProgress?.({ bytesWritten, totalBytes });
      }
    };
    const shards = planShards(tensors, geometry.maxShardBytes);
    if (shards.length === 1) {
      await writeSafetensorsStreamed(path.join(temp, SINGLE_FILE), tensors, values, { format: 'pt' });
    } else {
      for (const shard of shards) await writeSafetensorsStreamed(path.join(temp, shard.file), shard.tensors, values, { format: 'pt' });
      writeShardIndex(temp, shards);
    }
    if (fs.existsSync(out)) fs.rmdirSync(out);
    fs.renameSync(temp, out);
    return out;
  } catch (error) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Tiny Hugging Face checkpoints written the way each family's real repositories are laid out: their
 * config.json keys, their tensor names (spelled out here, independently of the converter's mapping), their
 * tokenizer files, random weights in bf16/f16/f32, single-file or sharded.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelArchitecture, SpecialTokens } from '../../engine/architecture/architecture';
import { WeightNames, expectedWeights } from '../../engine/architecture/architecture';
import { SyntheticWeights, byteLevelAlphabet } from '../../engine/model/synthetic';
import { qwen2TokenizerJson, type TokenizerJson } from '../../engine/convert/tokenizerFiles';
import { specialToken, type AddedToken } from '../../engine/model/tokenizerJson';
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from '../../engine/graph/floatFormats';
import { writeSafetensors, writeShardedSafetensors, type FloatDtype, type TensorToWrite } from '../../engine/convert/safetensors';

export type FixtureKind = 'dream' | 'diffucoder' | 'open-dcoder' | 'llada' | 'coda';

export interface Fixture {
  dir: string;
  /** What the converter should derive from the config. */
  architecture: ModelArchitecture;
  tokens: SpecialTokens;
  /** Canonical name → the values as stored in the checkpoint (after bf16/f16 rounding). */
  weights: Map<string, Float32Array>;
}

const VOCAB = 320;
/** Special tokens sit above the byte tokens and merges, as Qwen's do above its BPE vocabulary. */
const ID = { endoftext: 300, imStart: 301, imEnd: 302, mask: 303, dlmPad: 304, bos: 305 };

const base = {
  hiddenSize: 32, numLayers: 2, numHeads: 4, headDim: 8, intermediateSize: 64, vocabSize: VOCAB,
  ropeTheta: 10000, rmsNormEps: 1e-6, qkNorm: false,
};

/** Merges of a few code-ish pairs over the byte alphabet, ids 256.. */
function bytePairVocab(): { vocab: Record<string, number>; merges: string[] } {
  const alphabet = byteLevelAlphabet();
  const vocab: Record<string, number> = {};
  alphabet.forEach((ch, id) => (vocab[ch] = id));
  const sp = alphabet[32];
  const pairs: [string, string][] = [[sp, 'r'], ['e', 't'], [sp + 'r', 'et'], ['u', 'r'], ['n', sp], [sp, sp], ['d', 'e'], ['(', ')'], ['1', '2']];
  const merges: string[] = [];
  pairs.forEach(([a, b], i) => {
    vocab[a + b] = 256 + i;
    merges.push(`${a} ${b}`);
  });
  return { vocab, merges };
}

/** A Qwen2-style tokenizer.json (NFC, Qwen2 regex, byte-level BPE) with the given added tokens. */
export function qwenStyleTokenizer(tokens: AddedToken[]): TokenizerJson {
  const { vocab, merges } = bytePairVocab();
  return qwen2TokenizerJson(vocab, `#version: 0.2\n${merges.join('\n')}\n`, tokens);
}

function rounded(values: Float32Array, dtype: FloatDtype): Float32Array {
  if (dtype === 'BF16') return bf16ToFloat32(float32ToBf16(values));
  if (dtype === 'F16') return f16ToFloat32(float32ToF16(values));
  return values;
}

const LLADA_NAMES: Record<string, string> = {
  input_layernorm: 'attn_norm', 'self_attn.q_proj': 'q_proj', 'self_attn.k_proj': 'k_proj', 'self_attn.v_proj': 'v_proj',
  'self_attn.o_proj': 'attn_out', post_attention_layernorm: 'ff_norm', 'mlp.gate_proj': 'ff_proj', 'mlp.up_proj': 'up_proj',
  'mlp.down_proj': 'ff_out',
};

/** LLaDA's own names, written out: note `blocks.N.ff_out` (MLP down) vs `transformer.ff_out` (LM head). */
function lladaName(canonical: string): string {
  if (canonical === WeightNames.embedTokens) return 'model.transformer.wte.weight';
  if (canonical === WeightNames.finalNorm) return 'model.transformer.ln_f.weight';
  if (canonical === WeightNames.lmHead) return 'model.transformer.ff_out.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(canonical)!;
  return `model.transformer.blocks.${m[1]}.${LLADA_NAMES[m[2]]}.${m[3]}`;
}

interface Spec {
  architecture: ModelArchitecture;
  config: Record<string, unknown>;
  generationConfig?: Record<string, unknown>;
  tokens: SpecialTokens;
  dtype: FloatDtype;
  sharded: boolean;
  rename: (canonical: string) => string;
  writeTokenizer: (dir: string) => void;
}

function qwenSpecials(maskContent: string): AddedToken[] {
  return [
    specialToken(ID.endoftext, '<|endoftext|>'), specialToken(ID.imStart, '<|im_start|>'), specialToken(ID.imEnd, '<|im_end|>'),
    specialToken(ID.mask, maskContent), specialToken(ID.dlmPad, '<|dlm_pad|>'), specialToken(ID.bos, '<|beginoftext|>'),
  ];
}

function specFor(kind: FixtureKind): Spec {
  switch (kind) {
    case 'dream':
    case 'diffucoder': {
      const architecture: ModelArchitecture = {
        ...base, family: 'dream', numKvHeads: 2, maxPositions: 256, tieWordEmbeddings: false, qkvBias: true, logitShift: true,
      };
      return {
        architecture,
        config: {
          architectures: ['DreamModel'], model_type: 'Dream', auto_map: { AutoModel: 'modeling_dream.DreamModel' },
          hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
          vocab_size: VOCAB, max_position_embeddings: 256, rope_theta: 10000, rope_scaling: null, rms_norm_eps: 1e-6,
          hidden_act: 'silu', tie_word_embeddings: false, use_sliding_window: false, torch_dtype: 'bfloat16',
          // Dream-Coder's config names <|beginoftext|> as bos; its tokenizer does not add it.
          mask_token_id: ID.mask, bos_token_id: ID.bos, eos_token_id: ID.endoftext, pad_token_id: ID.endoftext,
        },
        generationConfig: { eos_token_id: ID.endoftext, steps: 512, alg: 'origin' },
        tokens: { mask: ID.mask, eos: [ID.endoftext, ID.imEnd, ID.dlmPad], pad: ID.endoftext, bos: null },
        dtype: 'BF16',
        sharded: kind === 'diffucoder',
        rename: (n) => n,
        writeTokenizer(dir) {
          // Dream's repositories ship the slow DreamTokenizer: vocab.json + merges.txt + tokenizer_config.json.
          const { vocab, merges } = bytePairVocab();
          fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
          fs.writeFileSync(path.join(dir, 'merges.txt'), `#version: 0.2\n${merges.join('\n')}\n`);
          const decoder = Object.fromEntries(qwenSpecials('<|mask|>').map((t) => [String(t.id), { ...t, id: undefined }]));
          fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({
            tokenizer_class: 'DreamTokenizer', auto_map: { AutoTokenizer: ['tokenization_dream.DreamTokenizer', null] },
            added_tokens_decoder: decoder, eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', mask_token: '<|mask|>',
          }));
        },
      };
    }
    case 'open-dcoder': {
      const architecture: ModelArchitecture = {
        ...base, family: 'dream', numKvHeads: 2, maxPositions: 512, tieWordEmbeddings: true, qkvBias: true, logitShift: true,
        ropeTheta: 1000000,
      };
      return {
        architecture,
        config: {
          architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 32, intermediate_size: 64,
          num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: VOCAB,
          max_position_embeddings: 512, rope_theta: 1000000.0, rms_norm_eps: 1e-6, tie_word_embeddings: true,
          use_sliding_window: false, sliding_window: 512, bos_token_id: ID.endoftext, eos_token_id: ID.endoftext,
          torch_dtype: 'float16',
        },
        // The mask is an added token "<M>" with no mask_token_id in config.json.
        tokens: { mask: ID.mask, eos: [ID.endoftext, ID.imEnd], pad: null, bos: null },
        dtype: 'F16',
        sharded: false,
        rename: (n) => n,
        writeTokenizer(dir) {
          fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(qwenStyleTokenizer(qwenSpecials('<M>'))));
        },
      };
    }
    case 'coda': {
      const architecture: ModelArchitecture = {
        ...base, family: 'dream', numKvHeads: 2, maxPositions: 256, tieWordEmbeddings: true, qkvBias: false, qkNorm: true,
        logitShift: true,
      };
      return {
        architecture,
        config: {
          architectures: ['CoDALanguageModel'], model_type: 'CoDA', hidden_size: 32, intermediate_size: 64,
          num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, vocab_size: VOCAB,
          max_position_embeddings: 256, rope_theta: 10000, rms_norm_eps: 1e-6, attention_bias: false,
          mask_token_id: ID.mask, pad_token_id: ID.endoftext, eos_token_id: ID.imEnd, torch_dtype: 'float32',
        },
        tokens: { mask: ID.mask, eos: [ID.imEnd, ID.endoftext], pad: ID.endoftext, bos: null },
        dtype: 'F32',
        sharded: false,
        rename: (n) => n,
        writeTokenizer(dir) {
          fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(qwenStyleTokenizer(qwenSpecials('<|mask|>'))));
        },
      };
    }
    case 'llada': {
      const architecture: ModelArchitecture = {
        ...base, family: 'llada', numKvHeads: 4, maxPositions: 128, tieWordEmbeddings: false, qkvBias: false,
        logitShift: false, ropeTheta: 500000, rmsNormEps: 1e-5,
      };
      return {
        architecture,
        config: {
          architectures: ['LLaDAModelLM'], model_type: 'llada', activation_type: 'silu', alibi: false,
          attention_layer_norm: false, bias_for_layer_norm: false, block_type: 'llama', d_model: 32, embedding_size: VOCAB,
          vocab_size: VOCAB, include_bias: false, include_qkv_bias: false, input_emb_norm: false, layer_norm_type: 'rms',
          max_sequence_length: 128, mlp_hidden_size: 64, mlp_ratio: 4, n_heads: 4, n_kv_heads: 4, n_layers: 2,
          rms_norm_eps: 1e-5, rope: true, rope_full_precision: true, rope_theta: 500000.0, scale_logits: false,
          weight_tying: false, mask_token_id: ID.mask, eos_token_id: ID.endoftext, pad_token_id: ID.endoftext,
        },
        generationConfig: { bos_token_id: ID.bos, eos_token_id: ID.endoftext },
        tokens: { mask: ID.mask, eos: [ID.endoftext, ID.dlmPad], pad: ID.endoftext, bos: ID.bos },
        dtype: 'BF16',
        sharded: true,
        rename: lladaName,
        writeTokenizer(dir) {
          const tokenizer = qwenStyleTokenizer([
            specialToken(ID.endoftext, '<|endoftext|>'), specialToken(ID.mask, '<|mdm_mask|>'), specialToken(ID.dlmPad, '<|eot_id|>'),
            specialToken(ID.bos, '<|startoftext|>'),
          ]);
          // LLaDA's tokenizer puts its BOS before every text it encodes with special tokens.
          tokenizer.post_processor = {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: '<|startoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
            special_tokens: { '<|startoftext|>': { id: '<|startoftext|>', ids: [ID.bos], tokens: ['<|startoftext|>'] } },
          } as unknown as TokenizerJson['post_processor'];
          fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
        },
      };
    }
  }
}

/** Writes the checkpoint of `kind` into `dir` (created) and returns what the converter should find. */
export async function writeFixtureCheckpoint(dir: string, kind: FixtureKind, options: { dtype?: FloatDtype; seed?: number } = {}): Promise<Fixture> {
  const spec = specFor(kind);
  const dtype = options.dtype ?? spec.dtype;
  fs.mkdirSync(dir, { recursive: true });
  const synthetic = new SyntheticWeights(spec.architecture, options.seed ?? 7);
  const weights = new Map<string, Float32Array>();
  const tensors: TensorToWrite[] = [];
  for (const [name, shape] of expectedWeights(spec.architecture)) {
    const values = rounded(await synthetic.read(name), dtype);
    weights.set(name, values);
    tensors.push({ name: spec.rename(name), dtype, shape, data: values });
  }
  if (spec.architecture.tieWordEmbeddings) {
    // A tied checkpoint saved with its LM head alias: the converter must ignore it.
    tensors.push({ name: 'lm_head.weight', dtype, shape: [VOCAB, 32], data: weights.get(WeightNames.embedTokens)! });
  }
  if (spec.sharded) writeShardedSafetensors(dir, tensors, 40_000);
  else writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec.config, null, 2));
  if (spec.generationConfig) fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify(spec.generationConfig));
  spec.writeTokenizer(dir);
  return { dir, architecture: spec.architecture, tokens: spec.tokens, weights };
}

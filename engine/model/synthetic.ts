/**
 * Synthetic models: seeded random weights for any architecture, presets for tests and benchmarks, a
 * byte-level BPE tokenizer, and a writer for a complete model folder. Random weights are scaled so the
 * model is decisive (sharp attention, logits spread over several units): different canvas positions get
 * different, confident predictions, which is what denoiser tests and cache-agreement benchmarks need.
 */
import type { DecodingOptions } from '../protocol';
import { WeightNames, expectedWeights, type ModelArchitecture, type SpecialTokens } from './architecture';
import type { ModelManifest } from './manifest';
import { writeModelFolder, type VariantSpec } from './modelFolder';
import type { WeightSource } from './weights';
import { byteLevelBpeTokenizerJson, specialToken } from './tokenizerJson';

export type SyntheticPreset = 'tiny-dream' | 'tiny-llada' | 'medium-dream';

const TINY_COMMON = {
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  headDim: 16,
  intermediateSize: 128,
  vocabSize: 320,
  ropeTheta: 10000,
  maxPositions: 1024,
  tieWordEmbeddings: false,
  qkNorm: false,
};

export const SYNTHETIC_ARCHITECTURES: Record<SyntheticPreset, ModelArchitecture> = {
  /** Dream family: GQA (2 query heads per K/V head), q/k/v bias, shifted logits. */
  'tiny-dream': { ...TINY_COMMON, family: 'dream', numKvHeads: 2, rmsNormEps: 1e-6, qkvBias: true, logitShift: true },
  /** LLaDA family: one K/V head per query head, no bias, no shift. */
  'tiny-llada': { ...TINY_COMMON, family: 'llada', numKvHeads: 4, rmsNormEps: 1e-5, qkvBias: false, logitShift: false },
  /** About 63M parameters: the benchmark geometry (Dream family, 3 query heads per K/V head). */
  'medium-dream': {
    family: 'dream',
    hiddenSize: 768,
    numLayers: 8,
    numHeads: 12,
    numKvHeads: 4,
    headDim: 64,
    intermediateSize: 2048,
    vocabSize: 8192,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    maxPositions: 2048,
    tieWordEmbeddings: false,
    qkvBias: true,
    qkNorm: false,
    logitShift: true,
  },
};

/** Special tokens of the synthetic tokenizer: right after the 256 byte tokens. */
export const SYNTHETIC_TOKENS: SpecialTokens = { eos: [256], mask: 257, pad: 258, bos: null };
const SPECIAL_CONTENTS = ['<|endoftext|>', '<|mask|>', '<|pad|>'];

// ---------------------------------------------------------------------------------------------------------
// Seeded random weights

/** FNV-1a over the name and the seed: each tensor gets its own stream, independent of read order. */
function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** mulberry32: small, fast, good enough for weights. */
function uniformStream(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Normal draws of one stream, in consecutive pieces: filling a tensor piece by piece (even lengths but the
 * last) gives exactly the values of filling it at once, so a 15 GB checkpoint can be written in chunks.
 */
export function normalStream(seed: number, mean: number, std: number): (out: Float32Array) => Float32Array {
  const uniform = uniformStream(seed);
  return (out) => {
    for (let i = 0; i < out.length; i += 2) {
      // Box-Muller; 1 - u keeps the logarithm finite.
      const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
      const angle = 2 * Math.PI * uniform();
      out[i] = mean + std * radius * Math.cos(angle);
      if (i + 1 < out.length) out[i + 1] = mean + std * radius * Math.sin(angle);
    }
    return out;
  };
}

/**
 * Scales of the random init. Embeddings have unit RMS; q/k are scaled up so attention is sharp (score
 * std ≈ QK_GAIN²) and positions attend to different neighbours; the LM head makes logits spread with a
 * std of about LOGIT_SCALE, so the top token usually holds a clear share of the probability.
 */
const QK_GAIN = 2;
const LOGIT_SCALE = 4;

function initFor(arch: ModelArchitecture, name: string, shape: number[]): { mean: number; std: number } {
  const fanIn = shape[shape.length - 1];
  const logitStd = LOGIT_SCALE / Math.sqrt(arch.hiddenSize);
  if (name.endsWith('norm.weight')) return { mean: 1, std: 0.1 };
  if (name.endsWith('.bias')) return { mean: 0, std: 0.1 };
  // A tied table is also the LM head; RMSNorm makes the embedding's own scale irrelevant to the layers.
  if (name === WeightNames.embedTokens) return { mean: 0, std: arch.tieWordEmbeddings ? logitStd : 1 };
  if (name === WeightNames.lmHead) return { mean: 0, std: logitStd };
  if (name.endsWith('q_proj.weight') || name.endsWith('k_proj.weight')) return { mean: 0, std: QK_GAIN / Math.sqrt(fanIn) };
  return { mean: 0, std: 1 / Math.sqrt(fanIn) };
}

/** The draws of weight `name` of a synthetic model with this seed, as a stream (see `normalStream`). */
export function syntheticDraws(arch: ModelArchitecture, seed: number, name: string, shape: number[]): (out: Float32Array) => Float32Array {
  const { mean, std } = initFor(arch, name, shape);
  return normalStream(streamSeed(seed, name), mean, std);
}

export class SyntheticWeights implements WeightSource {
  private readonly shapes: Map<string, number[]>;

  constructor(
    readonly architecture: ModelArchitecture,
    readonly seed = 1,
  ) {
    this.shapes = expectedWeights(architecture);
  }

  names(): string[] {
    return [...this.shapes.keys()];
  }

  shape(name: string): number[] {
    const shape = this.shapes.get(name);
    if (!shape) throw new Error(`synthetic model has no weight ${name}`);
    return shape;
  }

  async read(name: string): Promise<Float32Array> {
    const shape = this.shape(name);
    const count = shape.reduce((a, b) => a * b, 1);
    return syntheticDraws(this.architecture, this.seed, name, shape)(new Float32Array(count));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizer

/** GPT-2's byte → printable character table used by byte-level BPE. */
export function byteLevelAlphabet(): string[] {
  const chars: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars[b] = String.fromCodePoint(printable ? b : next++);
  }
  return chars;
}

/**
 * A Hugging Face `tokenizer.json`: byte-level BPE over the 256 byte tokens, the special tokens of
 * SYNTHETIC_TOKENS, and merges of two-character pairs (common code characters first) until `vocabSize`
 * entries, so every id the model can produce decodes to text.
 */
export function syntheticTokenizerJson(vocabSize: number): string {
  const alphabet = byteLevelAlphabet();
  const base = 256 + SPECIAL_CONTENTS.length;
  if (vocabSize < base) throw new Error(`a synthetic tokenizer needs vocabSize >= ${base}`);
  const vocab: Record<string, number> = {};
  alphabet.forEach((ch, id) => (vocab[ch] = id));
  const common = ' etaoinsrlcdupmhgfybwvkxjqz_()[]{}.,:;=+-*/<>\'"0123456789\nETAOINSRLCDUPMHGFYBWVKXJQZ!?#&|%@$^~`\\\t';
  const pieces = [...common].map((ch) => alphabet[ch.charCodeAt(0)]);
  const merges: string[] = [];
  let id = base;
  outer: for (const left of pieces) {
    for (const right of pieces) {
      if (id >= vocabSize) break outer;
      vocab[left + right] = id++;
      merges.push(`${left} ${right}`);
    }
  }
  if (id < vocabSize) throw new Error(`a synthetic tokenizer supports at most ${id} tokens`);
  const addedTokens = SPECIAL_CONTENTS.map((content, i) => specialToken(256 + i, content));
  return JSON.stringify(byteLevelBpeTokenizerJson({ vocab, merges, addedTokens, split: { gpt2: true }, nfc: false }));
}

// ---------------------------------------------------------------------------------------------------------
// Model folders

/**
 * The variants a synthetic folder gets unless told otherwise: the CPU's (GroupQueryAttention, fp32 logits),
 * the GPUs' (decomposed attention, fp16, stats head) and a decomposed fp32 one for GPUs without fp16
 * shaders (SwiftShader's WebGPU among them).
 */
export const DEFAULT_SYNTHETIC_VARIANTS: VariantSpec[] = [
  { precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0, devices: ['cpu'] },
  { precision: 'fp16', cacheDtype: 'float16', attention: 'decomposed', head: 'stats', topK: 32 },
  { precision: 'fp32', cacheDtype: 'float32', attention: 'decomposed', head: 'logits', topK: 0 },
];

export interface SyntheticModelOptions {
  preset: SyntheticPreset;
  /** Overrides of the preset's geometry (e.g. tied embeddings, qk-norm). */
  architecture?: Partial<ModelArchitecture>;
  seed?: number;
  name?: string;
  variants?: VariantSpec[];
  decoding?: Partial<DecodingOptions>;
  externalData?: 'auto' | 'always';
}

export function syntheticArchitecture(preset: SyntheticPreset, overrides: Partial<ModelArchitecture> = {}): ModelArchitecture {
  return { ...SYNTHETIC_ARCHITECTURES[preset], ...overrides };
}

/** Writes graphs, tokenizer and manifest of a random-weight model into `dir`. */
export async function writeSyntheticModel(dir: string, options: SyntheticModelOptions): Promise<ModelManifest> {
  const architecture = syntheticArchitecture(options.preset, options.architecture);
  const seed = options.seed ?? 1;
  return writeModelFolder(dir, {
    name: options.name ?? `synthetic-${options.preset}`,
    architecture,
    tokens: SYNTHETIC_TOKENS,
    weights: new SyntheticWeights(architecture, seed),
    variants: options.variants ?? DEFAULT_SYNTHETIC_VARIANTS,
    tokenizerJson: syntheticTokenizerJson(architecture.vocabSize),
    decoding: options.decoding,
    source: { kind: 'synthetic', id: options.preset, seed },
    externalData: options.externalData,
  });
}

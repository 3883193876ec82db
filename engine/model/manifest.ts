/**
 * `dlm-model.json`: what the engine needs to know about a model folder besides its graphs and tokenizer —
 * the architecture, special tokens, the graph variants on disk (one per precision/cache dtype/attention
 * lowering/head) and the model's own decoding defaults. Reading validates everything and reports every
 * problem at once, naming the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DeviceOption } from '../../common/protocol';
import type { DecodingOptions } from '../../common/decodingOptions';
import { ATTENTION_LOWERINGS, INT4_ACCURACY_LEVELS, WEIGHT_PRECISIONS, type AttentionLowering, type CacheDtype, type HeadKind, type Int4AccuracyLevel, type WeightPrecision } from '../graph/stepContract';
import type { ModelArchitecture, SpecialTokens } from '../architecture/architecture';

export const MANIFEST_FILE = 'dlm-model.json';
export const MANIFEST_FORMAT = 'dlm-model/1';
export const DEFAULT_TOKENIZER_FILE = 'tokenizer.json';

export type ExecutionDevice = Exclude<DeviceOption, 'auto'>;

export interface GraphVariant {
  /** ONNX file name inside the model folder (its external data, if any, sits beside it). */
  file: string;
  precision: WeightPrecision;
  cacheDtype: CacheDtype;
  attention: AttentionLowering;
  head: HeadKind;
  /** K of the stats head. */
  topK?: number;
  /** int4 MatMulNBits `accuracy_level` (absent = 0). */
  int4AccuracyLevel?: Int4AccuracyLevel;
  /** Devices this variant was verified for; absent = any device. */
  devices?: ExecutionDevice[];
}

export interface ModelSource {
  kind: 'synthetic' | 'huggingface' | 'trained';
  /** Hugging Face id, or a preset name for synthetic models. */
  id?: string;
  revision?: string;
  /** Hash of the input weights (e.g. of the safetensors index). */
  sha?: string;
  seed?: number;
}

export interface ModelManifest {
  format: typeof MANIFEST_FORMAT;
  name: string;
  architecture: ModelArchitecture;
  tokens: SpecialTokens;
  /** Tokenizer file name inside the folder (Hugging Face `tokenizer.json` format). */
  tokenizer: string;
  variants: GraphVariant[];
  /** The model's own decoding defaults; the engine's defaults fill the rest. */
  decoding: Partial<DecodingOptions>;
  source?: ModelSource;
}

export class ManifestError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`invalid model manifest ${file}: ${problems.join('; ')}`);
    this.name = 'ManifestError';
  }
}

const FAMILIES = ['dream', 'llada'];
const CACHE_DTYPES: CacheDtype[] = ['float32', 'float16'];
const HEADS: HeadKind[] = ['logits', 'stats'];
const DEVICES: ExecutionDevice[] = ['cpu', 'webgpu', 'cuda', 'dml', 'coreml'];
const DECODING_KEYS: (keyof DecodingOptions)[] = [
  'steps', 'blockLength', 'schedule', 'threshold', 'algorithm', 'temperature', 'seed', 'cache',
  'refreshInterval', 'window', 'greedyOrder',
];
const POSITIVE_INTEGER_FIELDS: (keyof ModelArchitecture)[] = [
  'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'intermediateSize', 'vocabSize', 'maxPositions',
];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTokenId = (v: unknown, vocab: number) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocab;
/** A plain file name: no directories, so a manifest cannot point outside its folder. */
const isPlainFileName = (v: unknown) => typeof v === 'string' && v.length > 0 && v === path.basename(v) && v !== '..';

/** Every problem with `value` as a manifest; empty when it is valid. Checks files exist when `dir` is given. */
export function manifestProblems(value: unknown, dir?: string): string[] {
  const problems: string[] = [];
  if (!isObject(value)) return ['the manifest must be a JSON object'];
  if (value.format !== MANIFEST_FORMAT) problems.push(`format must be "${MANIFEST_FORMAT}", got ${JSON.stringify(value.format)}`);
  if (typeof value.name !== 'string' || !value.name) problems.push('name must be a non-empty string');

  let vocab = 0;
  const arch = value.architecture;
  if (!isObject(arch)) {
    problems.push('architecture must be an object');
  } else {
    if (!FAMILIES.includes(arch.family as string)) problems.push(`architecture.family must be one of ${FAMILIES.join(', ')}`);
    for (const field of POSITIVE_INTEGER_FIELDS) {
      if (!(Number.isInteger(arch[field]) && (arch[field] as number) > 0)) problems.push(`architecture.${field} must be a positive integer`);
    }
    for (const field of ['ropeTheta', 'rmsNormEps'] as const) {
      if (!(typeof arch[field] === 'number' && (arch[field] as number) > 0)) problems.push(`architecture.${field} must be a positive number`);
    }
    for (const field of ['tieWordEmbeddings', 'qkvBias', 'qkNorm', 'logitShift'] as const) {
      if (typeof arch[field] !== 'boolean') problems.push(`architecture.${field} must be true or false`);
    }
    if (Number.isInteger(arch.numHeads) && Number.isInteger(arch.numKvHeads) && (arch.numHeads as number) % (arch.numKvHeads as number) !== 0) {
      problems.push('architecture.numHeads must be a multiple of numKvHeads');
    }
    vocab = Number.isInteger(arch.vocabSize) ? (arch.vocabSize as number) : 0;
  }

  const tokens = value.tokens;
  if (!isObject(tokens)) {
    problems.push('tokens must be an object');
  } else {
    if (!isTokenId(tokens.mask, vocab)) problems.push('tokens.mask must be a token id below architecture.vocabSize');
    if (!Array.isArray(tokens.eos) || tokens.eos.length === 0 || !tokens.eos.every((t) => isTokenId(t, vocab))) {
      problems.push('tokens.eos must be a non-empty list of token ids below architecture.vocabSize');
    }
    for (const field of ['pad', 'bos'] as const) {
      if (tokens[field] !== null && !isTokenId(tokens[field], vocab)) problems.push(`tokens.${field} must be a token id or null`);
    }
  }

  if (!isPlainFileName(value.tokenizer)) problems.push('tokenizer must be a file name inside the model folder');
  else if (dir && !fs.existsSync(path.join(dir, value.tokenizer as string))) problems.push(`tokenizer file ${value.tokenizer} is missing`);

  if (!Array.isArray(value.variants) || value.variants.length === 0) {
    problems.push('variants must be a non-empty list');
  } else {
    value.variants.forEach((v: unknown, i: number) => {
      const at = `variants[${i}]`;
      if (!isObject(v)) return problems.push(`${at} must be an object`);
      if (!isPlainFileName(v.file)) problems.push(`${at}.file must be a file name inside the model folder`);
      else if (dir && !fs.existsSync(path.join(dir, v.file as string))) problems.push(`${at}: graph file ${v.file} is missing`);
      if (!WEIGHT_PRECISIONS.includes(v.precision as WeightPrecision)) problems.push(`${at}.precision must be one of ${WEIGHT_PRECISIONS.join(', ')}`);
      if (!CACHE_DTYPES.includes(v.cacheDtype as CacheDtype)) problems.push(`${at}.cacheDtype must be one of ${CACHE_DTYPES.join(', ')}`);
      if (!ATTENTION_LOWERINGS.includes(v.attention as AttentionLowering)) problems.push(`${at}.attention must be one of ${ATTENTION_LOWERINGS.join(', ')}`);
      if (!HEADS.includes(v.head as HeadKind)) problems.push(`${at}.head must be one of ${HEADS.join(', ')}`);
      if (v.head === 'stats' && !(Number.isInteger(v.topK) && (v.topK as number) >= 1)) problems.push(`${at}.topK must be a positive integer for the stats head`);
      if (v.int4AccuracyLevel !== undefined && !(INT4_ACCURACY_LEVELS.includes(v.int4AccuracyLevel as Int4AccuracyLevel) && v.precision === 'int4')) {
        problems.push(`${at}.int4AccuracyLevel must be one of ${INT4_ACCURACY_LEVELS.join(', ')}, on int4 weights only`);
      }
      if (v.devices !== undefined && !(Array.isArray(v.devices) && v.devices.every((d) => DEVICES.includes(d)))) {
        problems.push(`${at}.devices must list devices among ${DEVICES.join(', ')}`);
      }
      return undefined;
    });
  }

  if (!isObject(value.decoding)) problems.push('decoding must be an object (possibly empty)');
  else {
    for (const key of Object.keys(value.decoding)) {
      if (!DECODING_KEYS.includes(key as keyof DecodingOptions)) problems.push(`decoding.${key} is not a decoding option`);
    }
  }
  if (value.source !== undefined && !isObject(value.source)) problems.push('source must be an object when present');
  return problems;
}

export function readManifest(dir: string): ModelManifest {
  const file = path.join(dir, MANIFEST_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ManifestError(file, [`cannot read it: ${(error as Error).message}`]);
  }
  const problems = manifestProblems(parsed, dir);
  if (problems.length) throw new ManifestError(file, problems);
  return parsed as ModelManifest;
}

/** Validates (graph and tokenizer files must already be in `dir`) and writes the manifest. */
export function writeManifest(dir: string, manifest: ModelManifest): void {
  const file = path.join(dir, MANIFEST_FILE);
  const problems = manifestProblems(manifest, dir);
  if (problems.length) throw new ManifestError(file, problems);
  fs.writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
}

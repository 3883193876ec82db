/**
 * Writes a complete model folder (ARCHITECTURE.md, "The model folder"): one step graph per requested variant, the tokenizer and
 * `dlm-model.json`. Shared by the synthetic models and the Hugging Face converter, so every folder the
 * engine loads is laid out the same way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DecodingOptions } from '../../common/decodingOptions';
import { writeStepGraph, type StepGraphOptions } from '../graph/stepGraphBuilder';
import type { ModelArchitecture, SpecialTokens } from '../architecture/architecture';
import {
  DEFAULT_TOKENIZER_FILE,
  MANIFEST_FORMAT,
  writeManifest,
  type ExecutionDevice,
  type GraphVariant,
  type ModelManifest,
  type ModelSource,
} from './manifest';
import type { WeightSource } from '../architecture/weights';

export interface VariantSpec extends StepGraphOptions {
  /** Devices the variant is meant for (recorded in the manifest); absent = any. */
  devices?: ExecutionDevice[];
}

export interface ModelFolderSpec {
  name: string;
  architecture: ModelArchitecture;
  tokens: SpecialTokens;
  weights: WeightSource;
  variants: VariantSpec[];
  /** Contents of `tokenizer.json` (Hugging Face format). */
  tokenizerJson: string;
  decoding?: Partial<DecodingOptions>;
  source?: ModelSource;
  externalData?: 'auto' | 'always';
  /** Progress over all variants: weight tensors written so far and in total. */
  onProgress?: (done: number, total: number) => void;
}

/** e.g. `step.fp16.float16.gqa.stats16.onnx`, `step.int4acc4.float32.gqa.stats32.onnx`. */
export function variantFileName(v: StepGraphOptions): string {
  const head = v.head === 'stats' ? `stats${v.topK}` : 'logits';
  const precision = v.int4AccuracyLevel ? `${v.precision}acc${v.int4AccuracyLevel}` : v.precision;
  return `step.${precision}.${v.cacheDtype}.${v.attention}.${head}.onnx`;
}

export function graphMetadata(tokens: SpecialTokens): Record<string, string> {
  return {
    'dlm.mask_token_id': String(tokens.mask),
    'dlm.eos_token_ids': tokens.eos.join(','),
    'dlm.pad_token_id': tokens.pad === null ? '' : String(tokens.pad),
    'dlm.bos_token_id': tokens.bos === null ? '' : String(tokens.bos),
  };
}

export async function writeModelFolder(dir: string, spec: ModelFolderSpec): Promise<ModelManifest> {
  fs.mkdirSync(dir, { recursive: true });
  const variants: GraphVariant[] = [];
  let offset = 0;
  for (const v of spec.variants) {
    const file = variantFileName(v);
    let tensorsInVariant = 0;
    await writeStepGraph(spec.architecture, spec.weights, v, path.join(dir, file), {
      externalData: spec.externalData,
      metadata: graphMetadata(spec.tokens),
      onProgress: (done, total) => {
        tensorsInVariant = total;
        spec.onProgress?.(offset + done, total * spec.variants.length);
      },
    });
    offset += tensorsInVariant;
    variants.push({
      file,
      precision: v.precision,
      cacheDtype: v.cacheDtype,
      attention: v.attention,
      head: v.head,
      ...(v.head === 'stats' ? { topK: v.topK } : {}),
      ...(v.int4AccuracyLevel ? { int4AccuracyLevel: v.int4AccuracyLevel } : {}),
      ...(v.devices ? { devices: v.devices } : {}),
    });
  }
  fs.writeFileSync(path.join(dir, DEFAULT_TOKENIZER_FILE), spec.tokenizerJson);
  const manifest: ModelManifest = {
    format: MANIFEST_FORMAT,
    name: spec.name,
    architecture: spec.architecture,
    tokens: spec.tokens,
    tokenizer: DEFAULT_TOKENIZER_FILE,
    variants,
    decoding: spec.decoding ?? {},
    ...(spec.source ? { source: spec.source } : {}),
  };
  writeManifest(dir, manifest);
  return manifest;
}

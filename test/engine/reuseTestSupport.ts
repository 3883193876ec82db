/** Shared by the reuse tests: a tiny synthetic model folder with its depth-wise segments, loaded on the CPU. */
import * as fs from 'node:fs';
import type { ModelArchitecture } from '../../engine/architecture/architecture';
import type { GraphVariant, ModelManifest } from '../../engine/model/manifest';
import type { VariantSpec } from '../../engine/model/modelFolder';
import { writeSyntheticModel, type SyntheticPreset } from '../../engine/model/synthetic';
import type { DenoiseSpec } from '../../engine/denoiser/denoiser';
import { loadStepModel, type OnnxStepModel } from '../../engine/runtime/onnxStepModel';
import { SegmentedStepModel } from '../../engine/reuse/segmentedModel';
import { writeSegmentGraphs } from '../../engine/prepare/segmentGraphs';
import { temporaryDir } from './graphTestSupport';

export const FP32_GQA: VariantSpec = { precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0 };
export const FP32_DECOMPOSED: VariantSpec = { ...FP32_GQA, attention: 'decomposed' };
export const FP32_HYBRID: VariantSpec = { ...FP32_GQA, attention: 'hybrid' };
export const FP16_STATS: VariantSpec = { precision: 'fp16', cacheDtype: 'float16', attention: 'decomposed', head: 'stats', topK: 16 };

export interface SegmentedFixture {
  dir: string;
  manifest: ModelManifest;
  arch: ModelArchitecture;
  spec: DenoiseSpec;
  variants: { variant: GraphVariant; monolithic: OnnxStepModel; segments: SegmentedStepModel }[];
  release(): Promise<void>;
}

/** A synthetic model (4 layers unless overridden) with segments written for every variant, all loaded. */
export async function segmentedFixture(
  preset: SyntheticPreset,
  variants: VariantSpec[],
  architecture: Partial<ModelArchitecture> = { numLayers: 4 },
  options: { externalData?: 'always'; seed?: number } = {},
): Promise<SegmentedFixture> {
  const dir = temporaryDir(`reuse-${preset}`);
  const manifest = await writeSyntheticModel(dir, { preset, seed: options.seed ?? 5, variants, architecture, externalData: options.externalData });
  const arch = manifest.architecture;
  const loaded: SegmentedFixture['variants'] = [];
  for (const variant of manifest.variants) {
    writeSegmentGraphs(dir, variant, arch);
    const monolithic = (await loadStepModel(dir, manifest, { device: 'cpu', variant: variant.file })).model;
    const segments = await SegmentedStepModel.load(dir, arch, variant, 'cpu');
    loaded.push({ variant, monolithic, segments });
  }
  return {
    dir,
    manifest,
    arch,
    spec: { tokens: manifest.tokens, logitShift: arch.logitShift, vocabSize: arch.vocabSize },
    variants: loaded,
    async release() {
      for (const v of loaded) {
        await v.monolithic.release();
        await v.segments.release();
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Ordinary (byte) tokens, deterministic. */
export function byteTokens(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 37 + salt * 11 + 5) % 256);
}

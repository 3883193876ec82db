/**
 * Readies a model folder for prefix reuse: writes the depth-wise segments of every graph variant and the depth
 * profile (`dlm profile-depth`). The engine reuses prefixes only with a folder that has both.
 */
import * as path from 'node:path';
import { readManifest, type GraphVariant, type ModelManifest } from '../model/manifest';
import { Tokenizer } from '../model/tokenizer';
import { rankVariants } from '../runtime/executionProviders';
import { loadStepModel } from '../runtime/onnxStepModel';
import type { DeviceOption } from '../../common/protocol';
import { DEPTH_PROFILE_FORMAT, type DepthProfile } from '../reuse/depthProfile';
import { SegmentedStepModel } from '../reuse/segmentedModel';
import { BICACHE_THRESHOLD, DEFAULT_PROFILE_RATIOS, profileDepth, writeDepthProfile } from './depthProfiler';
import { writeSegmentGraphs } from './segmentGraphs';
import { loadSourceTexts } from './sourceTexts';

export interface PrepareOptions {
  device: DeviceOption;
  /** The variant to profile; default: the CPU's preferred one. */
  variant?: string;
  /** Source texts (see sourceTexts.ts). */
  source: string;
  /** Default: DEFAULT_PROFILE_RATIOS that leave room for the fill. */
  ratios?: number[];
  threshold?: number;
  samplesPerRatio?: number;
  /** Default: 512 tokens, or the model's positions when fewer. */
  canvasTokens?: number;
  fillTokens?: number;
  seed?: number;
  onProgress?(done: number, total: number): void;
}

export const DEFAULT_PROFILE_CANVAS = 512;
export const DEFAULT_PROFILE_FILL = 32;

/** The variant the profile is measured on: the one asked for, else the CPU's first choice. */
export function profiledVariant(manifest: ModelManifest, file?: string): GraphVariant {
  const variant = file ? manifest.variants.find((v) => v.file === file) : rankVariants(manifest.variants, 'cpu')[0] ?? manifest.variants[0];
  if (!variant) throw new Error(`the model has no variant ${file}`);
  return variant;
}

export async function prepareModelForReuse(modelDir: string, options: PrepareOptions): Promise<DepthProfile> {
  const manifest = readManifest(modelDir);
  const arch = manifest.architecture;
  for (const v of manifest.variants) writeSegmentGraphs(modelDir, v, arch);

  const variant = profiledVariant(manifest, options.variant);
  const canvasTokens = options.canvasTokens ?? Math.min(DEFAULT_PROFILE_CANVAS, arch.maxPositions);
  const fillTokens = options.fillTokens ?? Math.min(DEFAULT_PROFILE_FILL, Math.floor(canvasTokens / 4));
  const ratios = options.ratios ?? DEFAULT_PROFILE_RATIOS.filter((r) => Math.round(r * canvasTokens) + fillTokens <= canvasTokens);
  const tokenizer = Tokenizer.load(path.join(modelDir, manifest.tokenizer));
  const texts = loadSourceTexts(options.source);
  const tokens = texts.flatMap((t) => tokenizer.encode(t.text));

  const { model } = await loadStepModel(modelDir, manifest, { device: options.device, variant: variant.file });
  try {
    const measured = await profileDepth(model, manifest.tokens.mask, tokens, {
      ratios,
      threshold: options.threshold ?? BICACHE_THRESHOLD,
      canvasTokens,
      fillTokens,
      samplesPerRatio: options.samplesPerRatio ?? 8,
      seed: options.seed ?? 0,
      onProgress: options.onProgress,
    });
    const profile: DepthProfile = {
      format: DEPTH_PROFILE_FORMAT,
      variant: variant.file,
      source: `${texts.length} files from ${path.basename(options.source)} (${tokens.length} tokens)`,
      ...measured,
    };
    writeDepthProfile(modelDir, profile);
    return profile;
  } finally {
    await model.release();
  }
}

export interface CallOverhead {
  /** Median milliseconds of a one-row, no-context call: the step graph, and embed + every layer + head. */
  stepGraphMs: number;
  segmentsMs: number;
  /** Of the segments, per session call. */
  perSegmentCallMs: number;
}

/**
 * The cost of running depth-wise rather than in one call, where compute is negligible (one row, no context):
 * what a refresh call pays on top of its rows.
 */
export async function measureCallOverhead(modelDir: string, device: DeviceOption, variantFile?: string, repeats = 50): Promise<CallOverhead> {
  const manifest = readManifest(modelDir);
  const variant = profiledVariant(manifest, variantFile);
  const loaded = await loadStepModel(modelDir, manifest, { device, variant: variant.file });
  const segments = await SegmentedStepModel.load(modelDir, manifest.architecture, variant, loaded.device);
  try {
    const model = loaded.model;
    const empty = model.cacheDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    const one = model.cacheDtype === 'float16' ? new Uint16Array(1) : new Float32Array(1);
    const ids = new BigInt64Array(1);
    const feeds = { inputIds: ids, positionIds: ids, attentionBias: one, logitsIndex: ids, pastKeys: new Array(model.numLayers).fill(empty), pastValues: new Array(model.numLayers).fill(empty), contextLength: 0 };
    const stepGraph: number[] = [];
    const depthwise: number[] = [];
    for (let r = 0; r < repeats; r++) {
      let started = performance.now();
      await model.run(feeds);
      stepGraph.push(performance.now() - started);
      started = performance.now();
      const { hidden } = await segments.forward(feeds);
      await segments.predict(hidden, 1, ids);
      depthwise.push(performance.now() - started);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const segmentsMs = median(depthwise);
    return { stepGraphMs: median(stepGraph), segmentsMs, perSegmentCallMs: segmentsMs / (model.numLayers + 2) };
  } finally {
    await segments.release();
    await loaded.model.release();
  }
}

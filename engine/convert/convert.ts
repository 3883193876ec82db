/**
 * Hugging Face checkpoint folder → model folder (ARCHITECTURE.md, "The model folder"): step graph (+ external data), tokenizer.json and
 * dlm-model.json with family, shift, token ids, geometry, the model's decoding defaults and its source hash.
 *
 * All or nothing: the folder is written as a hidden temporary sibling of the output and renamed into place
 * at the end; any failure removes it. Free disk space is checked against the estimated size before the first
 * byte is written.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StepGraphOptions } from '../graph/stepGraphBuilder';
import { estimateWeightBytes } from '../graph/stepGraphBuilder';
import type { AttentionLowering, CacheDtype, HeadKind, WeightPrecision } from '../graph/stepContract';
import type { ModelArchitecture } from '../architecture/architecture';
import type { ModelManifest } from '../model/manifest';
import type { DecodingOptions } from '../../common/decodingOptions';
import { ensureFreeSpace } from '../machine/diskSpace';
import { writeModelFolder } from '../model/modelFolder';
import { decodingDefaults } from '../model/prompting';
import { PREFERRED_CPU_ATTENTION } from '../runtime/executionProviders';
import type { WeightSource } from '../architecture/weights';
import { HfCheckpoint } from './checkpoint';
import { ConversionError } from './families';
import { checkpointFingerprint } from './fingerprint';
import { F16_MAX } from '../graph/floatFormats';
import { isProcessRunning } from '../machine/processes';

export interface ConvertProgress {
  /** Weight tensors written, of all. */
  tensor: number;
  tensors: number;
  /** Checkpoint bytes read so far, of all the conversion reads. */
  bytesRead: number;
  totalBytes: number;
}

export interface ConvertOptions extends Partial<StepGraphOptions> {
  /** RoPE table size; defaults to the config's limit, capped (families.ts DEFAULT_MAX_POSITIONS). */
  maxPositions?: number;
  /** Manifest name; defaults to the folder name. */
  name?: string;
  /** Recorded in the manifest when the checkpoint came from the hub. */
  hubId?: { repo: string; revision: string };
  /** Decoding defaults to store instead of the ones taken from the model's family and name (prompting.ts). */
  decoding?: Partial<DecodingOptions>;
  /** Source hash when the caller has already computed it. */
  sourceHash?: string;
  externalData?: 'auto' | 'always';
  onProgress?: (p: ConvertProgress) => void;
  /** Stops the conversion before its next tensor (the temporary folder is removed, nothing is left behind). */
  signal?: AbortSignal;
}

export interface ConvertResult {
  outDir: string;
  manifest: ModelManifest;
  /** e.g. how many fp16 weights were clamped. */
  warnings: string[];
}

/** K of the stats head: enough candidates for temperature sampling at the models' default temperatures. */
export const DEFAULT_TOP_K = 32;

/**
 * The graph a conversion writes unless told otherwise: fp32 and int8 weights go with fp32 activations (the CPU's
 * variants, with the CPU's preferred attention; int8's DynamicQuantizeMatMul takes nothing else), 16-bit and int4
 * weights with fp16 activations and the decomposed attention (the GPUs' best: WebGPU's GroupQueryAttention has no
 * causal=0). Every one gets the stats head: full
 * logits of a real vocabulary cost more to copy out and scan on the host than a step's graph work on a GPU, and
 * on a CPU about 0.2 s a step at 152k tokens (README, "The cost of one step").
 */
export function defaultGraphOptions(options: Partial<StepGraphOptions> = {}): StepGraphOptions {
  const precision: WeightPrecision = options.precision ?? 'fp16';
  const cacheDtype: CacheDtype = options.cacheDtype ?? (precision === 'fp32' || precision === 'int8' ? 'float32' : 'float16');
  const head: HeadKind = options.head ?? 'stats';
  const attention: AttentionLowering = options.attention ?? (cacheDtype === 'float32' ? PREFERRED_CPU_ATTENTION : 'decomposed');
  // int4 weights with float32 activations are the CPU's graph: there accuracy_level 4 (int8 activations on the
  // VNNI/AVX-512/AVX2 kernels) makes the few-row steps of cached and carried requests about twice as cheap and the
  // rare cold full pass about 1.2x dearer (README, "The cost of one step"). GPU graphs (fp16 activations) keep 0.
  const int4AccuracyLevel = options.int4AccuracyLevel ?? (precision === 'int4' && cacheDtype === 'float32' ? 4 : 0);
  return {
    precision, cacheDtype, attention, head, topK: options.topK ?? (head === 'stats' ? DEFAULT_TOP_K : 0),
    ...(int4AccuracyLevel ? { int4AccuracyLevel } : {}),
  };
}

/** Headroom over the weight estimate: protobuf, alignment padding, RoPE tables, tokenizer. */
const SIZE_MARGIN = 1.05;
const SIZE_SLACK_BYTES = 64 * 1024 ** 2;

/** Disk a converted model folder takes at most: the weights at `precision` with headroom, and the tokenizer. */
export function estimateConvertedBytes(arch: ModelArchitecture, precision: WeightPrecision, tokenizerBytes = 0): number {
  return estimateWeightBytes(arch, precision) * SIZE_MARGIN + tokenizerBytes + SIZE_SLACK_BYTES;
}

export async function convertCheckpoint(srcDir: string, outDir: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  const out = path.resolve(outDir);
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0) {
    throw new ConversionError(`${out} already exists and is not empty; remove it or choose another output folder`);
  }
  const graph = defaultGraphOptions(options);
  const checkpoint = await HfCheckpoint.open(srcDir, { maxPositions: options.maxPositions });
  const parent = path.dirname(out);
  fs.mkdirSync(parent, { recursive: true });
  removeAbandonedTemporaries(parent, path.basename(out));
  const temp = path.join(parent, `${temporaryPrefix(path.basename(out))}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const arch = checkpoint.architecture;
    await checkFreeSpace(parent, estimateConvertedBytes(arch, graph.precision, checkpoint.tokenizer.text.length));
    const sourceHash = options.sourceHash ?? (await checkpointFingerprint(srcDir));
    const halves = graph.precision === 'fp32' ? undefined : countingHalfOverflow(checkpoint.weights);
    const progress = progressReporter(checkpoint, options.onProgress, options.signal);
    fs.mkdirSync(temp);
    const manifest = await writeModelFolder(temp, {
      name: options.name ?? (options.hubId?.repo ?? path.basename(path.resolve(srcDir))),
      architecture: arch,
      tokens: checkpoint.tokens,
      weights: progress.weights(halves?.source ?? checkpoint.weights),
      variants: [graph],
      tokenizerJson: checkpoint.tokenizer.text,
      decoding:
        options.decoding ??
        decodingDefaults(checkpoint.family.id, [...(options.hubId ? [options.hubId.repo] : []), ...checkpoint.names()], arch),
      source: {
        kind: 'huggingface',
        ...(options.hubId ? { id: options.hubId.repo, revision: options.hubId.revision } : {}),
        sha: sourceHash,
      },
      externalData: options.externalData,
      onProgress: progress.onTensor,
    });
    if (fs.existsSync(out)) fs.rmdirSync(out); // empty (checked above); rename cannot replace a folder everywhere
    fs.renameSync(temp, out);
    return { outDir: out, manifest, warnings: halves?.warnings() ?? [] };
  } catch (error) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw error;
  } finally {
    await checkpoint.close();
  }
}

const temporaryPrefix = (base: string) => `.${base}.partial-`;

/**
 * A conversion killed before it could clean up (the editor closed, the machine slept) leaves its temporary
 * folder behind, gigabytes for a 7B model; those of processes no longer running are removed.
 */
function removeAbandonedTemporaries(parent: string, base: string): void {
  const prefix = temporaryPrefix(base);
  for (const entry of fs.readdirSync(parent)) {
    const pid = entry.startsWith(prefix) ? Number(/^(\d+)-/.exec(entry.slice(prefix.length))?.[1]) : NaN;
    if (Number.isInteger(pid) && !isProcessRunning(pid)) fs.rmSync(path.join(parent, entry), { recursive: true, force: true });
  }
}


export function checkFreeSpace(dir: string, neededBytes: number): Promise<void> {
  return ensureFreeSpace(dir, neededBytes, 'the converted model', 'free some space or choose an output folder on another disk');
}

/**
 * 16-bit graphs store weights as fp16, where values beyond ±65504 saturate (graph/float16.ts); bf16
 * checkpoints can hold such values, so they are counted per tensor and reported.
 */
function countingHalfOverflow(weights: WeightSource) {
  const overflowPerTensor = new Map<string, number>();
  const source: WeightSource = {
    names: () => weights.names(),
    shape: (name) => weights.shape(name),
    async read(name) {
      const values = await weights.read(name);
      let overflow = 0;
      for (let i = 0; i < values.length; i++) if (values[i] > F16_MAX || values[i] < -F16_MAX) overflow++;
      if (overflow) overflowPerTensor.set(name, overflow);
      return values;
    },
  };
  const warnings = (): string[] =>
    [...overflowPerTensor].map(([name, n]) => `${name}: ${n} weights beyond the fp16 range were clamped to ±${F16_MAX}`);
  return { source, warnings };
}

/**
 * Reports tensors written (the builder's count) and checkpoint bytes read (each tensor counted once); stops at
 * the next tensor once `signal` is aborted.
 */
function progressReporter(checkpoint: HfCheckpoint, onProgress: ConvertOptions['onProgress'], signal: AbortSignal | undefined) {
  const totalBytes = checkpoint.weights.sourceBytes();
  const read = new Set<string>();
  let bytesRead = 0;
  return {
    weights(source: WeightSource): WeightSource {
      return {
        names: () => source.names(),
        shape: (name) => source.shape(name),
        read: async (name) => {
          if (signal?.aborted) throw new ConversionError('the conversion was cancelled');
          const values = await source.read(name);
          if (!read.has(name)) {
            read.add(name);
            bytesRead += checkpoint.weights.sourceBytesOf(name);
          }
          return values;
        },
      };
    },
    onTensor: (tensor: number, tensors: number) => onProgress?.({ tensor, tensors, bytesRead, totalBytes }),
  };
}

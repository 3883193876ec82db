/**
 * The StepModel the denoiser runs against, over an onnxruntime-node session of one graph variant.
 *
 * The run path is the hot loop of every benchmark, so it does no more than the contract needs: host arrays
 * are wrapped as tensors without copying (onnxruntime reads them in place), outputs are handed back as the
 * arrays onnxruntime returns, and only the stats head's int64 ids are narrowed to Int32Array.
 */
import * as path from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { DeviceOption } from '../protocol';
import type { ModelArchitecture } from '../model/architecture';
import type { ExecutionDevice, GraphVariant, ModelManifest } from '../model/manifest';
import {
  StepInput,
  StepOutput,
  type CacheDtype,
  type HeadKind,
  type KvArray,
  type RowPredictions,
  type StepFeeds,
  type StepModel,
  type StepResult,
} from '../graph/stepContract';
import { autoSkipReason, backendUnavailableReason, candidateDevices, rankVariants, sessionOptionsFor } from './executionProviders';

export interface LoadStepModelOptions {
  device: DeviceOption;
  /** A variant's file name, to use that variant instead of the device's best. */
  variant?: string;
}

export interface LoadedStepModel {
  model: OnnxStepModel;
  device: ExecutionDevice;
  variant: GraphVariant;
  /** Why the requested device (`auto`: each GPU tried) was not used. */
  fallbackReason?: string;
  /** Better-ranked variants that failed on `device`, with the reason (e.g. no fp16 shaders). */
  skippedVariants?: string[];
}

export class OnnxStepModel implements StepModel {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly cacheDtype: CacheDtype;
  readonly head: HeadKind;
  readonly vocabSize: number;
  private readonly pastKeyNames: string[];
  private readonly pastValueNames: string[];
  private readonly newKeyNames: string[];
  private readonly newValueNames: string[];

  constructor(
    private readonly session: InferenceSession,
    readonly variant: GraphVariant,
    arch: ModelArchitecture,
  ) {
    this.numLayers = arch.numLayers;
    this.numKvHeads = arch.numKvHeads;
    this.headDim = arch.headDim;
    this.vocabSize = arch.vocabSize;
    this.cacheDtype = variant.cacheDtype;
    this.head = variant.head;
    const layers = Array.from({ length: arch.numLayers }, (_, l) => l);
    this.pastKeyNames = layers.map(StepInput.pastKey);
    this.pastValueNames = layers.map(StepInput.pastValue);
    this.newKeyNames = layers.map(StepOutput.newKey);
    this.newValueNames = layers.map(StepOutput.newValue);
    this.checkSignature();
  }

  async run(feeds: StepFeeds): Promise<StepResult> {
    const q = feeds.inputIds.length;
    const c = feeds.contextLength;
    const r = feeds.logitsIndex.length;
    const kvType = this.cacheDtype;
    const cacheDims = [1, this.numKvHeads, c, this.headDim];
    const inputs: Record<string, Tensor> = {
      [StepInput.inputIds]: new Tensor('int64', feeds.inputIds, [1, q]),
      [StepInput.positionIds]: new Tensor('int64', feeds.positionIds, [1, q]),
      [StepInput.attentionBias]: new Tensor(kvType, feeds.attentionBias, [1, 1, q, c + q]),
      [StepInput.logitsIndex]: new Tensor('int64', feeds.logitsIndex, [1, r]),
    };
    for (let l = 0; l < this.numLayers; l++) {
      inputs[this.pastKeyNames[l]] = new Tensor(kvType, feeds.pastKeys[l], cacheDims);
      inputs[this.pastValueNames[l]] = new Tensor(kvType, feeds.pastValues[l], cacheDims);
    }
    const outputs = await this.session.run(inputs);
    const newKeys: KvArray[] = new Array(this.numLayers);
    const newValues: KvArray[] = new Array(this.numLayers);
    for (let l = 0; l < this.numLayers; l++) {
      newKeys[l] = outputs[this.newKeyNames[l]].data as KvArray;
      newValues[l] = outputs[this.newValueNames[l]].data as KvArray;
    }
    return { predictions: readPredictions(outputs, this.head, r, this.vocabSize, this.variant.topK), newKeys, newValues };
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  /** Fails early, with names, when the graph file does not have the I/O its manifest entry promises. */
  private checkSignature(): void {
    const expectedInputs = [StepInput.inputIds, StepInput.positionIds, StepInput.attentionBias, StepInput.logitsIndex, ...this.pastKeyNames, ...this.pastValueNames];
    const headOutputs = this.head === 'logits' ? [StepOutput.logits] : [StepOutput.topIds, StepOutput.topProbs, StepOutput.entropy];
    const expectedOutputs = [...headOutputs, ...this.newKeyNames, ...this.newValueNames];
    const missing = [
      ...expectedInputs.filter((n) => !this.session.inputNames.includes(n)).map((n) => `input ${n}`),
      ...expectedOutputs.filter((n) => !this.session.outputNames.includes(n)).map((n) => `output ${n}`),
    ];
    if (missing.length) throw new Error(`graph ${this.variant.file} does not follow the step contract: missing ${missing.join(', ')}`);
  }
}

/**
 * The head outputs of a run as RowPredictions (shared with the depth-wise head segment, engine/reuse): the
 * arrays onnxruntime returned, the stats head's int64 ids narrowed to Int32Array.
 */
export function readPredictions(
  outputs: InferenceSession.OnnxValueMapType,
  head: HeadKind,
  rows: number,
  vocabSize: number,
  topK: number | undefined,
): RowPredictions {
  if (head === 'logits') {
    return { kind: 'logits', rows, vocabSize, logits: outputs[StepOutput.logits].data as Float32Array };
  }
  const ids = outputs[StepOutput.topIds].data as BigInt64Array;
  const topIds = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) topIds[i] = Number(ids[i]);
  return {
    kind: 'stats',
    rows,
    k: topK ?? ids.length / Math.max(rows, 1),
    topIds,
    topProbs: outputs[StepOutput.topProbs].data as Float32Array,
    entropy: outputs[StepOutput.entropy].data as Float32Array,
  };
}

/**
 * Creates a session for the model on the requested device. An explicit device either works or throws;
 * `auto` tries the platform's GPU providers and falls back to the CPU, saying why in `fallbackReason`.
 * On a device, variants are tried best first (see `rankVariants`) until one creates a session and runs a
 * one-row probe: some failures only show when kernels are first compiled (e.g. a WebGPU adapter without
 * shader-f16 accepts an fp16 session, then fails its first run).
 */
export async function loadStepModel(modelDir: string, manifest: ModelManifest, options: LoadStepModelOptions): Promise<LoadedStepModel> {
  const deviceFailures: string[] = [];
  for (const device of candidateDevices(options.device)) {
    const unavailable = backendUnavailableReason(device) ?? (options.device === 'auto' ? autoSkipReason(device) : null);
    if (unavailable) {
      deviceFailures.push(`${device}: ${unavailable}`);
      continue;
    }
    const variants = options.variant
      ? manifest.variants.filter((v) => v.file === options.variant)
      : rankVariants(manifest.variants, device);
    if (variants.length === 0) {
      deviceFailures.push(`${device}: ${options.variant ? `the model has no variant ${options.variant}` : 'the model has no graph variant for it'}`);
      continue;
    }
    const variantFailures: string[] = [];
    for (const variant of variants) {
      let session: InferenceSession | undefined;
      try {
        // Created by path so onnxruntime resolves external data next to the graph.
        session = await InferenceSession.create(path.join(modelDir, variant.file), sessionOptionsFor(device));
        const model = new OnnxStepModel(session, variant, manifest.architecture);
        await model.run(probeFeeds(model));
        return {
          model,
          device,
          variant,
          ...(deviceFailures.length ? { fallbackReason: deviceFailures.join('; ') } : {}),
          ...(variantFailures.length ? { skippedVariants: variantFailures } : {}),
        };
      } catch (error) {
        await session?.release();
        variantFailures.push(`${variant.file}: ${firstLine((error as Error).message)}`);
      }
    }
    deviceFailures.push(`${device}: ${variantFailures.join('; ')}`);
  }
  throw new Error(`cannot run ${manifest.name} on ${options.device}: ${deviceFailures.join('; ')}`);
}

/** One row at position 0, no cache: the cheapest call that runs every kernel of the graph. */
function probeFeeds(model: OnnxStepModel): StepFeeds {
  const empty = model.cacheDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
  return {
    inputIds: new BigInt64Array(1),
    positionIds: new BigInt64Array(1),
    attentionBias: model.cacheDtype === 'float16' ? new Uint16Array(1) : new Float32Array(1),
    logitsIndex: new BigInt64Array(1),
    pastKeys: new Array(model.numLayers).fill(empty),
    pastValues: new Array(model.numLayers).fill(empty),
    contextLength: 0,
  };
}

function firstLine(message: string): string {
  return message.split('\n')[0].trim();
}

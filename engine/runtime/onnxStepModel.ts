/**
 * The StepModel the denoiser runs against, over an onnxruntime-node session of one graph variant.
 *
 * The run path is the hot loop of every benchmark, so it does no more than the contract needs: host arrays
 * are wrapped as tensors without copying (onnxruntime reads them in place), outputs are handed back as the
 * arrays onnxruntime returns, only the outputs the caller reads are fetched (new K/V nobody stores are not
 * copied out), and only the stats head's int64 ids are narrowed to Int32Array.
 *
 * On WebGPU the session returns new K/V as device tensors (deviceKv.ts says why always): the caller can keep
 * them there (`newKv: 'device'`) and feed them back as context (`devicePast`); host callers get them through
 * the download helper, so the model serves every StepModel caller either way.
 */
import * as path from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { DeviceOption } from '../../common/protocol';
import type { ModelArchitecture } from '../architecture/architecture';
import type { ExecutionDevice, GraphVariant, ModelManifest } from '../model/manifest';
import {
  StepInput,
  StepOutput,
  type CacheDtype,
  type DeviceKvOps,
  type HeadKind,
  type KvArray,
  type RowPredictions,
  type StepFeeds,
  type StepModel,
  type StepResult,
  type StepRunOptions,
} from '../graph/stepContract';
import { DeviceKvHelper, OrtDeviceKv } from './deviceKv';
import { autoSkipReason, backendUnavailableReason, candidateDevices, keepsKvOnDevice, rankVariants, sessionOptionsFor } from './executionProviders';

export interface LoadStepModelOptions {
  device: DeviceOption;
  /** A variant's file name, to use that variant instead of the device's best. */
  variant?: string;
  /** Session options over the device's own (e.g. threads, for the step-cost benchmark). */
  sessionOptions?: InferenceSession.SessionOptions;
  /** Devices not to try, with why (e.g. the model does not fit their memory). */
  exclude?: Partial<Record<ExecutionDevice, string>>;
}

export interface LoadedStepModel {
  model: OnnxStepModel;
  device: ExecutionDevice;
  variant: GraphVariant;
  /** Why the requested device (`auto`: each GPU tried) was not used. */
  fallbackReason?: string;
  /** Better-ranked variants that failed on `device`, with the reason (e.g. no fp16 shaders). */
  skippedVariants?: string[];
  /** Why K/V could not be kept on a device that supports it (the model then moves them through the host). */
  deviceKvUnavailable?: string;
}

export class OnnxStepModel implements StepModel {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly cacheDtype: CacheDtype;
  readonly head: HeadKind;
  readonly vocabSize: number;
  /** Set when the session returns new K/V on the device (WebGPU). */
  readonly deviceKv?: DeviceKvOps;
  private readonly pastKeyNames: string[];
  private readonly pastValueNames: string[];
  private readonly newKeyNames: string[];
  private readonly newValueNames: string[];
  /** Every output, and the head's outputs only (a call whose new K/V nobody reads). */
  private readonly allOutputs: string[];
  private readonly headOutputs: string[];
  /** Per layer, a 0-element array: the new K/V of a call that does not return them to the host. */
  private readonly noKv: KvArray[];

  /**
   * @param deviceKvHelper given exactly when `session` returns every new K/V output as a device tensor.
   */
  constructor(
    private readonly session: InferenceSession,
    readonly variant: GraphVariant,
    arch: ModelArchitecture,
    private readonly deviceKvHelper: DeviceKvHelper | null = null,
  ) {
    this.numLayers = arch.numLayers;
    this.numKvHeads = arch.numKvHeads;
    this.headDim = arch.headDim;
    this.vocabSize = arch.vocabSize;
    this.cacheDtype = variant.cacheDtype;
    this.head = variant.head;
    if (deviceKvHelper) this.deviceKv = deviceKvHelper;
    const layers = Array.from({ length: arch.numLayers }, (_, l) => l);
    this.pastKeyNames = layers.map(StepInput.pastKey);
    this.pastValueNames = layers.map(StepInput.pastValue);
    this.newKeyNames = layers.map(StepOutput.newKey);
    this.newValueNames = layers.map(StepOutput.newValue);
    this.headOutputs = headOutputNames(variant.head);
    this.allOutputs = [...this.headOutputs, ...this.newKeyNames, ...this.newValueNames];
    const empty = variant.cacheDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    this.noKv = layers.map(() => empty);
    this.checkSignature();
  }

  async run(feeds: StepFeeds, options: StepRunOptions = {}): Promise<StepResult> {
    const newKv = options.newKv ?? 'host';
    const helper = this.deviceKvHelper;
    if (!helper && (newKv === 'device' || options.devicePast)) throw new Error('this model keeps no K/V on a device');
    const q = feeds.inputIds.length;
    const c = feeds.contextLength;
    const r = feeds.logitsIndex.length;
    const kvType = this.cacheDtype;
    const inputs: Record<string, Tensor> = {
      [StepInput.inputIds]: new Tensor('int64', feeds.inputIds, [1, q]),
      [StepInput.positionIds]: new Tensor('int64', feeds.positionIds, [1, q]),
      [StepInput.attentionBias]: new Tensor(kvType, feeds.attentionBias, [1, 1, q, c + q]),
      [StepInput.logitsIndex]: new Tensor('int64', feeds.logitsIndex, [1, r]),
    };
    const devicePast = options.devicePast;
    if (devicePast) {
      if (!(devicePast instanceof OrtDeviceKv) || devicePast.isDisposed) throw new Error('devicePast must be live device K/V of this model');
      if (devicePast.rows !== c) throw new Error(`devicePast holds ${devicePast.rows} rows, contextLength is ${c}`);
      for (let l = 0; l < this.numLayers; l++) {
        inputs[this.pastKeyNames[l]] = devicePast.keys[l];
        inputs[this.pastValueNames[l]] = devicePast.values[l];
      }
    } else {
      const cacheDims = [1, this.numKvHeads, c, this.headDim];
      for (let l = 0; l < this.numLayers; l++) {
        inputs[this.pastKeyNames[l]] = new Tensor(kvType, feeds.pastKeys[l], cacheDims);
        inputs[this.pastValueNames[l]] = new Tensor(kvType, feeds.pastValues[l], cacheDims);
      }
    }
    // With device outputs (IO binding) every run must fetch every output; they stay on the device anyway.
    const outputs = await this.session.run(inputs, helper || newKv === 'host' ? this.allOutputs : this.headOutputs);
    const predictions = readPredictions(outputs, this.head, r, this.vocabSize, this.variant.topK);
    if (!helper) {
      if (newKv === 'none') return { predictions, newKeys: this.noKv, newValues: this.noKv };
      return {
        predictions,
        newKeys: this.newKeyNames.map((n) => outputs[n].data as KvArray),
        newValues: this.newValueNames.map((n) => outputs[n].data as KvArray),
      };
    }
    const fresh = new OrtDeviceKv(
      this.newKeyNames.map((n) => outputs[n] as Tensor),
      this.newValueNames.map((n) => outputs[n] as Tensor),
      q,
    );
    if (newKv === 'device') return { predictions, newKeys: this.noKv, newValues: this.noKv, deviceNewKv: fresh };
    try {
      if (newKv === 'none') return { predictions, newKeys: this.noKv, newValues: this.noKv };
      const { keys, values } = await helper.download(fresh);
      return { predictions, newKeys: keys, newValues: values };
    } finally {
      fresh.dispose();
    }
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.deviceKvHelper?.release();
  }

  /** Fails early, with names, when the graph file does not have the I/O its manifest entry promises. */
  private checkSignature(): void {
    const expectedInputs = [StepInput.inputIds, StepInput.positionIds, StepInput.attentionBias, StepInput.logitsIndex, ...this.pastKeyNames, ...this.pastValueNames];
    const missing = [
      ...expectedInputs.filter((n) => !this.session.inputNames.includes(n)).map((n) => `input ${n}`),
      ...this.allOutputs.filter((n) => !this.session.outputNames.includes(n)).map((n) => `output ${n}`),
    ];
    if (missing.length) throw new Error(`graph ${this.variant.file} does not follow the step contract: missing ${missing.join(', ')}`);
  }
}

function headOutputNames(head: HeadKind): string[] {
  return head === 'logits' ? [StepOutput.logits] : [StepOutput.topIds, StepOutput.topProbs, StepOutput.entropy];
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
    const unavailable = backendUnavailableReason(device) ?? options.exclude?.[device] ?? (options.device === 'auto' ? autoSkipReason(device) : null);
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
      let deviceKvUnavailable: string | undefined;
      try {
        let model: OnnxStepModel | undefined;
        if (keepsKvOnDevice(device)) {
          try {
            model = await openVariant(modelDir, manifest, variant, device, true, options.sessionOptions);
          } catch (error) {
            deviceKvUnavailable = firstLine((error as Error).message);
          }
        }
        model ??= await openVariant(modelDir, manifest, variant, device, false, options.sessionOptions);
        return {
          model,
          device,
          variant,
          ...(deviceFailures.length ? { fallbackReason: deviceFailures.join('; ') } : {}),
          ...(variantFailures.length ? { skippedVariants: variantFailures } : {}),
          ...(deviceKvUnavailable ? { deviceKvUnavailable } : {}),
        };
      } catch (error) {
        variantFailures.push(`${variant.file}: ${firstLine((error as Error).message)}`);
      }
    }
    deviceFailures.push(`${device}: ${variantFailures.join('; ')}`);
  }
  throw new Error(`cannot run ${manifest.name} on ${options.device}: ${deviceFailures.join('; ')}`);
}

/** A session of `variant` on `device` that passed the probe; with `deviceKv`, one returning new K/V on the device. */
async function openVariant(
  modelDir: string,
  manifest: ModelManifest,
  variant: GraphVariant,
  device: ExecutionDevice,
  deviceKv: boolean,
  overrides: InferenceSession.SessionOptions = {},
): Promise<OnnxStepModel> {
  const arch = manifest.architecture;
  const options = { ...sessionOptionsFor(device), ...overrides };
  let session: InferenceSession | undefined;
  let helper: DeviceKvHelper | null = null;
  try {
    if (deviceKv) {
      const onDevice: Record<string, 'gpu-buffer' | 'cpu'> = {};
      for (let l = 0; l < arch.numLayers; l++) {
        onDevice[StepOutput.newKey(l)] = 'gpu-buffer';
        onDevice[StepOutput.newValue(l)] = 'gpu-buffer';
      }
      // Created by path so onnxruntime resolves external data next to the graph.
      session = await InferenceSession.create(path.join(modelDir, variant.file), { ...options, preferredOutputLocation: onDevice });
      helper = await DeviceKvHelper.create({ ...arch, cacheDtype: variant.cacheDtype }, options);
    } else {
      session = await InferenceSession.create(path.join(modelDir, variant.file), options);
    }
    const model = new OnnxStepModel(session, variant, arch, helper);
    await probe(model);
    return model;
  } catch (error) {
    await session?.release();
    await helper?.release();
    throw error;
  }
}

/**
 * The cheapest calls that run every kernel: one row at position 0 without context; with device K/V, that row
 * kept on the device and fed back as the context of a second call whose new K/V are read on the host.
 */
async function probe(model: OnnxStepModel): Promise<void> {
  const feeds = probeFeeds(model, 0);
  if (!model.deviceKv) {
    await model.run(feeds);
    return;
  }
  const first = await model.run(feeds, { newKv: 'device' });
  try {
    await model.run(probeFeeds(model, 1), { devicePast: first.deviceNewKv });
  } finally {
    first.deviceNewKv?.dispose();
  }
}

/** One row at position 0 with `context` rows of context (given on the device, so the host arrays are empty). */
function probeFeeds(model: OnnxStepModel, context: number): StepFeeds {
  const empty = model.cacheDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
  return {
    inputIds: new BigInt64Array(1),
    positionIds: new BigInt64Array(1),
    attentionBias: model.cacheDtype === 'float16' ? new Uint16Array(1 + context) : new Float32Array(1 + context),
    logitsIndex: new BigInt64Array(1),
    pastKeys: new Array(model.numLayers).fill(empty),
    pastValues: new Array(model.numLayers).fill(empty),
    contextLength: context,
  };
}

function firstLine(message: string): string {
  return message.split('\n')[0].trim();
}

/**
 * The depth-wise segments of one graph variant (prepare/segmentGraphs.ts) as onnxruntime sessions: embed, one session
 * per layer, head. Each call wraps host arrays as tensors without copying, like OnnxStepModel; hidden states
 * cross the boundary in the variant's activation dtype (fp16 as raw half bits).
 */
import * as path from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { StepInput, StepOutput, type CacheDtype, type HeadKind, type KvArray, type RowPredictions, type StepFeeds } from '../graph/stepContract';
import type { ModelArchitecture } from '../architecture/architecture';
import type { ExecutionDevice, GraphVariant } from '../model/manifest';
import { sessionOptionsFor } from '../runtime/executionProviders';
import { readPredictions } from '../runtime/onnxStepModel';
import { SegmentIo, segmentFileNames } from './segmentFiles';

export interface LayerInput {
  /** [Q, H] hidden states entering the layer. */
  hidden: KvArray;
  positionIds: BigInt64Array; // [Q]
  /** [Q, C+Q], as in the step contract. */
  attentionBias: KvArray;
  /** [Hkv, C, D]. */
  pastKey: KvArray;
  pastValue: KvArray;
  contextLength: number;
}

export interface LayerOutput {
  /** [Q, H] hidden states leaving the layer. */
  hidden: KvArray;
  /** [Hkv, Q, D]. */
  newKey: KvArray;
  newValue: KvArray;
}

export class SegmentedStepModel {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly hiddenSize: number;
  readonly cacheDtype: CacheDtype;
  readonly head: HeadKind;
  private readonly vocabSize: number;

  private constructor(
    private readonly embedSession: InferenceSession,
    private readonly layerSessions: InferenceSession[],
    private readonly headSession: InferenceSession,
    readonly variant: GraphVariant,
    arch: ModelArchitecture,
  ) {
    this.numLayers = arch.numLayers;
    this.numKvHeads = arch.numKvHeads;
    this.headDim = arch.headDim;
    this.hiddenSize = arch.hiddenSize;
    this.vocabSize = arch.vocabSize;
    this.cacheDtype = variant.cacheDtype;
    this.head = variant.head;
  }

  /** Sessions for the variant's segments, which must already be in the model folder. */
  static async load(modelDir: string, arch: ModelArchitecture, variant: GraphVariant, device: ExecutionDevice): Promise<SegmentedStepModel> {
    const files = segmentFileNames(variant, arch.numLayers);
    // Each session has its own intra-op thread pool, and a pool spins for a while after its run: with a session
    // per layer, run back to back, the spinning pools of the last layers steal the cores from the next one.
    // Measured on the typing model (6 layers, 480 rows, 2 cores): with spinning 2x the CPU time of the step
    // graph, without it the same.
    const options = { ...sessionOptionsFor(device), extra: { session: { intra_op: { allow_spinning: '0' } } } };
    const open = (file: string) => InferenceSession.create(path.join(modelDir, file), options);
    const sessions: InferenceSession[] = [];
    try {
      const embed = await open(files.embed);
      sessions.push(embed);
      const layers: InferenceSession[] = [];
      for (const file of files.layers) {
        const layer = await open(file);
        sessions.push(layer);
        layers.push(layer);
      }
      const head = await open(files.head);
      sessions.push(head);
      return new SegmentedStepModel(embed, layers, head, variant, arch);
    } catch (error) {
      await Promise.all(sessions.map((s) => s.release()));
      throw error;
    }
  }

  /** [Q, H] embeddings of `ids`. */
  async embed(ids: BigInt64Array): Promise<KvArray> {
    const outputs = await this.embedSession.run({ [StepInput.inputIds]: new Tensor('int64', ids, [1, ids.length]) });
    return outputs[SegmentIo.hiddenOut].data as KvArray;
  }

  async layer(layer: number, input: LayerInput): Promise<LayerOutput> {
    const q = input.positionIds.length;
    const c = input.contextLength;
    const F = this.cacheDtype;
    const cacheDims = [1, this.numKvHeads, c, this.headDim];
    const outputs = await this.layerSessions[layer].run({
      [SegmentIo.hiddenIn]: new Tensor(F, input.hidden, [1, q, this.hiddenSize]),
      [StepInput.positionIds]: new Tensor('int64', input.positionIds, [1, q]),
      [StepInput.attentionBias]: new Tensor(F, input.attentionBias, [1, 1, q, c + q]),
      [StepInput.pastKey(layer)]: new Tensor(F, input.pastKey, cacheDims),
      [StepInput.pastValue(layer)]: new Tensor(F, input.pastValue, cacheDims),
    });
    return {
      hidden: outputs[SegmentIo.hiddenOut].data as KvArray,
      newKey: outputs[StepOutput.newKey(layer)].data as KvArray,
      newValue: outputs[StepOutput.newValue(layer)].data as KvArray,
    };
  }

  /**
   * Every layer over the rows and context of one step call (`feeds`): the last layer's hidden states and each
   * layer's new K/V. `beforeLayer` sees each layer's input first; it may throw to stop between layers.
   */
  async forward(feeds: StepFeeds, beforeLayer?: (layer: number, hidden: KvArray) => void): Promise<{ hidden: KvArray; newKeys: KvArray[]; newValues: KvArray[] }> {
    let hidden = await this.embed(feeds.inputIds);
    const newKeys: KvArray[] = [];
    const newValues: KvArray[] = [];
    for (let l = 0; l < this.numLayers; l++) {
      beforeLayer?.(l, hidden);
      const out = await this.layer(l, {
        hidden,
        positionIds: feeds.positionIds,
        attentionBias: feeds.attentionBias,
        pastKey: feeds.pastKeys[l],
        pastValue: feeds.pastValues[l],
        contextLength: feeds.contextLength,
      });
      hidden = out.hidden;
      newKeys.push(out.newKey);
      newValues.push(out.newValue);
    }
    return { hidden, newKeys, newValues };
  }

  /** Predictions of the rows `logitsIndex` of `hidden` ([rows, H]). */
  async predict(hidden: KvArray, rows: number, logitsIndex: BigInt64Array): Promise<RowPredictions> {
    const outputs = await this.headSession.run({
      [SegmentIo.hiddenIn]: new Tensor(this.cacheDtype, hidden, [1, rows, this.hiddenSize]),
      [StepInput.logitsIndex]: new Tensor('int64', logitsIndex, [1, logitsIndex.length]),
    });
    return readPredictions(outputs, this.head, logitsIndex.length, this.vocabSize, this.variant.topK);
  }

  async release(): Promise<void> {
    await Promise.all([this.embedSession, ...this.layerSessions, this.headSession].map((s) => s.release()));
  }
}

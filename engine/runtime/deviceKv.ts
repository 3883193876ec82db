/**
 * K/V kept in WebGPU memory between step-graph calls, within what onnxruntime-node 1.30 allows:
 * - a session's outputs come back as device tensors (`gpu-buffer`) only through `preferredOutputLocation`,
 *   fixed per output name for the life of the session, and only on WebGPU;
 * - a device tensor can be fed to any later run of any session on the same device, but not read on the host
 *   (its `download` is not implemented);
 * - with IO binding an output stays bound, at its last shape, to the runs that do not fetch it, which then
 *   fail ("has shape {..} but the computed output shape for this run is {..}"): every run fetches every output.
 * So the step-graph session returns its new K/V on the device on every call, and a small helper graph built
 * here, `merged = Gather(Concat(base, fresh), index)` over the sequence axis of every layer, does the rest in
 * two sessions: one keeping its outputs on the device (writing a call's rows into the canvas K/V), one
 * returning them to the host (for callers that read new K/V on the host).
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { OnnxGraphBuilder } from '../graph/onnxWriter';
import type { CacheDtype, DeviceKv, DeviceKvOps, KvArray } from '../graph/stepContract';

export interface DeviceKvGeometry {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  cacheDtype: CacheDtype;
}

/** A DeviceKv over onnxruntime device tensors, one key and one value tensor per layer. */
export class OrtDeviceKv implements DeviceKv {
  private disposed = false;

  constructor(
    readonly keys: Tensor[],
    readonly values: Tensor[],
    readonly rows: number,
  ) {}

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.keys) t.dispose();
    for (const t of this.values) t.dispose();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }
}

const name = {
  baseKey: (l: number) => `base_key.${l}`,
  baseValue: (l: number) => `base_value.${l}`,
  freshKey: (l: number) => `fresh_key.${l}`,
  freshValue: (l: number) => `fresh_value.${l}`,
  index: 'index',
  mergedKey: (l: number) => `merged_key.${l}`,
  mergedValue: (l: number) => `merged_value.${l}`,
};

/** The merge graph: per layer, merged = Gather(Concat(base, fresh, axis 2), index, axis 2). */
export function deviceKvMergeGraph(geometry: DeviceKvGeometry): Uint8Array {
  const { numLayers, numKvHeads, headDim, cacheDtype } = geometry;
  const graph = new OnnxGraphBuilder('', 'inline', 'device_kv_merge');
  graph.input(name.index, 'int64', ['rows']);
  for (let l = 0; l < numLayers; l++) {
    for (const [base, fresh, merged] of [
      [name.baseKey(l), name.freshKey(l), name.mergedKey(l)],
      [name.baseValue(l), name.freshValue(l), name.mergedValue(l)],
    ]) {
      graph.input(base, cacheDtype, [1, numKvHeads, 'base_rows', headDim]);
      graph.input(fresh, cacheDtype, [1, numKvHeads, 'fresh_rows', headDim]);
      const both = graph.op('Concat', [base, fresh], { attrs: { axis: { int: 2 } } });
      graph.node('Gather', [both, name.index], { attrs: { axis: { int: 2 } }, outputs: [merged] });
      graph.output(merged, cacheDtype, [1, numKvHeads, 'rows', headDim]);
    }
  }
  return graph.encode({ opset: 17 });
}

/** Merges and downloads device K/V of one model through the helper graph. */
export class DeviceKvHelper implements DeviceKvOps {
  private identity = new BigInt64Array(0);

  private constructor(
    private readonly geometry: DeviceKvGeometry,
    /** Outputs on the device. */
    private readonly mergeSession: InferenceSession,
    /** Outputs on the host. */
    private readonly downloadSession: InferenceSession,
  ) {}

  static async create(geometry: DeviceKvGeometry, sessionOptions: InferenceSession.SessionOptions): Promise<DeviceKvHelper> {
    const graph = deviceKvMergeGraph(geometry);
    const onDevice: Record<string, 'gpu-buffer'> = {};
    for (let l = 0; l < geometry.numLayers; l++) {
      onDevice[name.mergedKey(l)] = 'gpu-buffer';
      onDevice[name.mergedValue(l)] = 'gpu-buffer';
    }
    const mergeSession = await InferenceSession.create(graph, { ...sessionOptions, preferredOutputLocation: onDevice });
    try {
      const downloadSession = await InferenceSession.create(graph, sessionOptions);
      return new DeviceKvHelper(geometry, mergeSession, downloadSession);
    } catch (error) {
      await mergeSession.release();
      throw error;
    }
  }

  async merge(base: DeviceKv | null, fresh: DeviceKv, index: BigInt64Array): Promise<DeviceKv> {
    const outputs = await this.mergeSession.run(this.feeds(base, fresh, index));
    const keys: Tensor[] = [];
    const values: Tensor[] = [];
    for (let l = 0; l < this.geometry.numLayers; l++) {
      keys.push(outputs[name.mergedKey(l)] as Tensor);
      values.push(outputs[name.mergedValue(l)] as Tensor);
    }
    return new OrtDeviceKv(keys, values, index.length);
  }

  /** All rows of `fresh` as host arrays, per layer [Hkv, rows, D]. */
  async download(fresh: OrtDeviceKv): Promise<{ keys: KvArray[]; values: KvArray[] }> {
    if (this.identity.length < fresh.rows) this.identity = BigInt64Array.from({ length: fresh.rows }, (_, i) => BigInt(i));
    const outputs = await this.downloadSession.run(this.feeds(null, fresh, this.identity.subarray(0, fresh.rows)));
    const keys: KvArray[] = [];
    const values: KvArray[] = [];
    for (let l = 0; l < this.geometry.numLayers; l++) {
      keys.push(outputs[name.mergedKey(l)].data as KvArray);
      values.push(outputs[name.mergedValue(l)].data as KvArray);
    }
    return { keys, values };
  }

  async release(): Promise<void> {
    await this.mergeSession.release();
    await this.downloadSession.release();
  }

  private feeds(base: DeviceKv | null, fresh: DeviceKv, index: BigInt64Array): Record<string, Tensor> {
    const own = (kv: DeviceKv): OrtDeviceKv => {
      if (!(kv instanceof OrtDeviceKv) || kv.isDisposed) throw new Error('device K/V must come from this model and not be disposed');
      return kv;
    };
    const f = own(fresh);
    // No base: the fresh rows stand in for it, so `index` addresses them directly and no empty tensor is needed.
    const b = base === null ? f : own(base);
    const feeds: Record<string, Tensor> = { [name.index]: new Tensor('int64', index, [index.length]) };
    for (let l = 0; l < this.geometry.numLayers; l++) {
      feeds[name.baseKey(l)] = b.keys[l];
      feeds[name.baseValue(l)] = b.values[l];
      feeds[name.freshKey(l)] = f.keys[l];
      feeds[name.freshValue(l)] = f.values[l];
    }
    return feeds;
  }
}

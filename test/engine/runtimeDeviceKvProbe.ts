/**
 * Child process of runtimeDeviceKv.test.ts: on WebGPU (SwiftShader, chosen on the main thread before any WebGPU
 * session exists), a graph-level check of device-resident context against the host path's compacted context,
 * and whole denoising runs with the K/V on the device, on the host (same device) and on the CPU provider.
 * Prints one JSON line. Usage: node -r tsx/cjs runtimeDeviceKvProbe.ts <modelDir> <variant file>
 */
import { readManifest } from '../../engine/model/manifest';
import { useSoftwareWebGpu } from '../../engine/runtime/executionProviders';
import { loadStepModel, type OnnxStepModel } from '../../engine/runtime/onnxStepModel';
import { HIDDEN_BIAS, stepModelShape, type DeviceKv, type StepFeeds, type StepModel, type StepResult, type StepRunOptions } from '../../engine/graph/stepContract';
import { denoise, type DenoiseSpec } from '../../engine/denoiser/denoiser';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import { CancelledError } from '../../engine/denoiser/cancellation';
import type { DecodingOptions } from '../../common/decodingOptions';
import { fromCache, stepFeeds, takeRows, toCache } from './graphTestSupport';
import { DEVICE_KV_CANVAS, DEVICE_KV_MODES } from './runtimeDeviceKvCases';

/** The same model without `deviceKv`: the step runner keeps the request's K/V on the host. */
function onHost(model: StepModel): StepModel {
  return {
    ...stepModelShape(model),
    run: (feeds: StepFeeds, options?: StepRunOptions) => model.run(feeds, options),
  };
}

/** The model, counting the device K/V it hands out and the ones disposed. */
function tracking(model: OnnxStepModel): { model: StepModel; live: () => number; made: () => number } {
  let made = 0;
  let disposed = 0;
  const track = (kv: DeviceKv): DeviceKv => {
    made++;
    const dispose = kv.dispose.bind(kv);
    let done = false;
    kv.dispose = () => {
      if (!done) disposed++;
      done = true;
      dispose();
    };
    return kv;
  };
  const ops = model.deviceKv!;
  const wrapped: StepModel = {
    ...stepModelShape(model),
    deviceKv: { merge: async (base, fresh, index) => track(await ops.merge(base, fresh, index)) },
    run: async (feeds, options) => {
      const result = await model.run(feeds, options);
      if (result.deviceNewKv) track(result.deviceNewKv);
      return result;
    },
  };
  return { model: wrapped, live: () => made - disposed, made: () => made };
}

function logitsOf(result: StepResult): number[] {
  if (result.predictions.kind !== 'logits') throw new Error('a logits variant was expected');
  return Array.from(result.predictions.logits);
}

/**
 * A full pass of 10 rows kept on the device; then rows 2, 7 and 9 queried against it with C = 10, their own
 * columns and row 4's (as if not valid) hidden; and the same call on the host path, its context compacted to
 * the other rows in shuffled order.
 */
async function graphLevel(model: OnnxStepModel) {
  const ids = [12, 257, 257, 40, 257, 3, 9, 257, 257, 88];
  const n = ids.length;
  const positions = ids.map((_, i) => i);
  const full = { ids, positions, read: positions };
  const onDevice = await model.run(stepFeeds(model, full), { newKv: 'device' });
  const onHostFull = await model.run(stepFeeds(model, full));
  const query = [2, 7, 9];
  const hiddenRows = [...query, 4];
  const call = { ids: query.map((r) => ids[r]), positions: query, read: [0, 1, 2] };
  const q = query.length;
  const bias = new Float32Array(q * (n + q));
  for (let i = 0; i < q; i++) for (const row of hiddenRows) bias[i * (n + q) + row] = HIDDEN_BIAS[model.cacheDtype];
  const resident = await model.run(
    { ...stepFeeds(model, call), attentionBias: toCache(bias, model.cacheDtype), contextLength: n },
    { devicePast: onDevice.deviceNewKv },
  );
  const context = [8, 0, 5, 3, 1, 6];
  const take = (kv: Float32Array) => takeRows(kv, model.numKvHeads, n, model.headDim, context);
  const compacted = await model.run(
    stepFeeds(model, {
      ...call,
      pastKeys: onHostFull.newKeys.map((k) => take(fromCache(k))),
      pastValues: onHostFull.newValues.map((v) => take(fromCache(v))),
    }),
  );
  onDevice.deviceNewKv!.dispose();
  return {
    resident: logitsOf(resident),
    compacted: logitsOf(compacted),
    residentNewKeys: Array.from(fromCache(resident.newKeys[0])),
    compactedNewKeys: Array.from(fromCache(compacted.newKeys[0])),
  };
}

async function main(): Promise<void> {
  const [dir, variant] = process.argv.slice(2);
  const softwareProblem = useSoftwareWebGpu();
  const manifest = readManifest(dir);
  let gpu;
  try {
    gpu = await loadStepModel(dir, manifest, { device: 'webgpu', variant });
  } catch (error) {
    console.log(JSON.stringify({ adapterUnavailable: `${(error as Error).message}${softwareProblem ? `; ${softwareProblem}` : ''}` }));
    return;
  }
  const cpu = await loadStepModel(dir, manifest, { device: 'cpu', variant });
  const arch = manifest.architecture;
  const spec: DenoiseSpec = { tokens: manifest.tokens, logitShift: arch.logitShift, vocabSize: arch.vocabSize };
  const request = (options: Partial<DecodingOptions>) => ({
    prefixIds: DEVICE_KV_CANVAS.prefix,
    suffixIds: DEVICE_KV_CANVAS.suffix,
    length: DEVICE_KV_CANVAS.fill,
    options: { ...DEFAULT_DECODING_OPTIONS, ...DEVICE_KV_CANVAS.options, ...options },
    runToCompletion: true,
  });
  const runs = [];
  for (const mode of DEVICE_KV_MODES) {
    const tracked = tracking(gpu.model);
    const device = await denoise(tracked.model, spec, request(mode.options));
    const host = await denoise(onHost(gpu.model), spec, request(mode.options));
    const onCpu = await denoise(cpu.model, spec, request(mode.options));
    runs.push({
      label: mode.label,
      device: { fill: device.fill, stats: device.stats },
      host: { fill: host.fill, stats: host.stats },
      cpu: { fill: onCpu.fill, stats: onCpu.stats },
      deviceKvMade: tracked.made(),
      deviceKvLive: tracked.live(),
    });
  }
  // A cancelled request releases its device K/V too.
  const cancelled = tracking(gpu.model);
  let steps = 0;
  let cancelledWith = '';
  try {
    await denoise(cancelled.model, spec, request({ cache: 'decode', refreshInterval: 4 }), {
      onProgress: () => steps++,
      isCancelled: () => steps >= 3,
    });
  } catch (error) {
    cancelledWith = error instanceof CancelledError ? 'CancelledError' : String(error);
  }
  const report = {
    deviceKv: gpu.model.deviceKv !== undefined,
    cpuDeviceKv: cpu.model.deviceKv !== undefined,
    deviceKvUnavailable: gpu.deviceKvUnavailable ?? null,
    graph: await graphLevel(gpu.model),
    runs,
    cancelled: { with: cancelledWith, made: cancelled.made(), live: cancelled.live() },
  };
  await gpu.model.release();
  await cpu.model.release();
  console.log(JSON.stringify(report));
}

main().catch((error) => {
  console.log(JSON.stringify({ error: (error as Error).stack }));
  process.exitCode = 1;
});

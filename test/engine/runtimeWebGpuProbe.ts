/**
 * Child process of runtime.test.ts: runs one step of a tiny model on WebGPU (through SwiftShader, chosen on
 * the main thread before any WebGPU session exists, which is the only time the choice takes effect) and on
 * the CPU, and prints both results as one JSON line. Usage: node -r tsx/cjs runtimeWebGpuProbe.ts <modelDir>
 */
import { useSoftwareWebGpu } from '../../engine/runtime/executionProviders';
import { readManifest } from '../../engine/model/manifest';
import { loadStepModel } from '../../engine/runtime/onnxStepModel';
import { fromCache, stepFeeds, takeRows, type StepCall } from './graphTestSupport';

async function main(): Promise<void> {
  const dir = process.argv[2];
  const softwareProblem = useSoftwareWebGpu();
  const manifest = readManifest(dir);
  let gpu;
  try {
    gpu = await loadStepModel(dir, manifest, { device: 'webgpu' });
  } catch (error) {
    console.log(JSON.stringify({ adapterUnavailable: `${(error as Error).message}${softwareProblem ? `; ${softwareProblem}` : ''}` }));
    return;
  }
  const cpu = await loadStepModel(dir, manifest, { device: 'cpu', variant: gpu.variant.file });
  const full: StepCall = { ids: [12, 257, 257, 40, 257, 3, 9, 257, 257, 88], positions: [0, 1, 2, 3, 4, 6, 7, 9, 10, 11], read: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] };
  const results = [];
  for (const loaded of [gpu, cpu]) {
    const m = loaded.model;
    const fullResult = await m.run(stepFeeds(m, full));
    // A cached call: rows 0, 5, 3, 6 cached (shuffled), rows 2, 9, 1 queried.
    const cachedRows = [0, 5, 3, 6];
    const n = full.ids.length;
    const cachedCall: StepCall = {
      ids: [2, 9, 1].map((i) => full.ids[i]),
      positions: [2, 9, 1].map((i) => full.positions[i]),
      read: [0, 1, 2],
      pastKeys: fullResult.newKeys.map((k) => takeRows(fromCache(k), m.numKvHeads, n, m.headDim, cachedRows)),
      pastValues: fullResult.newValues.map((v) => takeRows(fromCache(v), m.numKvHeads, n, m.headDim, cachedRows)),
    };
    const cachedResult = await m.run(stepFeeds(m, cachedCall));
    results.push({
      device: loaded.device,
      variant: loaded.variant.file,
      full: fullResult.predictions.kind === 'logits' ? [...fullResult.predictions.logits] : [],
      cached: cachedResult.predictions.kind === 'logits' ? [...cachedResult.predictions.logits] : [],
      newKeys: [...fromCache(cachedResult.newKeys[0])],
    });
    await m.release();
  }
  console.log(JSON.stringify({ results }));
}

main().catch((error) => {
  console.log(JSON.stringify({ error: (error as Error).stack }));
  process.exitCode = 1;
});

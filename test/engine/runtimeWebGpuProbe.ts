/**
 * Child process of runtime.test.ts: runs one step of a tiny model on WebGPU (through SwiftShader, chosen on
 * the main thread before any WebGPU session exists, which is the only time the choice takes effect) and on
 * the CPU, and prints the results as one JSON line.
 * Usage: node -r tsx/cjs runtimeWebGpuProbe.ts <modelDir> <another variant file to compare>
 */
import { useSoftwareWebGpu } from '../../engine/runtime/executionProviders';
import { readManifest } from '../../engine/model/manifest';
import { loadStepModel, type OnnxStepModel } from '../../engine/runtime/onnxStepModel';
import type { RowPredictions } from '../../engine/graph/stepContract';
import { fromCache, stepFeeds, takeRows, type StepCall } from './graphTestSupport';

/** Runs a full pass and a cached pass (shuffled past rows, permuted queries) and returns what came back. */
async function runPasses(model: OnnxStepModel) {
  const full: StepCall = { ids: [12, 257, 257, 40, 257, 3, 9, 257, 257, 88], positions: [0, 1, 2, 3, 4, 6, 7, 9, 10, 11], read: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] };
  const fullResult = await model.run(stepFeeds(model, full));
  const cachedRows = [0, 5, 3, 6];
  const queried = [2, 9, 1];
  const n = full.ids.length;
  const cachedResult = await model.run(
    stepFeeds(model, {
      ids: queried.map((i) => full.ids[i]),
      positions: queried.map((i) => full.positions[i]),
      read: [0, 1, 2],
      pastKeys: fullResult.newKeys.map((k) => takeRows(fromCache(k), model.numKvHeads, n, model.headDim, cachedRows)),
      pastValues: fullResult.newValues.map((v) => takeRows(fromCache(v), model.numKvHeads, n, model.headDim, cachedRows)),
    }),
  );
  const plain = (p: RowPredictions) =>
    p.kind === 'logits'
      ? { kind: p.kind, logits: [...p.logits] }
      : { kind: p.kind, topIds: [...p.topIds], topProbs: [...p.topProbs], entropy: [...p.entropy], k: p.k };
  return { full: plain(fullResult.predictions), cached: plain(cachedResult.predictions), newKeys: [...fromCache(cachedResult.newKeys[0])] };
}

/** argv: <modelDir> <extra variant file>. Prints { chosen, comparisons: [{ variant, webgpu, cpu }] }. */
async function main(): Promise<void> {
  const [dir, extraVariant] = process.argv.slice(2);
  const softwareProblem = useSoftwareWebGpu();
  const manifest = readManifest(dir);
  let chosen;
  try {
    chosen = await loadStepModel(dir, manifest, { device: 'webgpu' });
  } catch (error) {
    console.log(JSON.stringify({ adapterUnavailable: `${(error as Error).message}${softwareProblem ? `; ${softwareProblem}` : ''}` }));
    return;
  }
  const comparisons = [];
  for (const file of [chosen.variant.file, extraVariant]) {
    const gpu = file === chosen.variant.file ? chosen : await loadStepModel(dir, manifest, { device: 'webgpu', variant: file });
    const cpu = await loadStepModel(dir, manifest, { device: 'cpu', variant: file });
    comparisons.push({ variant: file, webgpu: await runPasses(gpu.model), cpu: await runPasses(cpu.model) });
    await gpu.model.release();
    await cpu.model.release();
  }
  console.log(JSON.stringify({ chosen: chosen.variant.file, skippedVariants: chosen.skippedVariants ?? [], comparisons }));
}

main().catch((error) => {
  console.log(JSON.stringify({ error: (error as Error).stack }));
  process.exitCode = 1;
});

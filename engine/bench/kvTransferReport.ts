/**
 * Measures, side by side, what moving K/V costs a request: the step runner as it is (new K/V brought back only
 * when a plan stores a row; on WebGPU the request's K/V kept on the device) against the same model driven as a
 * caller without run options sees it (every call returns every new K/V to the host, context sent from the host),
 * and on WebGPU also the host path with the lean fetches. Runs interleave round after round; each line is the
 * median over the rounds.
 *
 *   npx tsx engine/bench/kvTransferReport.ts [--model medium] [--device cpu|webgpu]
 *       [--cases 1024+32:prefill,128+256:none] [--steps N] [--rounds 3] [--models-dir .cache/bench-models]
 *
 * `--device webgpu` without a GPU runs on SwiftShader (its times say nothing about a real GPU; the bytes do).
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBenchModel, type BenchModelName } from './benchModels';
import { BENCH_CANVASES, benchPrompt } from './benchCanvases';
import { denoise, type DenoiseStats } from '../denoiser/denoiser';
import { defaultRefreshInterval } from '../denoiser/options';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import { stepModelShape, type StepFeeds, type StepModel, type StepRunOptions } from '../graph/stepContract';
import { readManifest } from '../model/manifest';
import type { DeviceOption } from '../../common/protocol';
import type { CacheMode } from '../../common/decodingOptions';
import { useSoftwareWebGpu } from '../runtime/executionProviders';
import { loadStepModel } from '../runtime/onnxStepModel';
import { median } from './statistics';

function without(model: StepModel, what: 'options' | 'deviceKv'): StepModel {
  return {
    ...stepModelShape(model),
    run: what === 'options' ? (feeds: StepFeeds) => model.run(feeds) : (feeds: StepFeeds, options?: StepRunOptions) => model.run(feeds, options),
  };
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'medium' },
      device: { type: 'string', default: 'cpu' },
      cases: { type: 'string', default: '1024+32:prefill,128+256:none' },
      steps: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      'models-dir': { type: 'string', default: path.join('.cache', 'bench-models') },
    },
  });
  const device = values.device as DeviceOption;
  if (device === 'webgpu') {
    const problem = process.env.VK_ICD_FILENAMES ? null : useSoftwareWebGpu();
    if (problem) console.log(`(no software Vulkan: ${problem})`);
  }
  const dir = await ensureBenchModel(values.model as BenchModelName, values['models-dir']!, console.log);
  const manifest = readManifest(dir);
  const loaded = await loadStepModel(dir, manifest, { device });
  const model = loaded.model;
  console.log(`${manifest.name} on ${loaded.device} (${loaded.variant.file}); K/V on the device: ${model.deviceKv ? 'yes' : 'no'}`);
  const arch = manifest.architecture;
  const spec = { tokens: manifest.tokens, logitShift: arch.logitShift, vocabSize: arch.vocabSize };
  const drivers: { name: string; model: StepModel }[] = [
    { name: model.deviceKv ? 'device K/V' : 'fetch stored only', model },
    ...(model.deviceKv ? [{ name: 'host K/V, fetch stored only', model: without(model, 'deviceKv') }] : []),
    { name: 'host K/V, fetch everything', model: without(model, 'options') },
  ];

  for (const item of values.cases!.split(',')) {
    const [canvasName, cache] = item.split(':') as [string, CacheMode];
    const canvas = BENCH_CANVASES.find((c) => c.name === canvasName);
    if (!canvas) throw new Error(`unknown canvas ${canvasName} (${BENCH_CANVASES.map((c) => c.name).join(', ')})`);
    const steps = values.steps ? Number(values.steps) : canvas.steps;
    const request = {
      ...benchPrompt(canvas, arch.vocabSize, manifest.tokens),
      length: canvas.genTokens,
      runToCompletion: true,
      options: { ...DEFAULT_DECODING_OPTIONS, blockLength: canvas.genTokens, steps, cache, refreshInterval: defaultRefreshInterval(cache, arch.family) },
    };
    // Warm-up: kernels and allocator arenas for every shape the request uses.
    for (const d of drivers) await denoise(d.model, spec, request);
    const samples = new Map<string, DenoiseStats[]>(drivers.map((d) => [d.name, []]));
    const fills = new Map<string, string>();
    for (let round = 0; round < Number(values.rounds); round++) {
      // Alternate the order so that a drift in machine speed within a round favours neither side.
      for (const d of round % 2 ? [...drivers].reverse() : drivers) {
        const result = await denoise(d.model, spec, request);
        samples.get(d.name)!.push(result.stats);
        fills.set(d.name, result.fill.join(','));
      }
    }
    const same = new Set(fills.values()).size === 1;
    console.log(`\n${canvas.name} ${cache}, ${steps} steps (${[...samples.values()][0][0].graphCalls} graph calls); same tokens: ${same ? 'yes' : 'NO'}`);
    const baseline = samples.get(drivers[drivers.length - 1].name)!;
    for (const d of drivers) {
      const list = samples.get(d.name)!;
      const perStep = median(list.map((s) => s.ms / s.steps));
      const graphPerStep = median(list.map((s) => s.graphMs / s.steps));
      // Speedup per round (the two runs of a round are back to back), then the median over rounds.
      const speedup = median(list.map((s, i) => baseline[i].ms / s.ms));
      const { kvBytesUploaded, kvBytesDownloaded } = list[0];
      console.log(
        `  ${d.name.padEnd(28)} ${perStep.toFixed(1).padStart(8)} ms/step (graph ${graphPerStep.toFixed(1)})  ` +
          `x${speedup.toFixed(3)} vs fetch everything  K/V to graph ${mib(kvBytesUploaded)} MiB, back ${mib(kvBytesDownloaded)} MiB`,
      );
    }
  }
  await model.release();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});

/**
 * `npm run check:gpu` (`dlm check-gpu`): the prepared GPU check. It writes checkpoints of real geometries with
 * random weights (randomCheckpoint.ts: Open-dCoder-0.5B's and, with a GPU, Dream-Coder-7B's), converts them as
 * the editor would for each device (modelManager.ts), and measures on CUDA, WebGPU and the CPU an inline fill
 * of about 1k prompt tokens per cache mode: the median time of several rounds, the first partial result (the
 * first step's progress), where the K/V live between steps, and the peak GPU memory (nvidia-smi, sampled). It
 * writes gpu-check.json and gpu-check.md. Without an NVIDIA GPU it says so and runs only the 0.5B part on the
 * CPU, on a short canvas, so that CI keeps the script working. Random weights: speed only, never quality.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readNvidiaSmi } from '../machine/machineFacts';
import { resolveModel } from '../store/modelManager';
import type { DeviceOption, GpuFacts } from '../../common/protocol';
import type { CacheMode } from '../../common/decodingOptions';
import { CACHE_MODES } from '../../common/decodingOptions';
import { keepsKvOnDevice } from '../runtime/executionProviders';
import { Engine } from '../service/engine';
import { benchPrompt, type BenchCanvas } from './benchCanvases';
import { writeRandomCheckpoint, type CheckpointGeometryName } from './randomCheckpoint';
import { median, round } from './statistics';

export interface CheckPlan {
  geometries: CheckpointGeometryName[];
  devices: Exclude<DeviceOption, 'auto'>[];
  canvas: BenchCanvas;
  modes: CacheMode[];
  /** Rounds per mode on a GPU, and on the CPU (slower: fewer). */
  rounds: { gpu: number; cpu: number };
}

/** With a GPU: both geometries on CUDA and WebGPU, the 0.5B also on the CPU; a 1k-token prompt, every cache mode. */
export const GPU_PLAN: CheckPlan = {
  geometries: ['qwen2.5-0.5b', 'dream-coder-7b'],
  devices: ['cuda', 'webgpu', 'cpu'],
  canvas: { name: '1024+32', promptTokens: 1024, genTokens: 32, steps: 32 },
  modes: [...CACHE_MODES],
  rounds: { gpu: 5, cpu: 1 },
};

/** Without one: the 0.5B on the CPU, short enough for CI (a 128-token prompt, uncached and the default `pd`). */
export const CPU_PLAN: CheckPlan = {
  geometries: ['qwen2.5-0.5b'],
  devices: ['cpu'],
  canvas: { name: '128+8', promptTokens: 128, genTokens: 8, steps: 8 },
  modes: ['none', 'pd'],
  rounds: { gpu: 1, cpu: 1 },
};

/** A 7B model on the CPU would take far longer than the whole check is allowed; the 0.5B shows the CPU. */
const CPU_GEOMETRIES: CheckpointGeometryName[] = ['qwen2.5-0.5b', 'tiny-qwen2'];

export interface ModeResult {
  cache: CacheMode;
  medianMs: number;
  tokensPerSecond: number;
  /** Median milliseconds to the first partial result (the first denoising step's progress). */
  firstPartialMs: number;
  steps: number;
  graphCalls: number;
}

export interface DeviceResult {
  geometry: CheckpointGeometryName;
  device: string;
  /** The device that ran, or null when it could not (see `unavailable`). */
  ranOn: string | null;
  unavailable?: string;
  precision?: string;
  convertSeconds?: number;
  loadMs?: number;
  /** Where the K/V cache stays between denoising steps. */
  kvLocation?: 'device' | 'host';
  /** Peak GPU memory in use during the load and the runs, above what was in use before (nvidia-smi). */
  peakGpuMemoryBytes?: number | null;
  modes: ModeResult[];
}

export interface GpuCheckReport {
  gpus: GpuFacts[];
  gpuFound: boolean;
  platform: string;
  cpuCores: number;
  plan: CheckPlan;
  results: DeviceResult[];
  seconds: number;
}

/** Samples the memory in use on the first NVIDIA GPU until stopped; resolves the peak (null without nvidia-smi). */
function sampleGpuMemory(): { stop(): Promise<number | null> } {
  let peak: number | null = null;
  let running = true;
  const loop = (async () => {
    while (running) {
      const used = await new Promise<number | null>((resolve) =>
        execFile('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits'], { timeout: 5000 }, (error, stdout) =>
          resolve(error ? null : Number(stdout.split('\n')[0]) * 1024 ** 2),
        ),
      );
      if (used === null || Number.isNaN(used)) return;
      peak = Math.max(peak ?? 0, used);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/** Loads a model folder on `device` and measures every mode of the plan, interleaved round by round. */
export async function measureModel(
  modelDir: string,
  device: Exclude<DeviceOption, 'auto'>,
  plan: Pick<CheckPlan, 'canvas' | 'modes'> & { rounds: number },
  log: (message: string) => void,
): Promise<Omit<DeviceResult, 'geometry' | 'device'>> {
  const notes: string[] = [];
  const engine = new Engine({
    cacheDir: path.dirname(modelDir),
    log: (level, message) => {
      notes.push(message);
      if (level === 'warn' || level === 'error') log(message);
    },
  });
  const baseline = await sampleGpuMemory().stop();
  const memory = sampleGpuMemory();
  try {
    const started = performance.now();
    let info;
    try {
      info = await engine.loadModel({ model: modelDir, device });
    } catch (error) {
      await memory.stop();
      return { ranOn: null, unavailable: (error as Error).message, modes: [] };
    }
    const loadMs = round(performance.now() - started, 0);
    const manifest = engine.manifestOf(info.modelId);
    const prompt = benchPrompt(plan.canvas, manifest.architecture.vocabSize, manifest.tokens);
    const once = async (cache: CacheMode, steps: number) => {
      const begun = performance.now();
      let firstPartial: number | undefined;
      const job = engine.infillTokens(
        {
          modelId: info.modelId,
          ...prompt,
          length: plan.canvas.genTokens,
          runToCompletion: true,
          options: { blockLength: plan.canvas.genTokens, steps, cache },
        },
        { onProgress: () => (firstPartial ??= performance.now() - begun) },
      );
      const result = await job.result;
      return { ms: result.stats.ms, firstPartial: firstPartial ?? result.stats.ms, steps: result.stats.steps, graphCalls: result.stats.graphCalls };
    };
    // One short warm-up per mode: first calls compile kernels and fill allocator pools.
    for (const cache of plan.modes) await once(cache, Math.min(plan.canvas.steps, 2));
    const samples = new Map(plan.modes.map((m) => [m, [] as Awaited<ReturnType<typeof once>>[]]));
    for (let r = 0; r < plan.rounds; r++) {
      for (const cache of plan.modes) {
        const sample = await once(cache, plan.canvas.steps);
        samples.get(cache)!.push(sample);
        log(`  ${device} ${cache} round ${r + 1}/${plan.rounds}: ${round(sample.ms, 0)} ms, first partial ${round(sample.firstPartial, 0)} ms`);
      }
    }
    const peak = await memory.stop();
    const kvKeptOnHost = notes.some((n) => n.includes('K/V cache kept on the host'));
    return {
      ranOn: info.device,
      precision: manifest.variants[0].precision,
      loadMs,
      kvLocation: keepsKvOnDevice(info.device) && !kvKeptOnHost ? 'device' : 'host',
      peakGpuMemoryBytes: peak === null || baseline === null ? null : Math.max(0, peak - baseline),
      modes: plan.modes.map((cache) => {
        const list = samples.get(cache)!;
        const ms = median(list.map((s) => s.ms));
        return {
          cache,
          medianMs: round(ms, 1),
          tokensPerSecond: round(plan.canvas.genTokens / (ms / 1000), 2),
          firstPartialMs: round(median(list.map((s) => s.firstPartial)), 1),
          steps: list[list.length - 1].steps,
          graphCalls: list[list.length - 1].graphCalls,
        };
      }),
    };
  } finally {
    await memory.stop();
    await engine.shutdown();
  }
}

export async function runGpuCheck(options: { workDir: string; plan?: CheckPlan; log: (message: string) => void }): Promise<GpuCheckReport> {
  const started = performance.now();
  const { log } = options;
  const gpus = await readNvidiaSmi();
  const plan = options.plan ?? (gpus.length > 0 ? GPU_PLAN : CPU_PLAN);
  if (gpus.length === 0) log(`No NVIDIA GPU found (nvidia-smi does not answer): measuring ${plan.geometries.join(', ')} on the CPU only, on the ${plan.canvas.name} canvas.`);
  else log(`GPU: ${gpus.map((g) => g.name).join(', ')}`);
  const results: DeviceResult[] = [];
  for (const geometry of plan.geometries) {
    const source = path.join(options.workDir, `${geometry}-random`);
    if (!fs.existsSync(path.join(source, 'config.json'))) {
      log(`Writing a ${geometry} checkpoint with random weights to ${source}...`);
      await writeRandomCheckpoint(geometry, source);
    }
    for (const device of plan.devices) {
      if (device === 'cpu' && !CPU_GEOMETRIES.includes(geometry)) {
        results.push({ geometry, device, ranOn: null, unavailable: 'not measured: a 7B model on the CPU takes longer than the whole check may', modes: [] });
        continue;
      }
      log(`${geometry} on ${device}: converting...`);
      const convertStarted = performance.now();
      const modelDir = await resolveModel(source, { cacheDir: path.join(options.workDir, 'converted'), device });
      const convertSeconds = round((performance.now() - convertStarted) / 1000, 1);
      log(`${geometry} on ${device}: measuring (${plan.canvas.name}, ${plan.modes.join(', ')})...`);
      const rounds = device === 'cpu' ? plan.rounds.cpu : plan.rounds.gpu;
      const measured = await measureModel(modelDir, device, { canvas: plan.canvas, modes: plan.modes, rounds }, log);
      if (measured.unavailable) log(`${geometry} on ${device}: not available: ${measured.unavailable}`);
      results.push({ geometry, device, convertSeconds, ...measured });
    }
  }
  return { gpus, gpuFound: gpus.length > 0, platform: `${process.platform}/${process.arch}`, cpuCores: os.availableParallelism(), plan, results, seconds: round((performance.now() - started) / 1000, 1) };
}

const gb = (bytes: number | null | undefined) => (bytes === null || bytes === undefined ? '' : `${(bytes / 1e9).toFixed(2)} GB`);

/** The report as a Markdown table, one row per geometry, device and cache mode, with what was measured. */
export function formatGpuCheck(report: GpuCheckReport): string {
  const where = report.gpuFound ? report.gpus.map((g) => g.name).join(', ') : `no GPU (${report.cpuCores} CPU cores)`;
  const lines = [
    `${where}; ${report.platform}; canvas ${report.plan.canvas.name} (prompt + fill tokens, random weights); ${report.seconds} s in all.`,
    '',
    '| geometry | device | precision | K/V between steps | cache | median ms | tokens/s | first partial ms | peak GPU memory |',
    '|---|---|---|---|---|---:|---:|---:|---:|',
  ];
  for (const r of report.results) {
    if (!r.ranOn) {
      lines.push(`| ${r.geometry} | ${r.device} | | | not run: ${(r.unavailable ?? '').replace(/\|/g, '/').slice(0, 160)} | | | | |`);
      continue;
    }
    for (const m of r.modes) {
      lines.push(
        `| ${r.geometry} | ${r.ranOn} | ${r.precision} | ${r.kvLocation} | ${m.cache} | ${m.medianMs} | ${m.tokensPerSecond} | ${m.firstPartialMs} | ${gb(r.peakGpuMemoryBytes)} |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

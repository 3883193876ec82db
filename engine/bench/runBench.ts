/**
 * `dlm bench`: every cache mode against `none` on the same model, canvas and decoding settings, run
 * through the engine (worker and all, as the extension uses it). After a short warm-up the modes run
 * interleaved, round after round, so drift in machine speed hits them alike; each mode's speed is its
 * median over the rounds.
 */
import type { DeviceOption } from '../../common/protocol';
import type { CacheMode, DecodingOptions } from '../../common/decodingOptions';
import { agreement } from '../denoiser/compare';
import { Engine } from '../service/engine';
import { ensureBenchModel, ensureGeometryModel, geometryGraph, type BenchModelName, type GeometryPrecision } from './benchModels';
import { isCheckpointGeometryName, type CheckpointGeometryName } from './randomCheckpoint';
import { benchPrompt, type BenchCanvas } from './benchCanvases';
import { median, round } from './statistics';

export interface BenchOptions {
  /** Synthetic models, and real geometries with random weights (converted by the real converter). */
  models: (BenchModelName | CheckpointGeometryName)[];
  canvases: readonly BenchCanvas[];
  /** Modes to compare; `none` always runs as the baseline. */
  modes: CacheMode[];
  device: DeviceOption;
  rounds: number;
  modelsDir: string;
  /** Weights a real geometry is converted to (benchModels.ts GEOMETRY_GRAPH: int4). */
  geometryPrecision?: GeometryPrecision;
  /** Decoding options for every run (steps, when given, replaces each canvas's own). */
  overrides: Partial<DecodingOptions>;
  log(message: string): void;
}

export interface BenchRun {
  model: string;
  device: string;
  canvas: string;
  promptTokens: number;
  genTokens: number;
  steps: number;
  cache: CacheMode;
  tokensPerSecond: number;
  speedupVsNone: number;
  /** Share of the fill's positions holding the same token as in the `none` run (an ended fill reads as end). */
  agreementVsNone: number;
  graphCalls: number;
  /** Rows computed per graph call, on average. */
  rowsPerCall: number;
  /** Median milliseconds of one infill, and of it the time inside graph calls. */
  ms: number;
  graphMs: number;
}

interface Sample {
  ms: number;
  graphMs: number;
  fillIds: number[];
  steps: number;
  graphCalls: number;
  rowsComputed: number;
}

export async function runBench(options: BenchOptions): Promise<BenchRun[]> {
  const modes: CacheMode[] = ['none', ...options.modes.filter((m) => m !== 'none')];
  const runs: BenchRun[] = [];
  const engine = new Engine({
    cacheDir: options.modelsDir,
    log: (level, message) => {
      if (level !== 'debug') options.log(message);
    },
  });
  try {
    for (const modelName of options.models) {
      const dir = isCheckpointGeometryName(modelName)
        ? await ensureGeometryModel(modelName, options.modelsDir, options.log, geometryGraph(options.geometryPrecision))
        : await ensureBenchModel(modelName, options.modelsDir, options.log);
      const info = await engine.loadModel({ model: dir, device: options.device });
      const manifest = engine.manifestOf(info.modelId);
      for (const canvas of options.canvases) {
        const prompt = benchPrompt(canvas, manifest.architecture.vocabSize, manifest.tokens);
        const steps = options.overrides.steps ?? canvas.steps;
        const infill = async (cache: CacheMode, stepsOverride = steps): Promise<Sample> => {
          const job = engine.infillTokens({
            modelId: info.modelId,
            ...prompt,
            length: canvas.genTokens,
            runToCompletion: true,
            options: { blockLength: canvas.genTokens, ...options.overrides, steps: stepsOverride, cache },
          });
          const result = await job.result;
          const s = result.stats;
          return { ms: s.ms, graphMs: s.graphMs ?? 0, fillIds: result.fillIds, steps: s.steps, graphCalls: s.graphCalls, rowsComputed: s.rowsComputed };
        };
        options.log(`${modelName} ${canvas.name}: warming up`);
        for (const cache of modes) await infill(cache, Math.min(steps, 4));
        const samples = new Map<CacheMode, Sample[]>(modes.map((m) => [m, []]));
        for (let r = 0; r < options.rounds; r++) {
          for (const cache of modes) {
            const sample = await infill(cache);
            samples.get(cache)!.push(sample);
            options.log(
              `${modelName} ${canvas.name} round ${r + 1}/${options.rounds} ${cache}: ${round(sample.ms, 0)} ms ` +
                `(graph ${round(sample.graphMs, 0)} ms), ${sample.graphCalls} calls, ${round(sample.rowsComputed / sample.graphCalls, 1)} rows/call`,
            );
          }
        }
        const baseline = samples.get('none')!;
        const baselineMs = median(baseline.map((s) => s.ms));
        for (const cache of modes) {
          const list = samples.get(cache)!;
          const ms = median(list.map((s) => s.ms));
          const last = list[list.length - 1];
          runs.push({
            model: modelName,
            device: info.device,
            canvas: canvas.name,
            promptTokens: canvas.promptTokens,
            genTokens: canvas.genTokens,
            steps: last.steps,
            cache,
            tokensPerSecond: round(canvas.genTokens / (ms / 1000), 2),
            speedupVsNone: round(baselineMs / ms, 2),
            agreementVsNone: round(agreement(last.fillIds, baseline[baseline.length - 1].fillIds, canvas.genTokens), 4),
            graphCalls: last.graphCalls,
            rowsPerCall: round(last.rowsComputed / last.graphCalls, 1),
            ms: round(ms, 1),
            graphMs: round(median(list.map((s) => s.graphMs)), 1),
          });
        }
      }
      await engine.unloadModel(info.modelId);
    }
  } finally {
    await engine.shutdown();
  }
  return runs;
}

export function formatBenchTable(runs: BenchRun[]): string {
  const header = ['model', 'device', 'canvas', 'steps', 'cache', 'tokens/s', 'speedup', 'agreement', 'calls', 'rows/call', 'ms', 'graph ms'];
  const rows = runs.map((r) => [
    r.model,
    r.device,
    r.canvas,
    String(r.steps),
    r.cache,
    r.tokensPerSecond.toFixed(1),
    `${r.speedupVsNone.toFixed(2)}x`,
    `${(r.agreementVsNone * 100).toFixed(1)}%`,
    String(r.graphCalls),
    r.rowsPerCall.toFixed(1),
    r.ms.toFixed(0),
    r.graphMs.toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n') + '\n';
}

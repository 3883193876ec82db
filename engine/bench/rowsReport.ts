/**
 * Prints, for synthetic models and the benchmark's canvases, the rows each cache mode computes per step as a
 * ratio to `none` (the bound on its speedup from computing fewer rows) and its token agreement with `none`.
 *
 *   npx tsx engine/bench/rowsReport.ts [--preset tiny-dream,tiny-llada,medium-dream] [--canvas 128+256,1024+32]
 *                                         [--block N] [--dir FOLDER]
 *
 * Greedy's random order is compared with `none` under the `random` algorithm (the same order), every other mode
 * with `none` under `confidence`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { readManifest, MANIFEST_FILE, type ModelManifest } from '../model/manifest';
import { writeSyntheticModel, type SyntheticPreset } from '../model/synthetic';
import type { DecodingOptions } from '../../common/decodingOptions';
import { loadStepModel } from '../runtime/onnxStepModel';
import { compareWithNone } from '../denoiser/compare';
import { defaultRefreshInterval } from '../denoiser/options';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';

interface Mode {
  label: string;
  options: Partial<DecodingOptions>;
}

function modesFor(family: ModelManifest['architecture']['family']): { confidence: Mode[]; random: Mode[] } {
  const decodeN = defaultRefreshInterval('decode', family);
  const decodeModes: Mode[] = [...new Set([decodeN, 8])].map((n) => ({ label: `decode N=${n}`, options: { cache: 'decode', refreshInterval: n } }));
  return {
    confidence: [
      ...decodeModes,
      { label: 'prefill N=0', options: { cache: 'prefill', refreshInterval: 0 } },
      { label: `pd N=${decodeN}`, options: { cache: 'pd', refreshInterval: decodeN } },
      { label: 'greedy conf N=2 W=4', options: { cache: 'greedy', greedyOrder: 'confidence', refreshInterval: 2, window: 4 } },
      { label: 'greedy conf N=8 W=4', options: { cache: 'greedy', greedyOrder: 'confidence', refreshInterval: 8, window: 4 } },
    ],
    random: [
      { label: 'greedy random N=2 W=4', options: { cache: 'greedy', greedyOrder: 'random', refreshInterval: 2, window: 4 } },
      { label: 'greedy random N=8 W=4', options: { cache: 'greedy', greedyOrder: 'random', refreshInterval: 8, window: 4 } },
    ],
  };
}

/** Ordinary byte tokens from a fixed xorshift stream; three quarters before the hole, one after. */
function prompt(tokens: number): { prefixIds: number[]; suffixIds: number[] } {
  let state = 0x2545f491;
  const ids = Array.from({ length: tokens }, () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % 256;
  });
  const prefix = Math.round((tokens * 3) / 4);
  return { prefixIds: ids.slice(0, prefix), suffixIds: ids.slice(prefix) };
}

async function ensureModel(dir: string, preset: SyntheticPreset): Promise<ModelManifest> {
  if (fs.existsSync(path.join(dir, MANIFEST_FILE))) return readManifest(dir);
  // Room for the 1024 + 32 canvas in the tiny presets too.
  return writeSyntheticModel(dir, {
    preset,
    seed: 1,
    architecture: { maxPositions: 2048 },
    variants: [{ precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0 }],
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'tiny-dream,tiny-llada' },
      canvas: { type: 'string', default: '128+256,1024+32' },
      block: { type: 'string' },
      dir: { type: 'string', default: path.join(os.tmpdir(), 'dlm-rows-report') },
    },
  });
  const lines: string[] = [];
  const print = (cells: (string | number)[]) => {
    const line = cells.map((c, i) => String(c).padEnd([14, 9, 6, 6, 24, 10, 10, 10, 10][i] ?? 10)).join(' ');
    lines.push(line);
    console.log(line);
  };
  print(['model', 'canvas', 'steps', 'block', 'mode', 'rows/step', 'rows/none', 'bound', 'agreement']);
  for (const preset of values.preset.split(',') as SyntheticPreset[]) {
    const dir = path.join(values.dir, preset);
    const manifest = await ensureModel(dir, preset);
    const { model } = await loadStepModel(dir, manifest, { device: 'cpu' });
    const spec = { tokens: manifest.tokens, logitShift: manifest.architecture.logitShift, vocabSize: manifest.architecture.vocabSize };
    const modes = modesFor(manifest.architecture.family);
    for (const canvas of values.canvas.split(',')) {
      const [promptTokens, genTokens] = canvas.split('+').map(Number);
      const block = values.block ? Number(values.block) : genTokens;
      const base = { ...DEFAULT_DECODING_OPTIONS, steps: genTokens, blockLength: block, schedule: 'blocks' as const };
      const request = { ...prompt(promptTokens), length: genTokens };
      for (const [algorithm, list] of [['confidence', modes.confidence], ['random', modes.random]] as const) {
        const result = await compareWithNone(model, spec, { ...request, options: { ...base, algorithm } }, list.map((m) => m.options));
        const steps = result.none.stats.steps;
        if (algorithm === 'confidence') {
          print([preset, canvas, steps, block, 'none', (result.none.stats.rowsComputed / steps).toFixed(1), '1.000', '1.00x', '1.000']);
        }
        result.modes.forEach((m, i) => {
          print([
            preset, canvas, m.stats.steps, block, list[i].label, (m.stats.rowsComputed / m.stats.steps).toFixed(1),
            m.rowsRatioVsNone.toFixed(3), `${(1 / m.rowsRatioVsNone).toFixed(2)}x`, m.agreementVsNone.toFixed(3),
          ]);
        });
      }
    }
    await model.release();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});

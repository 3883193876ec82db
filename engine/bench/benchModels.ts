/**
 * The benchmark's random-weight models, built once by the graph builder and kept outside git
 * (`.cache/bench-models` by default) so later runs start at once.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parameterCount } from '../architecture/architecture';
import { MANIFEST_FILE } from '../model/manifest';
import { syntheticArchitecture, writeSyntheticModel, type SyntheticPreset } from '../model/synthetic';

export const BENCH_MODELS = {
  tiny: 'tiny-dream',
  medium: 'medium-dream',
} as const satisfies Record<string, SyntheticPreset>;

/** Room for the longest benchmark canvas (1024 + 32) on every model. */
const BENCH_MAX_POSITIONS = 2048;

export type BenchModelName = keyof typeof BENCH_MODELS;
export const BENCH_MODEL_NAMES = Object.keys(BENCH_MODELS) as BenchModelName[];

const BENCH_SEED = 7;

export function benchModelDescription(name: BenchModelName): string {
  const arch = syntheticArchitecture(BENCH_MODELS[name], { maxPositions: BENCH_MAX_POSITIONS });
  const millions = (parameterCount(arch) / 1e6).toFixed(1);
  return `${name}: ${millions}M parameters, ${arch.numLayers} layers, ${arch.numHeads} heads / ${arch.numKvHeads} K/V heads, vocab ${arch.vocabSize}`;
}

/** The model folder for `name`, written first when it is not in `modelsDir` yet. */
export async function ensureBenchModel(
  name: BenchModelName,
  modelsDir: string,
  log: (message: string) => void,
): Promise<string> {
  const preset = BENCH_MODELS[name];
  const dir = path.join(modelsDir, `${preset}-seed${BENCH_SEED}-pos${BENCH_MAX_POSITIONS}`);
  if (existsSync(path.join(dir, MANIFEST_FILE))) return dir;
  log(`building the ${benchModelDescription(name)} in ${dir} ...`);
  const started = performance.now();
  await writeSyntheticModel(dir, {
    preset,
    seed: BENCH_SEED,
    name: `bench-${name}`,
    architecture: { maxPositions: BENCH_MAX_POSITIONS },
  });
  log(`built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return dir;
}

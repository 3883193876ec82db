/**
 * The benchmark's random-weight models, built once and kept outside git (`.cache/bench-models` by default) so
 * later runs start at once: synthetic models written by the graph builder, and real models' geometries
 * (randomCheckpoint.ts) written as Hugging Face checkpoints and converted by the real converter, as a user's
 * download would be.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { convertCheckpoint, defaultGraphOptions } from '../convert/convert';
import type { StepGraphOptions } from '../graph/stepGraphBuilder';
import { parameterCount } from '../architecture/architecture';
import { MANIFEST_FILE } from '../model/manifest';
import { variantFileName } from '../model/modelFolder';
import { syntheticArchitecture, writeSyntheticModel, type SyntheticPreset } from '../model/synthetic';
import { CHECKPOINT_GEOMETRIES, writeRandomCheckpoint, type CheckpointGeometryName } from './randomCheckpoint';

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

/**
 * The graph a real geometry is converted to for the benchmark: int4 weights with float32 activations, the CPU's
 * graph for a model too big for fp32, with the converter's default head.
 */
export const GEOMETRY_GRAPH: Partial<StepGraphOptions> = { precision: 'int4', cacheDtype: 'float32' };

/** The CPU's quantised weights a real geometry can be benchmarked in (`dlm bench --geometry --precision`). */
export const GEOMETRY_PRECISIONS = ['int4', 'int8'] as const;
export type GeometryPrecision = (typeof GEOMETRY_PRECISIONS)[number];

export function geometryGraph(precision: GeometryPrecision = 'int4'): Partial<StepGraphOptions> {
  return { ...GEOMETRY_GRAPH, precision };
}

/**
 * The converted model folder of a real geometry with random weights: its checkpoint is written (once) into
 * `modelsDir` and converted (once per graph) with the real converter.
 */
export async function ensureGeometryModel(
  geometry: CheckpointGeometryName,
  modelsDir: string,
  log: (message: string) => void,
  graph: Partial<StepGraphOptions> = GEOMETRY_GRAPH,
): Promise<string> {
  const checkpoint = path.join(modelsDir, `${geometry}-seed${BENCH_SEED}-checkpoint`);
  const variant = variantFileName(defaultGraphOptions(graph)).replace(/^step\./, '').replace(/\.onnx$/, '');
  const dir = path.join(modelsDir, `${geometry}-seed${BENCH_SEED}-${variant}`);
  if (existsSync(path.join(dir, MANIFEST_FILE))) return dir;
  if (!existsSync(path.join(checkpoint, 'config.json'))) {
    log(`writing a ${geometry} checkpoint with random weights (${CHECKPOINT_GEOMETRIES[geometry].description}) in ${checkpoint} ...`);
    const started = performance.now();
    await writeRandomCheckpoint(geometry, checkpoint, { seed: BENCH_SEED });
    log(`written in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  log(`converting it (${variant}) into ${dir} ...`);
  const started = performance.now();
  await convertCheckpoint(checkpoint, dir, { ...graph, name: `bench-${geometry}` });
  log(`converted in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return dir;
}

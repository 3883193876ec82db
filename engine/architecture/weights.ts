/**
 * Where a model's weights come from, under the canonical names of `architecture.ts`. The Hugging Face
 * converter implements this over safetensors, synthetic models over a seeded RNG; the graph builder and the
 * reference forward only read through it, one tensor at a time, so a 7B model never needs to fit in memory.
 */
import { expectedWeights, type ModelArchitecture } from './architecture';

export interface WeightSource {
  names(): string[];
  shape(name: string): number[];
  read(name: string): Promise<Float32Array>;
}

/** Throws one error listing every missing or mis-shaped weight the architecture needs. */
export function checkWeights(arch: ModelArchitecture, weights: WeightSource): void {
  const available = new Set(weights.names());
  const problems: string[] = [];
  for (const [name, shape] of expectedWeights(arch)) {
    if (!available.has(name)) {
      problems.push(`missing ${name}`);
      continue;
    }
    const actual = weights.shape(name);
    if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
      problems.push(`${name} has shape [${actual.join(', ')}], expected [${shape.join(', ')}]`);
    }
  }
  if (problems.length) throw new Error(`weights do not match the architecture: ${problems.join('; ')}`);
}

/** Reads every weight the architecture needs into memory (tiny models: tests and the reference forward). */
export async function readAllWeights(arch: ModelArchitecture, weights: WeightSource): Promise<Map<string, Float32Array>> {
  checkWeights(arch, weights);
  const all = new Map<string, Float32Array>();
  for (const name of expectedWeights(arch).keys()) all.set(name, await weights.read(name));
  return all;
}

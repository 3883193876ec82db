/**
 * The built-in model's untrained initialisation, for the evaluation's "untrained" row: the trainer's init
 * (engine/training/model.py) on the same architecture: norms 1, biases 0, the tied embedding N(0, 0.02),
 * other matrices N(0, 0.02) with the residual outputs (o_proj, down_proj) at 0.02 / sqrt(2 * layers).
 * The normal draws come from the engine's seeded synthetic weights, standardised per tensor and rescaled,
 * so they follow the trainer's distribution (not PyTorch's exact random stream).
 */
import type { ModelArchitecture } from '../architecture/architecture';
import { SyntheticWeights } from '../model/synthetic';
import type { WeightSource } from '../architecture/weights';

const INITIALIZER_RANGE = 0.02;

export class UntrainedWeights implements WeightSource {
  private readonly draws: SyntheticWeights;

  constructor(
    private readonly architecture: ModelArchitecture,
    seed: number,
  ) {
    this.draws = new SyntheticWeights(architecture, seed);
  }

  names(): string[] {
    return this.draws.names();
  }

  shape(name: string): number[] {
    return this.draws.shape(name);
  }

  async read(name: string): Promise<Float32Array> {
    const values = await this.draws.read(name);
    if (name.endsWith('norm.weight')) return values.fill(1);
    if (name.endsWith('.bias')) return values.fill(0);
    const residualOutput = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
    const std = residualOutput ? INITIALIZER_RANGE / Math.sqrt(2 * this.architecture.numLayers) : INITIALIZER_RANGE;
    let mean = 0;
    for (const v of values) mean += v;
    mean /= values.length;
    let variance = 0;
    for (const v of values) variance += (v - mean) ** 2;
    const scale = std / Math.sqrt(variance / values.length);
    for (let i = 0; i < values.length; i++) values[i] = (values[i] - mean) * scale;
    return values;
  }
}

/**
 * A Hugging Face checkpoint folder opened for conversion: its family, architecture, special tokens and
 * tokenizer, checked up front, and its weights as a `WeightSource` under the canonical names (read one tensor
 * at a time from the safetensors files).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectedWeights, type ModelArchitecture, type SpecialTokens } from '../architecture/architecture';
import type { WeightSource } from '../architecture/weights';
import { ConversionError, checkArchitecture, detectFamily, type CheckpointFamily, type HfConfig } from './families';
import { SafetensorsCheckpoint } from './safetensors';
import { findSpecialTokens } from './specialTokens';
import { loadCheckpointTokenizer, type CheckpointTokenizer } from './tokenizerFiles';

export interface OpenCheckpointOptions {
  /** Overrides the RoPE table size (positions) taken from the config. */
  maxPositions?: number;
}

export class HfCheckpoint {
  private constructor(
    readonly dir: string,
    readonly config: HfConfig,
    readonly family: CheckpointFamily,
    readonly architecture: ModelArchitecture,
    readonly tokens: SpecialTokens,
    readonly tokenizer: CheckpointTokenizer,
    readonly weights: CheckpointWeights,
  ) {}

  static async open(dir: string, options: OpenCheckpointOptions = {}): Promise<HfCheckpoint> {
    const configFile = path.join(dir, 'config.json');
    if (!fs.existsSync(configFile)) throw new ConversionError(`${dir} has no config.json; it is not a Hugging Face checkpoint folder`);
    const config = readConfig(configFile);
    const family = detectFamily(config);
    const architecture = family.architecture(config);
    if (options.maxPositions !== undefined) architecture.maxPositions = options.maxPositions;
    checkArchitecture(architecture);
    const tokenizer = loadCheckpointTokenizer(dir);
    const tokens = findSpecialTokens({
      family: family.id,
      config,
      generationConfig: readOptional(path.join(dir, 'generation_config.json')),
      tokenizerConfig: readOptional(path.join(dir, 'tokenizer_config.json')),
      specialTokensMap: readOptional(path.join(dir, 'special_tokens_map.json')),
      tokenizer: tokenizer.json,
      vocabSize: architecture.vocabSize,
    });
    const safetensors = await SafetensorsCheckpoint.open(dir);
    try {
      const weights = new CheckpointWeights(architecture, family, safetensors);
      return new HfCheckpoint(dir, config, family, architecture, tokens, tokenizer, weights);
    } catch (error) {
      await safetensors.close();
      throw error;
    }
  }

  /** Names to match per-model defaults against: the folder name and the config's `_name_or_path`. */
  names(): string[] {
    return [path.basename(path.resolve(this.dir)), String(this.config._name_or_path ?? '')].filter(Boolean);
  }

  async close(): Promise<void> {
    await this.weights.close();
  }
}

function readConfig(file: string): HfConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConversionError(`${file} is not valid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConversionError(`${file} is not a JSON object`);
  return parsed as HfConfig;
}

function readOptional(file: string): HfConfig | undefined {
  return fs.existsSync(file) ? readConfig(file) : undefined;
}

/** The checkpoint's tensors under canonical names; every expected tensor is checked when it is built. */
export class CheckpointWeights implements WeightSource {
  private readonly sources = new Map<string, string>();
  private readonly shapes = new Map<string, number[]>();

  constructor(
    arch: ModelArchitecture,
    family: CheckpointFamily,
    private readonly safetensors: SafetensorsCheckpoint,
  ) {
    const problems: string[] = [];
    for (const [canonical, shape] of expectedWeights(arch)) {
      const source = family.sourceName(canonical);
      if (!safetensors.has(source)) {
        problems.push(`missing ${source}`);
        continue;
      }
      const actual = safetensors.entry(source).shape;
      if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
        problems.push(`${source} has shape [${actual.join(', ')}] but config.json implies [${shape.join(', ')}]`);
        continue;
      }
      this.sources.set(canonical, source);
      this.shapes.set(canonical, actual);
    }
    if (problems.length) {
      throw new ConversionError(`the weights in ${safetensors.dir} do not match its config.json: ${problems.join('; ')}`);
    }
  }

  names(): string[] {
    return [...this.sources.keys()];
  }

  shape(name: string): number[] {
    const shape = this.shapes.get(name);
    if (!shape) throw new ConversionError(`no weight ${name}`);
    return shape;
  }

  read(name: string): Promise<Float32Array> {
    const source = this.sources.get(name);
    if (!source) throw new ConversionError(`no weight ${name}`);
    return this.safetensors.readFloat32(source);
  }

  /** Bytes the conversion will read. */
  sourceBytes(): number {
    let total = 0;
    for (const source of this.sources.values()) {
      const e = this.safetensors.entry(source);
      total += e.end - e.start;
    }
    return total;
  }

  sourceBytesOf(name: string): number {
    const e = this.safetensors.entry(this.sources.get(name) ?? name);
    return e.end - e.start;
  }

  close(): Promise<void> {
    return this.safetensors.close();
  }
}

import { rmSync } from 'node:fs';
import path from 'node:path';
import { convertCheckpoint } from '../convert/convert';
import type { DecodingOptions } from '../../common/decodingOptions';
import { prepareModelForReuse } from '../prepare/prepareModel';
import { HELD_OUT_FILES } from '../prepare/sourceTexts';
import { EXIT_OK, type CliCommand } from './command';

/** From dist/engine/main.js and from engine/cli/ alike, two folders up is the repository. */
const REPOSITORY = path.join(__dirname, '..', '..');

/** The built-in model's Hugging Face checkpoint, trained by engine/training/train.py (see its MODEL_CARD.md). */
export const BUILTIN_CHECKPOINT = path.join(REPOSITORY, 'engine', 'models', 'builtin');

/**
 * The built-in model's decoding defaults, chosen with `dlm eval` on the held-out files (MODEL_CARD.md): a model
 * this small fills best in short semi-autoregressive blocks (blocks of 1-2 tokens score 25 on character
 * similarity, the whole fill at once 17-19), committing the more confident token of each block first.
 */
export const BUILTIN_DECODING: Partial<DecodingOptions> = {
  schedule: 'blocks',
  blockLength: 2,
  algorithm: 'confidence',
  temperature: 0,
  steps: 256,
};

/**
 * Converts the built-in checkpoint with the project's own converter, as any Hugging Face checkpoint is: fp32
 * weights and full logits (the CPU's best graph; the model is small enough that a GPU buys nothing), then
 * readies it for prefix reuse across requests (segment graphs and the depth profile, `dlm profile-depth`).
 */
export async function buildBuiltinModel(outDir: string): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  await convertCheckpoint(BUILTIN_CHECKPOINT, outDir, {
    name: 'dlm-complete-builtin',
    precision: 'fp32',
    cacheDtype: 'float32',
    head: 'logits',
    decoding: BUILTIN_DECODING,
  });
  await prepareModelForReuse(outDir, { device: 'cpu', source: path.join(REPOSITORY, HELD_OUT_FILES) });
}

export const buildBuiltinCommand: CliCommand = {
  name: 'build-builtin',
  summary: 'Convert the built-in checkpoint into a model folder (npm run build puts it in dist/models/builtin).',
  synopsis: '<out-dir>',
  options: {},
  positionals: [{ name: 'out-dir', description: 'Folder to (re)create with the model.', required: true }],
  async run({ positionals }) {
    const outDir = path.resolve(positionals[0]);
    await buildBuiltinModel(outDir);
    process.stdout.write(`built-in model written to ${outDir}\n`);
    return EXIT_OK;
  },
};

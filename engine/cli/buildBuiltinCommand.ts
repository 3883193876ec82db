import { rmSync } from 'node:fs';
import path from 'node:path';
import { writeSyntheticModel } from '../model/synthetic';
import { EXIT_OK, type CliCommand } from './command';

/** Fixed, so every build ships the same built-in model. */
const BUILTIN_SEED = 20240917;

/**
 * The model behind `--model builtin` until the trained one lands: the synthetic tiny Dream-family preset
 * (random weights, byte-level tokenizer). It exercises every part of the product; its output is noise.
 */
export async function buildBuiltinModel(outDir: string): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  await writeSyntheticModel(outDir, { preset: 'tiny-dream', seed: BUILTIN_SEED, name: 'builtin-synthetic-tiny' });
}

export const buildBuiltinCommand: CliCommand = {
  name: 'build-builtin',
  summary: 'Write the built-in model folder (npm run build puts it in dist/models/builtin).',
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

/**
 * `dlm make-checkpoint --geometry <name> --out <folder>`: a Hugging Face checkpoint folder with random bf16
 * weights in the exact layout of a real model (bench/randomCheckpoint.ts), to convert and benchmark at real
 * scale without downloading anything.
 */
import { CHECKPOINT_GEOMETRIES, CHECKPOINT_GEOMETRY_NAMES, writeRandomCheckpoint } from '../bench/randomCheckpoint';
import { EXIT_OK, UsageError, numberOption, stringOption, type CliCommand } from './command';
import { progressLine } from './progressLine';

const gib = (bytes: number) => (bytes / 1024 ** 3).toFixed(2);

export const makeCheckpointCommand: CliCommand = {
  name: 'make-checkpoint',
  summary: 'Write a Hugging Face checkpoint with random weights in the layout of a real model.',
  synopsis: '--geometry <name> --out <folder> [--seed <n>]',
  details: [
    'Geometries:',
    ...CHECKPOINT_GEOMETRY_NAMES.map((name) => `  ${name}: ${CHECKPOINT_GEOMETRIES[name].description}`),
    '',
    'The folder holds config.json, generation_config.json, the bf16 weights (model.safetensors, or shards of',
    'at most 5 GB with model.safetensors.index.json), tokenizer.json and tokenizer_config.json. The weights are',
    'random: speed figures at real scale, never quality. Example:',
    '  dlm make-checkpoint --geometry qwen2.5-0.5b --out ./qwen-0.5b-random',
    '  dlm convert ./qwen-0.5b-random ./qwen-0.5b-int4 --precision int4 --cache-dtype float32',
  ].join('\n'),
  options: {
    geometry: { type: { choices: CHECKPOINT_GEOMETRY_NAMES }, description: 'The real model whose layout to copy.' },
    out: { type: 'string', valueName: 'folder', description: 'Folder to create (must not exist, or be empty).' },
    seed: { type: 'integer', description: 'Seed of the random weights.', defaultText: '1' },
  },
  async run({ options }) {
    const geometry = stringOption(options, 'geometry') as (typeof CHECKPOINT_GEOMETRY_NAMES)[number] | undefined;
    const out = stringOption(options, 'out');
    if (!geometry) throw new UsageError(`--geometry is required (${CHECKPOINT_GEOMETRY_NAMES.join(', ')}).`);
    if (!out) throw new UsageError('--out is required.');
    const show = progressLine('make-checkpoint');
    const dir = await writeRandomCheckpoint(geometry, out, {
      seed: numberOption(options, 'seed'),
      onProgress: (p) => show(`${gib(p.bytesWritten)}/${gib(p.totalBytes)} GiB written`, p.bytesWritten / p.totalBytes),
    });
    process.stdout.write(`${geometry} checkpoint (random weights) written to ${dir}\n`);
    return EXIT_OK;
  },
};

/**
 * `dlm convert <checkpoint> <out-dir>`: a Hugging Face checkpoint folder (or hub id, downloaded first) to a
 * model folder, with progress on stderr.
 */
import * as fs from 'node:fs';
import path from 'node:path';
import { convertCheckpoint, defaultGraphOptions, type ConvertProgress } from '../convert/convert';
import { parseHubModelId } from '../store/huggingFaceHub';
import { downloadToCache } from '../store/modelManager';
import { ATTENTION_LOWERINGS, WEIGHT_PRECISIONS, type AttentionLowering, type CacheDtype, type HeadKind, type Int4AccuracyLevel, type WeightPrecision } from '../graph/stepContract';
import { EXIT_OK, numberOption, stringOption, type CliCommand } from './command';
import { defaultCacheDir } from './cacheDir';
import { progressLine } from './progressLine';

const mib = (bytes: number) => (bytes / 1024 ** 2).toFixed(0);

export const convertCommand: CliCommand = {
  name: 'convert',
  summary: 'Convert a Hugging Face checkpoint (folder or id) into a model folder.',
  synopsis: `<checkpoint> <out-dir> [--precision ${WEIGHT_PRECISIONS.join('|')}] [options]`,
  details: [
    'Reads config.json, the safetensors weights and the tokenizer; writes the step graph, tokenizer.json and',
    'dlm-model.json into <out-dir> (all or nothing). Supported: Dream, Dream-Coder, DiffuCoder, Open-dCoder,',
    'CoDA and LLaDA checkpoints. A Hugging Face id (owner/name[@revision]) is downloaded first into the cache',
    '(HF_TOKEN for gated repositories).',
    '',
    'Defaults: fp16 weights with fp16 activations (GPUs); --precision fp32 gives fp32 activations (CPU); int4',
    '(MatMulNBits, block 32) keeps fp16 activations unless --cache-dtype float32; int8 (DynamicQuantizeMatMul,',
    'one scale per output channel) is for the CPU and has fp32 activations. Every graph gets the stats',
    'head (top-k and entropy computed in the graph) unless --head logits.',
    '',
    'Example:',
    '  dlm convert Dream-org/Dream-Coder-v0-Instruct-7B ./dream-coder-int4 --precision int4',
  ].join('\n'),
  positionals: [
    { name: 'checkpoint', description: 'Checkpoint folder, or a Hugging Face id.', required: true },
    { name: 'out-dir', description: 'Model folder to create (must not exist, or be empty).', required: true },
  ],
  options: {
    precision: { type: { choices: [...WEIGHT_PRECISIONS] }, description: 'Weight format.', defaultText: 'fp16' },
    'cache-dtype': { type: { choices: ['float32', 'float16'] }, description: 'Activation and K/V cache type.', defaultText: 'float32 for fp32 and int8, else float16' },
    attention: { type: { choices: [...ATTENTION_LOWERINGS] }, description: 'Attention lowering.', defaultText: 'hybrid with float32, else decomposed' },
    head: { type: { choices: ['logits', 'stats'] }, description: 'Full logits, or top-k + entropy.', defaultText: 'stats' },
    'top-k': { type: 'integer', description: 'K of the stats head.', defaultText: '32' },
    'int4-accuracy-level': { type: { choices: ['0', '4'] }, description: 'int4: MatMulNBits accuracy_level (4 = int8 activations on the CPU).', defaultText: '4 with float32 activations, else 0' },
    'max-positions': { type: 'integer', description: 'Largest canvas in tokens (sizes the RoPE tables).', defaultText: 'the config\'s, at most 16384' },
    name: { type: 'string', description: 'Model name in the manifest.', defaultText: 'the folder name or id' },
    'cache-dir': { type: 'string', description: 'Where a downloaded checkpoint is kept.' },
  },
  async run({ positionals, options }) {
    const [checkpoint, outDir] = positionals;
    let srcDir = path.resolve(checkpoint);
    const hubId = fs.existsSync(srcDir) ? null : parseHubModelId(checkpoint);
    if (hubId) {
      const show = progressLine('download');
      srcDir = await downloadToCache(hubId, {
        cacheDir: stringOption(options, 'cache-dir') ?? defaultCacheDir(),
        onProgress: (p) => show(p.message, p.fraction ?? 0),
      });
    }
    const graph = defaultGraphOptions({
      precision: stringOption(options, 'precision') as WeightPrecision | undefined,
      cacheDtype: stringOption(options, 'cache-dtype') as CacheDtype | undefined,
      attention: stringOption(options, 'attention') as AttentionLowering | undefined,
      head: stringOption(options, 'head') as HeadKind | undefined,
      topK: numberOption(options, 'top-k'),
      ...(options['int4-accuracy-level'] === undefined ? {} : { int4AccuracyLevel: Number(options['int4-accuracy-level']) as Int4AccuracyLevel }),
    });
    const show = progressLine('convert');
    const result = await convertCheckpoint(srcDir, outDir, {
      ...graph,
      maxPositions: numberOption(options, 'max-positions'),
      name: stringOption(options, 'name'),
      ...(hubId ? { hubId } : {}),
      onProgress: (p: ConvertProgress) =>
        show(`tensor ${p.tensor}/${p.tensors}, ${mib(p.bytesRead)}/${mib(p.totalBytes)} MiB read`, p.tensor / p.tensors),
    });
    for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
    const bytes = fs.readdirSync(result.outDir).reduce((n, f) => n + fs.statSync(path.join(result.outDir, f)).size, 0);
    const { architecture: arch, tokens } = result.manifest;
    process.stdout.write(
      `${result.manifest.name}: ${arch.family} family, ${arch.numLayers} layers, vocab ${arch.vocabSize}, ` +
        `mask ${tokens.mask}, logit shift ${arch.logitShift ? 'yes' : 'no'}\n` +
        `written to ${result.outDir} (${graph.precision} weights, ${graph.cacheDtype} activations, ${graph.head} head, ${mib(bytes)} MiB)\n`,
    );
    return EXIT_OK;
  },
};

/**
 * `dlm check-gpu` (`npm run check:gpu`): the prepared GPU check of engine/bench/gpuCheck.ts, writing
 * gpu-check.json and gpu-check.md. Exits 0 without a GPU too (it then checks the CPU path only).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CPU_PLAN, GPU_PLAN, formatGpuCheck, runGpuCheck, type CheckPlan } from '../bench/gpuCheck';
import { CHECKPOINT_GEOMETRY_NAMES, isCheckpointGeometryName } from '../bench/randomCheckpoint';
import { readNvidiaSmi } from '../machine/machineFacts';
import { EXIT_OK, UsageError, stringOption, type CliCommand } from './command';

export const checkGpuCommand: CliCommand = {
  name: 'check-gpu',
  summary: 'Measure real model geometries (random weights) on CUDA, WebGPU and the CPU; write gpu-check.json and gpu-check.md.',
  synopsis: '[--out <folder>] [--work <folder>] [--geometry <name>]',
  details: [
    'With an NVIDIA GPU: Open-dCoder-0.5B and Dream-Coder-7B geometries, converted as the editor converts them for',
    'each device, a 1024-token prompt and a 32-token fill per cache mode (median of 5 rounds on GPUs), the first',
    'partial result, where the K/V live, and the peak GPU memory (nvidia-smi). Without one it says so and runs',
    'the 0.5B on the CPU on a 128+8 canvas, uncached and prefill, once. Checkpoints and conversions stay in',
    '--work, so a second run skips writing and converting them.',
  ].join('\n'),
  options: {
    out: { type: 'string', valueName: 'folder', description: 'Where gpu-check.json and gpu-check.md go.', defaultText: 'the current folder' },
    work: { type: 'string', valueName: 'folder', description: 'Checkpoints and converted models.', defaultText: '<tmp>/dlm-gpu-check' },
    geometry: { type: { choices: CHECKPOINT_GEOMETRY_NAMES }, description: 'Check only this geometry (tiny-qwen2: the whole check at toy size).' },
  },
  async run({ options }) {
    const out = path.resolve(stringOption(options, 'out') ?? '.');
    const workDir = path.resolve(stringOption(options, 'work') ?? path.join(os.tmpdir(), 'dlm-gpu-check'));
    const geometry = stringOption(options, 'geometry');
    if (geometry !== undefined && !isCheckpointGeometryName(geometry)) throw new UsageError(`unknown geometry ${geometry}`);
    const log = (message: string) => process.stderr.write(`check-gpu: ${message}\n`);
    let plan: CheckPlan | undefined;
    if (geometry) plan = { ...((await readNvidiaSmi()).length > 0 ? GPU_PLAN : CPU_PLAN), geometries: [geometry] };
    const report = await runGpuCheck({ workDir, plan, log });
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'gpu-check.json'), `${JSON.stringify(report, null, 2)}\n`);
    const table = formatGpuCheck(report);
    fs.writeFileSync(path.join(out, 'gpu-check.md'), table);
    process.stdout.write(table);
    log(`wrote ${path.join(out, 'gpu-check.json')} and gpu-check.md`);
    return EXIT_OK;
  },
};

/**
 * `dlm setup-gpu`: onnxruntime-node's CUDA provider into a folder (engine/gpu/gpuProvider.ts), what the
 * editor's "DLM: Set Up GPU Acceleration" does, for the command line and for GPU machines without an editor.
 * `--status` only reports. The engine then runs onnxruntime from that folder when DLM_ORT_NATIVE_DIR names it.
 */
import * as path from 'node:path';
import { gpuProviderStatus, installGpuProvider } from '../gpu/gpuProvider';
import type { GpuProviderStatus } from '../../common/protocol';
import { defaultCacheDir } from './cacheDir';
import { EXIT_FAILURE, EXIT_OK, stringOption, type CliCommand } from './command';
import { progressLine } from './progressLine';

function printStatus(dir: string, status: GpuProviderStatus): void {
  const lines = [status.explanation];
  if (status.applicable) {
    lines.push(status.installed ? `Installed in ${dir}.` : `Not installed in ${dir}.`);
    if (status.missingLibraries.length > 0) lines.push(`This machine lacks libraries the provider needs: ${status.missingLibraries.join(', ')} (install CUDA 12 and cuDNN 9).`);
    if (status.installed) lines.push(status.active ? 'This process runs onnxruntime from it.' : `To use it: export DLM_ORT_NATIVE_DIR=${dir}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

export const setupGpuCommand: CliCommand = {
  name: 'setup-gpu',
  summary: "Fetch onnxruntime-node's CUDA provider (as its install script would) into a folder the engine can run from.",
  synopsis: '[--dir <folder>] [--status] [--feed <url>]',
  details: [
    "Downloads the NuGet package onnxruntime-node's install script names for this platform (Linux x64: the CUDA 12",
    'provider libraries), checks it against the SHA-512 the feed publishes, extracts the libraries with a copy of',
    "onnxruntime-node's own binding and library into <folder>, and says which CUDA/cuDNN libraries the system lacks.",
    'Elsewhere it explains what the platform uses instead (DirectML, Core ML, WebGPU). Then:',
    '  DLM_ORT_NATIVE_DIR=<folder> dlm infill --device cuda ...',
  ].join('\n'),
  options: {
    dir: { type: 'string', description: 'Folder to set up.', valueName: 'folder', defaultText: '<cache dir>/gpu-provider' },
    status: { type: 'boolean', description: 'Only report what is set up and what is missing.' },
    feed: { type: 'string', description: "A NuGet v3 index URL instead of the feed onnxruntime-node names (a mirror).", valueName: 'url' },
  },
  async run({ options }) {
    const dir = path.resolve(stringOption(options, 'dir') ?? path.join(defaultCacheDir(), 'gpu-provider'));
    const before = await gpuProviderStatus(dir);
    if (options.status || !before.applicable) {
      printStatus(dir, before);
      return EXIT_OK;
    }
    const show = progressLine('setup-gpu');
    await installGpuProvider(dir, {
      feedIndex: stringOption(options, 'feed'),
      onProgress: (p) => show(p.message, p.fraction ?? 0),
    });
    const after = await gpuProviderStatus(dir);
    printStatus(dir, after);
    return after.installed ? EXIT_OK : EXIT_FAILURE;
  },
};

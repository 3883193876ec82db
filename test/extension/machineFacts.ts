/** Made-up machines for the model picker's verdicts, in unit tests and inside VS Code alike. */
import type { MachineFacts } from '../../common/protocol';

export const GB = 1e9;

/** An 8-core Linux machine with 32 GB of RAM, 500 GB free and no usable GPU, changed by `facts`. */
export function machine(facts: Partial<MachineFacts>): MachineFacts {
  return {
    platform: 'linux',
    arch: 'x64',
    cpuCores: 8,
    totalMemoryBytes: 32 * GB,
    availableMemoryBytes: 24 * GB,
    cacheDir: '/cache',
    freeDiskBytes: 500 * GB,
    gpus: [],
    gpuDevices: [{ device: 'webgpu', usable: false, reason: 'no GPU device' }],
    ...facts,
  };
}

/**
 * What this machine offers a model, measured here rather than guessed: system memory (total and available now),
 * free disk where models are stored, each GPU's memory where the platform lets it be read (`nvidia-smi` for
 * NVIDIA cards on Linux and Windows, amdgpu's sysfs files on Linux, unified memory on Apple silicon), and which
 * GPU execution providers onnxruntime-node can use here. The model picker's verdicts and the memory guard
 * both start from these facts.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freeDiskBytes } from './diskSpace';
import type { GpuFacts, MachineFacts } from '../../common/protocol';
import { autoGpuOrder, autoSkipReason, backendUnavailableReason } from '../runtime/executionProviders';

const MIB = 1024 ** 2;
/** nvidia-smi answers in well under a second; a hung driver must not hold up the picker. */
const NVIDIA_SMI_TIMEOUT_MS = 5000;

export async function measureMachine(cacheDir: string): Promise<MachineFacts> {
  const [gpus, freeDisk] = await Promise.all([readGpus(), freeDiskBytes(cacheDir).catch(() => null)]);
  return {
    platform: process.platform,
    arch: process.arch,
    cpuCores: os.availableParallelism(),
    totalMemoryBytes: os.totalmem(),
    // libuv reads Linux's MemAvailable (memory a new process can have without swapping), not MemFree.
    availableMemoryBytes: os.freemem(),
    cacheDir,
    freeDiskBytes: freeDisk,
    gpus,
    gpuDevices: autoGpuOrder().map((device) => {
      const reason = backendUnavailableReason(device) ?? autoSkipReason(device);
      return reason ? { device, usable: false, reason } : { device, usable: true };
    }),
  };
}

/** Every GPU whose memory this platform lets us read; an empty list when there is none or nothing can be read. */
export async function readGpus(): Promise<GpuFacts[]> {
  if (process.platform === 'darwin' && process.arch === 'arm64') {
    // Apple silicon: the GPU works in the same memory as the CPU.
    return [{ name: 'Apple GPU', memoryBytes: os.totalmem(), freeMemoryBytes: os.freemem(), source: 'unified memory' }];
  }
  const nvidia = await readNvidiaSmi();
  if (nvidia.length > 0) return nvidia;
  return process.platform === 'linux' ? readAmdgpuSysfs() : [];
}

/** `nvidia-smi`'s CSV query, when the driver's tool is on the PATH. */
export async function readNvidiaSmi(): Promise<GpuFacts[]> {
  const output = await new Promise<string | null>((resolve) => {
    execFile(
      'nvidia-smi',
      ['--query-gpu=name,memory.total,memory.free', '--format=csv,noheader,nounits'],
      { timeout: NVIDIA_SMI_TIMEOUT_MS, windowsHide: true },
      (error, stdout) => resolve(error ? null : stdout),
    );
  });
  return output === null ? [] : parseNvidiaSmi(output);
}

/** Lines of `name, total MiB, free MiB`; a field nvidia-smi cannot read ("[N/A]") becomes null. */
export function parseNvidiaSmi(output: string): GpuFacts[] {
  const mib = (field: string | undefined) => (field !== undefined && /^\d+$/.test(field.trim()) ? Number(field.trim()) * MIB : null);
  return output
    .split(/\r?\n/)
    .map((line) => line.split(','))
    .filter((fields) => fields.length >= 3 && fields[0].trim() !== '')
    .map((fields) => ({
      // A name may itself hold commas; the two numbers are the last fields.
      name: fields.slice(0, -2).join(',').trim(),
      memoryBytes: mib(fields[fields.length - 2]),
      freeMemoryBytes: mib(fields[fields.length - 1]),
      source: 'nvidia-smi',
    }));
}

/** amdgpu exposes VRAM size and use per card in sysfs. */
function readAmdgpuSysfs(root = '/sys/class/drm'): GpuFacts[] {
  const gpus: GpuFacts[] = [];
  let cards: string[];
  try {
    cards = fs.readdirSync(root).filter((name) => /^card\d+$/.test(name));
  } catch {
    return gpus;
  }
  for (const card of cards) {
    const device = path.join(root, card, 'device');
    const total = readNumber(path.join(device, 'mem_info_vram_total'));
    if (total === null) continue;
    const used = readNumber(path.join(device, 'mem_info_vram_used'));
    const product = readText(path.join(device, 'product_name'));
    gpus.push({ name: product || `AMD GPU (${card})`, memoryBytes: total, freeMemoryBytes: used === null ? null : total - used, source: 'amdgpu sysfs' });
  }
  return gpus;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

function readNumber(file: string): number | null {
  const text = readText(file);
  return /^\d+$/.test(text) ? Number(text) : null;
}

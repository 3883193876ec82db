/**
 * The memory guard: before a model is loaded, each device it could run on is checked against the memory free
 * there now (memoryEstimate.ts: the graph variant's weights as they are on disk, the K/V cache and working
 * memory of a planning canvas). A device the model does not fit is skipped by `auto` with the numbers as the
 * reason; when it was asked for by name, or when it fits nowhere, the load is refused before anything is
 * allocated, with the numbers and what to do instead.
 */
import { parameterCount } from '../architecture/architecture';
import type { ExecutionDevice, ModelManifest } from '../model/manifest';
import { memoryNeed, variantBytes } from '../store/memoryEstimate';
import type { DeviceOption, GpuFacts, MemoryNeed, SetupErrorData } from '../../common/protocol';
import { candidateDevices, rankVariants } from '../runtime/executionProviders';

export interface MemoryFacts {
  availableMemoryBytes: number;
  gpus: GpuFacts[];
}

export interface MemoryVerdict {
  /** Devices `auto` must not try, with why. */
  skip: Partial<Record<ExecutionDevice, string>>;
  /** Set when the load must be refused. */
  refuse?: { message: string; data: SetupErrorData };
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;

/** Memory free for `device`, or null where it cannot be read (the load is then not guarded there). */
export function freeMemoryFor(device: ExecutionDevice, facts: MemoryFacts): number | null {
  if (device === 'cpu') return facts.availableMemoryBytes;
  const gpu = facts.gpus[0];
  if (!gpu) return null;
  if (device === 'cuda' && gpu.source !== 'nvidia-smi') return null;
  return gpu.freeMemoryBytes;
}

function describeNeed(need: MemoryNeed): string {
  return (
    `about ${gb(need.totalBytes)} (weights ${gb(need.weightBytes)} in ${need.precision}, K/V cache ${gb(need.kvCacheBytes)} and ` +
    `working memory ${gb(need.activationBytes)} for a ${need.canvasTokens}-token canvas)`
  );
}

export function checkMemory(modelDir: string, manifest: ModelManifest, option: DeviceOption, facts: MemoryFacts): MemoryVerdict {
  const skip: Partial<Record<ExecutionDevice, string>> = {};
  const shortfalls: { device: ExecutionDevice; need: MemoryNeed; free: number }[] = [];
  let anyCandidate = false;
  for (const device of candidateDevices(option)) {
    const variant = rankVariants(manifest.variants, device)[0];
    const free = freeMemoryFor(device, facts);
    if (!variant || free === null) {
      anyCandidate = true;
      continue;
    }
    const need = memoryNeed(manifest.architecture, variant, { weightBytes: variantBytes(modelDir, variant) });
    if (need.totalBytes <= free) {
      anyCandidate = true;
      continue;
    }
    shortfalls.push({ device, need, free });
    skip[device] = `${manifest.name} needs ${describeNeed(need)}; ${gb(free)} is free`;
  }
  if (anyCandidate) return { skip };
  // Fits nowhere: refuse with the device asked for (or the first `auto` would have used).
  const { device, need, free } = shortfalls[0];
  const where = device === 'cpu' ? 'memory' : `${device} GPU memory`;
  return {
    skip,
    refuse: {
      message:
        `Not enough ${where} for ${manifest.name} on ${device}: it needs ${describeNeed(need)}, and ${gb(free)} is free now. ` +
        suggestion(manifest, need, device, facts),
      data: { reason: 'notEnoughMemory', device, neededBytes: need.totalBytes, availableBytes: free },
    },
  };
}

/** What to do instead: a smaller precision, another device with room, or a smaller model. */
function suggestion(manifest: ModelManifest, need: MemoryNeed, device: ExecutionDevice, facts: MemoryFacts): string {
  const tips: string[] = [];
  if (need.precision !== 'int4' && parameterCount(manifest.architecture) > 1e9) {
    tips.push('convert it to int4 weights (`dlm convert <checkpoint> <folder> --precision int4`) for about a quarter of the fp16 size');
  }
  if (device !== 'cpu' && need.totalBytes <= facts.availableMemoryBytes) {
    tips.push(`run it on the CPU (set dlm.device to "cpu"; ${gb(facts.availableMemoryBytes)} of memory is free)`);
  }
  tips.push('close what else uses the memory, or choose a smaller model with "DLM: Choose Model"');
  return `Try to ${tips.join('; or ')}.`;
}

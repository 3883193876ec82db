/**
 * The model picker's verdict for each catalogue model on this machine, from the engine's measurements: it fits
 * on the GPU (its GPU-precision need within the GPU's free memory), fits in RAM on the CPU (its CPU-precision need
 * within the memory available now), or is too large; and whether the disk can take its download and conversion.
 * The same estimates and free-memory figures drive the engine's memory guard, so a model said to fit loads.
 * Also which model is recommended: the best published infill score that fits the GPU; without a GPU that fits,
 * the best small model (at most 2B parameters) that fits in RAM, since the CPU runs a 7B model far slower.
 * Pure: tested with made-up machines.
 */
import type { CatalogueModel, MachineFacts, MemoryNeed } from '../common/protocol';
import { formatBytes } from './transferProgress';

export type VerdictKind = 'gpu' | 'cpu' | 'tooLarge';

export interface ModelVerdict {
  kind: VerdictKind;
  /** The memory need at the precision the model would run at (the GPU's for `gpu`, else the CPU's). */
  need: MemoryNeed;
  /** One line: "fits on the GPU (NVIDIA ...: needs 5.7 GB, 7.9 GB free)". */
  summary: string;
  /** A GPU it fits is there, but onnxruntime cannot use it yet (DLM: Set Up GPU Acceleration). */
  gpuNeedsSetup: boolean;
  /** Disk the model still needs (download left plus conversion), and whether the disk has it. */
  diskNeededBytes: number;
  diskShort: boolean;
}

/** Models above this many parameters are not recommended for a CPU (they fit, but compute 15x more per token). */
const CPU_RECOMMENDATION_LIMIT = 2e9;

export function modelVerdict(model: CatalogueModel, machine: MachineFacts): ModelVerdict {
  const gpu = machine.gpus[0];
  const gpuFree = gpu ? (gpu.freeMemoryBytes ?? gpu.memoryBytes) : null;
  const gpuUsable = machine.gpuDevices.some((d) => d.usable);
  const cpuFree = machine.availableMemoryBytes;
  const diskFor = (device: 'gpu' | 'cpu') => {
    const needed = model.local.ready ? 0 : Math.max(0, model.downloadBytes - model.local.downloadedBytes) + model.convertedBytes[device];
    return { diskNeededBytes: needed, diskShort: machine.freeDiskBytes !== null && needed > machine.freeDiskBytes };
  };
  const needs = (need: MemoryNeed, free: number) => `needs ${formatBytes(need.totalBytes)} in ${need.precision}, ${formatBytes(free)} free`;
  if (gpu && gpuFree !== null && model.memory.gpu.totalBytes <= gpuFree) {
    const setup = !gpuUsable;
    return {
      kind: 'gpu',
      need: model.memory.gpu,
      summary: `fits on the GPU (${gpu.name}: ${needs(model.memory.gpu, gpuFree)})${setup ? ' once GPU acceleration is set up' : ''}`,
      gpuNeedsSetup: setup,
      ...diskFor('gpu'),
    };
  }
  if (model.memory.cpu.totalBytes <= cpuFree) {
    const gpuNote = gpu && gpuFree !== null ? `; too large for the GPU's ${formatBytes(gpuFree)}` : '';
    return { kind: 'cpu', need: model.memory.cpu, summary: `fits in RAM on the CPU (${needs(model.memory.cpu, cpuFree)})${gpuNote}`, gpuNeedsSetup: false, ...diskFor('cpu') };
  }
  const where = [`${formatBytes(cpuFree)} of RAM`, ...(gpu && gpuFree !== null ? [`${formatBytes(gpuFree)} on the GPU`] : [])].join(' and ');
  return {
    kind: 'tooLarge',
    need: model.memory.cpu,
    summary: `too large: needs ${formatBytes(model.memory.cpu.totalBytes)} (${formatBytes(model.memory.gpu.totalBytes)} on a GPU); ${where} free`,
    gpuNeedsSetup: false,
    ...diskFor('cpu'),
  };
}

/** The recommended model's id, or undefined when nothing fits. */
export function recommendedModel(models: CatalogueModel[], machine: MachineFacts): string | undefined {
  const score = (m: CatalogueModel) => m.infillScore?.value ?? -1;
  const best = (candidates: CatalogueModel[]) => candidates.reduce<CatalogueModel | undefined>((a, m) => (!a || score(m) > score(a) ? m : a), undefined);
  const fitting = models.filter((m) => !modelVerdict(m, machine).diskShort);
  const onGpu = best(fitting.filter((m) => m.downloadBytes > 0 && modelVerdict(m, machine).kind === 'gpu'));
  if (onGpu) return onGpu.id;
  const small = best(fitting.filter((m) => m.downloadBytes > 0 && m.parameters <= CPU_RECOMMENDATION_LIMIT && modelVerdict(m, machine).kind === 'cpu'));
  return small?.id ?? models.find((m) => m.downloadBytes === 0)?.id;
}

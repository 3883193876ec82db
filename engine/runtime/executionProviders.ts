/**
 * Devices → onnxruntime execution providers: which ones this platform's onnxruntime-node binary has, the
 * order `auto` tries them in, the session options each needs, and which graph variant suits each one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { listSupportedBackends, type InferenceSession } from 'onnxruntime-node';
import type { DeviceOption } from '../../common/protocol';
import type { ExecutionDevice, GraphVariant } from '../model/manifest';
import type { AttentionLowering } from '../graph/stepContract';
import { packageBinaryDir } from './ortInstallPlan';
import { nativeBinding } from './nativeBinding';

/** onnxruntime's backend name for each device. */
const BACKEND_NAME: Record<ExecutionDevice, string> = { cpu: 'cpu', webgpu: 'webgpu', cuda: 'cuda', dml: 'dml', coreml: 'coreml' };

/**
 * GPU devices `auto` tries, best first, before falling back to the CPU. onnxruntime-node 1.30 ships CUDA
 * only for Linux x64 (and only after its postinstall download), DirectML only on Windows, CoreML only on
 * macOS; WebGPU (Dawn: Vulkan, D3D12, Metal) everywhere but Linux arm64.
 */
export function autoGpuOrder(platform: NodeJS.Platform = process.platform): ExecutionDevice[] {
  switch (platform) {
    case 'win32':
      return ['dml', 'webgpu'];
    case 'darwin':
      return ['webgpu', 'coreml'];
    default:
      return ['cuda', 'webgpu'];
  }
}

/** Where onnxruntime runs from: a GPU provider folder (nativeBinding.ts), else onnxruntime-node's own binaries. */
function bindingDir(): string {
  return nativeBinding.dir ?? packageBinaryDir();
}

/** Why `device` cannot be used with this binary, or null when onnxruntime-node has it. */
export function backendUnavailableReason(device: ExecutionDevice): string | null {
  const backend = listSupportedBackends().find((b) => b.name === BACKEND_NAME[device]);
  if (!backend) return `this onnxruntime-node build (${process.platform}/${process.arch}) has no ${device} execution provider`;
  if (!backend.bundled && device === 'cuda') {
    // Not bundled: the package's postinstall downloads it, which ONNXRUNTIME_NODE_INSTALL=skip skips.
    const library = 'libonnxruntime_providers_cuda.so';
    if (!fs.existsSync(path.join(bindingDir(), library))) {
      return `onnxruntime-node's CUDA provider (${library}) is not installed: run "DLM: Set Up GPU Acceleration" (or dlm setup-gpu); it also needs CUDA 12 and cuDNN 9`;
    }
  }
  return null;
}

/**
 * Why `auto` should not try `device` on this machine, or null. On Linux, WebGPU without a GPU device node
 * would at best find a software Vulkan driver, slower than the CPU provider; an explicit VK_ICD_FILENAMES
 * means someone chose a driver on purpose, so it is tried then.
 */
export function autoSkipReason(device: ExecutionDevice, platform: NodeJS.Platform = process.platform): string | null {
  if (device !== 'webgpu' || platform !== 'linux' || process.env.VK_ICD_FILENAMES) return null;
  const nodes = [...listDir('/dev/dri').filter((n) => n.startsWith('renderD')), ...listDir('/dev').filter((n) => /^nvidia\d+$/.test(n))];
  return nodes.length ? null : 'no GPU device (/dev/dri/renderD*, /dev/nvidia*) on this machine';
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Whether `auto` has a GPU provider to try on this machine (else it runs on the CPU). */
export function autoFindsGpu(): boolean {
  return autoGpuOrder().some((device) => backendUnavailableReason(device) === null && autoSkipReason(device) === null);
}

/** The devices to try for a device setting, in order. */
export function candidateDevices(option: DeviceOption): ExecutionDevice[] {
  return option === 'auto' ? [...autoGpuOrder(), 'cpu'] : [option];
}

export function sessionOptionsFor(device: ExecutionDevice): InferenceSession.SessionOptions {
  // Fatal only: every failing call throws, and the engine reports it with context (e.g. a probed graph variant the
  // device cannot run); onnxruntime's own error lines would only repeat it on stderr.
  const common: InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', logSeverityLevel: 4 };
  switch (device) {
    case 'dml':
      // DirectML runs graphs with neither memory patterns nor parallel execution.
      return { ...common, executionProviders: ['dml'], enableMemPattern: false, executionMode: 'sequential' };
    default:
      return { ...common, executionProviders: [BACKEND_NAME[device]] };
  }
}

/**
 * Whether step-graph K/V can stay in the device's memory between calls: only WebGPU, the one provider for
 * which onnxruntime-node 1.30 returns outputs as device tensors (`preferredOutputLocation: 'gpu-buffer'`).
 * CUDA, DirectML and CoreML copy every input to the device and every output back on each run.
 */
export function keepsKvOnDevice(device: ExecutionDevice): boolean {
  return device === 'webgpu';
}

/**
 * The lowering for onnxruntime's CPU provider. On the medium synthetic model (2-core VM, other work
 * running) full passes took 0.93 s (gqa) vs 1.15 s (decomposed) for 384 rows and 2.8 s vs 3.4 s for 1056
 * rows in the quietest run; cached passes of 1-64 rows were within noise of each other. At the 0.5B geometry
 * (int8) GroupQueryAttention costs 0.9-1.6 ms a layer for one query row over 1,400 cached rows where the plain
 * ops take about 0.35 ms, so `hybrid` (GroupQueryAttention on full passes, plain ops over cached rows) is the CPU's:
 * 1-29 % less per cached call than gqa in 10 of 10 interleaved comparisons (README, "The cost of one step").
 * CPU_ATTENTION_RANK orders the lowerings from the least to the most preferred on the CPU.
 */
const CPU_ATTENTION_RANK: readonly AttentionLowering[] = ['decomposed', 'gqa', 'hybrid'];
export const PREFERRED_CPU_ATTENTION: AttentionLowering = CPU_ATTENTION_RANK[CPU_ATTENTION_RANK.length - 1];

/**
 * How well a graph variant suits a device; higher is better, null = unusable there.
 * - cpu: fp32 activations (fp16 has few native CPU kernels and gets cast around) and full logits (no
 *   transfer cost).
 * - GPUs: fp16 activations and the stats head (reading back full-vocabulary logits dominates a step there).
 * - Attention: onnxruntime-node 1.30's WebGPU GroupQueryAttention rejects causal=0 ("not implemented"), so
 *   WebGPU cannot use gqa (or hybrid) variants at all; causal=0 is unverified on the CUDA/DirectML/CoreML kernels, so
 *   they prefer the decomposed lowering. On the CPU, hybrid, then gqa (CPU_ATTENTION_RANK).
 */
export function variantScore(variant: GraphVariant, device: ExecutionDevice): number | null {
  if (variant.devices && !variant.devices.includes(device)) return null;
  if (device === 'webgpu' && variant.attention !== 'decomposed') return null;
  const onCpu = device === 'cpu';
  let score = 0;
  if ((variant.cacheDtype === 'float32') === onCpu) score += 100;
  if ((variant.head === 'logits') === onCpu) score += 10;
  score += onCpu ? CPU_ATTENTION_RANK.indexOf(variant.attention) : variant.attention === 'decomposed' ? 1 : 0;
  return score;
}

/** The variants usable on `device`, best first (ties keep manifest order). */
export function rankVariants(variants: GraphVariant[], device: ExecutionDevice): GraphVariant[] {
  return variants
    .map((variant, index) => ({ variant, index, score: variantScore(variant, device) }))
    .filter((v): v is { variant: GraphVariant; index: number; score: number } => v.score !== null)
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .map((v) => v.variant);
}

/** Where Debian's chromium package puts SwiftShader's Vulkan driver (a CPU implementation of Vulkan). */
export const SWIFTSHADER_VULKAN_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * Points the Vulkan loader at SwiftShader so the WebGPU provider runs without a GPU (tests, CI). The
 * variable is read when the process first initialises WebGPU and a failed first attempt is not retried, so
 * this must run on the main thread (worker threads have a private copy of the environment) before any
 * WebGPU session is created anywhere in the process. Returns why it could not, or null on success.
 */
export function useSoftwareWebGpu(icd = SWIFTSHADER_VULKAN_ICD): string | null {
  if (!isMainThread) return 'the Vulkan driver can only be chosen from the main thread';
  if (!fs.existsSync(icd)) return `${icd} is missing (install Debian's chromium package for SwiftShader)`;
  process.env.VK_ICD_FILENAMES = icd;
  return null;
}

/**
 * GPU set-up: onnxruntime-node's CUDA provider fetched into a folder the engine runs onnxruntime from
 * (providerFolder.ts, runtime/nativeBinding.ts), exactly as onnxruntime-node's install script would fetch it
 * (ortInstallPlan.ts: same feed, package, version and file names), and checked: the package against the feed's
 * SHA-512 and size, each extracted library against its CRC-32, the libraries the provider needs against the
 * system's. Where onnxruntime-node fetches nothing (Windows, macOS, Linux arm64) or there is no NVIDIA GPU, the
 * status explains what the platform uses instead.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { extractZipEntry, readZipEntries } from '../../common/zipArchive';
import { readGpus } from '../machine/machineFacts';
import { ensureFreeSpace } from '../machine/diskSpace';
import { downloadFile, DownloadError, type RemoteFile } from '../store/fileDownload';
import { GPU_PROVIDER_MARKER, type GpuFacts, type GpuProviderStatus, type LoadProgressParams } from '../../common/protocol';
import { nativeBinding } from '../runtime/nativeBinding';
import { resolveNugetPackage } from './nugetFeed';
import { ortInstallPlan, ortVersion, packageBinaryDir, type InstallPlan } from '../runtime/ortInstallPlan';
import { providerFolderProblem, type ProviderMarker } from '../runtime/providerFolder';
import { missingLibraries } from './sharedLibraries';

/** The provider library whose dependencies decide whether CUDA can run here. */
const CUDA_PROVIDER = 'libonnxruntime_providers_cuda.so';
const DOWNLOAD_FOLDER = '.download';

export interface InstallOptions {
  /** Instead of the feed onnxruntime-node names (tests serve one on 127.0.0.1). */
  feedIndex?: string;
  onProgress?: (progress: Omit<LoadProgressParams, 'progressToken'>) => void;
  signal?: AbortSignal;
}

/** What the platform uses instead, where there is nothing to fetch. */
function explainNothingToFetch(gpus: GpuFacts[]): string {
  switch (process.platform) {
    case 'win32':
      return (
        "onnxruntime-node for Windows fetches no CUDA provider (its install script has none for Windows); it ships DirectML, which runs NVIDIA, " +
        'AMD and Intel GPUs, and WebGPU. Nothing to set up: dlm.device "auto" tries DirectML first.'
      );
    case 'darwin':
      return 'On macOS onnxruntime-node ships WebGPU (Metal) and Core ML; there is nothing to set up: dlm.device "auto" tries WebGPU first.';
    default:
      if (process.arch !== 'x64') return `onnxruntime-node ${ortVersion()} for Linux ${process.arch} has only the CPU provider; there is no GPU provider to set up.`;
      return gpus.length > 0
        ? `${gpus[0].name} is not an NVIDIA GPU: the CUDA provider cannot use it. WebGPU (Vulkan), which ships with onnxruntime-node, runs it: dlm.device "auto" tries WebGPU.`
        : 'No NVIDIA GPU was found (nvidia-smi does not answer). GPUs of other makers run through WebGPU (Vulkan), which ships with onnxruntime-node: dlm.device "auto" tries it.';
  }
}

function hasNvidia(gpus: GpuFacts[]): boolean {
  return gpus.some((gpu) => gpu.source === 'nvidia-smi');
}

export async function gpuProviderStatus(dir: string, gpus?: GpuFacts[]): Promise<GpuProviderStatus> {
  const found = gpus ?? (await readGpus());
  const plan = ortInstallPlan();
  const active = nativeBinding.dir !== null && path.resolve(nativeBinding.dir) === path.resolve(dir);
  if (!plan || !hasNvidia(found)) {
    return { applicable: false, explanation: explainNothingToFetch(found), installed: false, missingLibraries: [], active };
  }
  const candidate = plan.candidates[0];
  const source = { package: plan.packageName, version: candidate.version, feed: candidate.feedIndex };
  const installed = providerFolderProblem(dir) === null;
  const missing = installed ? missingLibraries(path.join(dir, CUDA_PROVIDER)) : [];
  return {
    applicable: true,
    explanation:
      `${found[0].name} can run models with onnxruntime's CUDA provider: the libraries onnxruntime-node's install script fetches ` +
      `(${plan.packageName} ${candidate.version} from ${new URL(candidate.feedIndex).host}), checked against the feed's SHA-512. ` +
      'It needs CUDA 12 and cuDNN 9 on the system.',
    installed,
    source,
    missingLibraries: missing,
    active,
  };
}

/** The package on the feed: the first version candidate the feed has, as the install script tries them. */
async function resolvePackage(plan: InstallPlan, options: InstallOptions): Promise<{ remote: RemoteFile; version: string; feed: string }> {
  let lastMissing: unknown;
  for (const candidate of plan.candidates) {
    const feed = options.feedIndex ?? candidate.feedIndex;
    try {
      return { remote: await resolveNugetPackage(feed, plan.packageName, candidate.version, options.signal), version: candidate.version, feed };
    } catch (error) {
      if (!(error instanceof DownloadError) || error.reason !== 'missing') throw error;
      lastMissing = error;
    }
  }
  throw lastMissing;
}

export async function installGpuProvider(dir: string, options: InstallOptions = {}): Promise<ProviderMarker> {
  const plan = ortInstallPlan();
  if (!plan) throw new Error(explainNothingToFetch(await readGpus()));
  const report = options.onProgress ?? (() => undefined);
  fs.mkdirSync(dir, { recursive: true });
  const { remote, version, feed } = await resolvePackage(plan, options);
  const downloads = path.join(dir, DOWNLOAD_FOLDER);
  fs.mkdirSync(downloads, { recursive: true });
  const label = `${plan.packageName} ${version}`;
  await ensureFreeSpace(dir, remote.size!, `the package ${label}`, 'free some space and run the GPU set-up again');
  await downloadFile(remote, downloads, {
    label,
    source: 'the NuGet feed',
    signal: options.signal,
    onBytes: (bytes) =>
      report({ stage: 'download', message: `Downloading ${label}`, receivedBytes: bytes, totalBytes: remote.size!, fraction: bytes / remote.size! }),
  });

  const nupkg = path.join(downloads, remote.name);
  const entries = readZipEntries(nupkg);
  const wanted = plan.files.map((file) => {
    const entry = entries.find((e) => e.name === file.pathInPackage);
    if (!entry) throw new DownloadError(`${file.pathInPackage} is not in ${label}`, 'corrupt', remote.url);
    return { file, entry };
  });
  const binaries = fs.readdirSync(packageBinaryDir()).map((name) => path.join(packageBinaryDir(), name));
  const bytes = wanted.reduce((n, w) => n + w.entry.size, 0) + binaries.reduce((n, f) => n + fs.statSync(f).size, 0);
  await ensureFreeSpace(dir, bytes, 'the provider libraries', 'free some space and run the GPU set-up again');

  // A marker from before no longer describes the folder while it changes.
  fs.rmSync(path.join(dir, GPU_PROVIDER_MARKER), { force: true });
  for (const binary of binaries) fs.copyFileSync(binary, path.join(dir, path.basename(binary)));
  for (const [i, { file, entry }] of wanted.entries()) {
    if (options.signal?.aborted) throw new DownloadError(`the set-up of ${label} was cancelled`, 'cancelled', remote.url);
    report({ stage: 'install', message: `Extracting ${file.name}`, fraction: i / wanted.length });
    await extractZipEntry(nupkg, entry, path.join(dir, file.name));
  }
  const names = [...binaries.map((b) => path.basename(b)), ...plan.files.map((f) => f.name)];
  const marker: ProviderMarker = {
    onnxruntimeNode: ortVersion(),
    manifest: plan.manifest,
    package: plan.packageName,
    version,
    feed,
    sha512: remote.digest!.hex,
    files: names.map((name) => ({ name, size: fs.statSync(path.join(dir, name)).size })),
  };
  fs.writeFileSync(path.join(dir, GPU_PROVIDER_MARKER), JSON.stringify(marker, null, 2));
  // The package itself is not needed any more; the libraries are extracted and recorded.
  fs.rmSync(downloads, { recursive: true, force: true });
  report({ stage: 'install', message: `Installed ${label}`, fraction: 1 });
  return marker;
}

/**
 * What onnxruntime-node's own install script (node_modules/onnxruntime-node/script/install.js) would fetch
 * for this platform, read from the package's own metadata (script/install-metadata.js and
 * install-metadata-versions.js), so the libraries come from the same feed, in the same package and version, and
 * land under the same names: on Linux x64 the CUDA 12 manifest, three provider libraries from the NuGet package
 * Microsoft.ML.OnnxRuntime.Gpu.Linux at onnxruntime-node's own version; on every other platform nothing (the
 * Windows, macOS and Linux arm64 builds carry their GPU providers, or have none, in the package itself).
 */
import * as path from 'node:path';

interface InstallMetadata {
  requirements: Record<string, string[]>;
  manifests: Record<string, Record<string, { package: string; path: string }>>;
  packages: Record<string, { name: string; versions: { feed: string; version: string }[] }>;
  feeds: Record<string, { type: string; index: string }>;
}

export interface InstallPlan {
  /** The manifest's name, e.g. `cuda12`. */
  manifest: string;
  /** The NuGet package and the versions to try in order, each on its feed's index URL. */
  packageName: string;
  candidates: { version: string; feedIndex: string }[];
  /** File name in onnxruntime's binary folder, and its path inside the package. */
  files: { name: string; pathInPackage: string }[];
}

/** onnxruntime-node's version (its package.json). */
export function ortVersion(): string {
  return (require('onnxruntime-node/package.json') as { version: string }).version;
}

/** The folder of onnxruntime-node's native binding and library for this platform. */
export function packageBinaryDir(platform: string = process.platform, arch: string = process.arch): string {
  return path.join(path.dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', platform, arch);
}

/** The files onnxruntime-node's install script would download here, or null when it downloads nothing. */
export function ortInstallPlan(platform: string = process.platform, arch: string = process.arch): InstallPlan | null {
  const metadata = require('onnxruntime-node/script/install-metadata.js') as InstallMetadata;
  const key = `${platform}/${arch}`;
  const names = metadata.requirements[key] ?? [];
  // One manifest per platform today (linux/x64: cuda12); the script installs them all, from one package.
  const manifest = names[0];
  if (!manifest) return null;
  const entries = Object.entries(metadata.manifests[`${key}:${manifest}`] ?? {});
  if (entries.length === 0) return null;
  const packageKey = entries[0][1].package;
  const pkg = metadata.packages[packageKey];
  if (!pkg || entries.some(([, file]) => file.package !== packageKey)) {
    throw new Error(`onnxruntime-node's install metadata for ${key}:${manifest} names packages this engine does not know how to fetch`);
  }
  const candidates = pkg.versions.map(({ feed, version }) => {
    const source = metadata.feeds[feed];
    if (!source || source.type !== 'nuget') throw new Error(`onnxruntime-node's install metadata names a ${source?.type ?? 'missing'} feed "${feed}"`);
    return { version, feedIndex: source.index };
  });
  return {
    manifest,
    packageName: pkg.name,
    candidates,
    files: entries.map(([file, { path: pathInPackage }]) => ({ name: path.basename(file), pathInPackage })),
  };
}

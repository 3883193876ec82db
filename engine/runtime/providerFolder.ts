/**
 * The folder a GPU provider is set up in (the extension's storage): onnxruntime-node's native binding and
 * onnxruntime library copied from the package, the provider libraries extracted from the NuGet package, and
 * a marker naming what was installed for which onnxruntime-node. onnxruntime loads provider libraries from
 * the folder of the onnxruntime library it runs from (provider_bridge_ort.cc: Env::GetRuntimePath()), which is
 * why the binding and the library live here too. No onnxruntime import: this is read before onnxruntime loads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GPU_PROVIDER_MARKER } from '../../common/protocol';
import { ortVersion } from './ortInstallPlan';

export const BINDING_FILE = 'onnxruntime_binding.node';

export interface ProviderMarker {
  /** The onnxruntime-node version whose binding and library were copied (they must match the JS package). */
  onnxruntimeNode: string;
  manifest: string;
  package: string;
  version: string;
  feed: string;
  sha512: string;
  files: { name: string; size: number }[];
}

export function readProviderMarker(dir: string): ProviderMarker | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, GPU_PROVIDER_MARKER), 'utf8')) as ProviderMarker;
  } catch {
    return null;
  }
}

/** Why onnxruntime cannot be loaded from `dir`, or null when it can. */
export function providerFolderProblem(dir: string): string | null {
  const marker = readProviderMarker(dir);
  if (!marker) return `${dir} holds no GPU provider set-up (no ${GPU_PROVIDER_MARKER})`;
  const version = ortVersion();
  if (marker.onnxruntimeNode !== version) {
    return `${dir} was set up for onnxruntime-node ${marker.onnxruntimeNode}, this engine has ${version}; run the GPU set-up again`;
  }
  for (const file of marker.files) {
    const full = path.join(dir, file.name);
    if (!fs.existsSync(full) || fs.statSync(full).size !== file.size) return `${full} is missing or changed; run the GPU set-up again`;
  }
  return null;
}

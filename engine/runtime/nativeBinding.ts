/**
 * Runs onnxruntime from the folder named by env DLM_ORT_NATIVE_DIR (a GPU provider set up in the extension's
 * storage, engine/runtime/providerFolder.ts) instead of from the onnxruntime-node package: its native binding is
 * loaded from there and put in Node's module cache under the package's own binding path, so onnxruntime-node's
 * `require('../bin/napi-v6/<platform>/<arch>/onnxruntime_binding.node')` returns it. The binding finds the
 * onnxruntime library beside itself (its RUNPATH is $ORIGIN), and onnxruntime finds the provider libraries
 * beside that. It must run before anything requires onnxruntime-node: it is the first import of the engine's
 * entry (main.ts) and of the model worker (workerMain.ts), whose module cache is its own.
 */
import Module from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageBinaryDir } from './ortInstallPlan';
import { BINDING_FILE, providerFolderProblem } from './providerFolder';

export interface NativeBindingSource {
  /** The folder onnxruntime runs from when it is not the package's. */
  dir: string | null;
  /** Why DLM_ORT_NATIVE_DIR was not used, when it was set. */
  problem: string | null;
}

function loadFromFolder(): NativeBindingSource {
  const dir = process.env.DLM_ORT_NATIVE_DIR;
  if (!dir) return { dir: null, problem: null };
  const problem = providerFolderProblem(dir);
  if (problem) return { dir: null, problem };
  const packageBinding = fs.realpathSync(path.join(packageBinaryDir(), BINDING_FILE));
  const cache = require.cache as Record<string, NodeJS.Module | undefined>;
  if (!cache[packageBinding]) {
    const binding = new Module(packageBinding) as NodeJS.Module & { filename: string; loaded: boolean };
    binding.filename = packageBinding;
    process.dlopen(binding, path.join(dir, BINDING_FILE));
    binding.loaded = true;
    cache[packageBinding] = binding;
  }
  return { dir, problem: null };
}

export const nativeBinding: NativeBindingSource = loadFromFolder();

#!/usr/bin/env node
/** The `dlm` command: `dlm serve` (the engine process the extension spawns), `dlm infill`, `dlm bench`, ... */
// First: onnxruntime may have to be loaded from a GPU provider folder, before anything requires onnxruntime-node.
import './runtime/nativeBinding';
import { runCli } from './cli/registry';
import { useSoftwareWebGpu } from './runtime/executionProviders';

// Opt-in software WebGPU (SwiftShader) for machines without a GPU, e.g. CI. It must be set up on the main thread
// before any worker creates a WebGPU session.
if (process.env.DLM_WEBGPU_SOFTWARE === '1') {
  const problem = useSoftwareWebGpu();
  if (problem) process.stderr.write(`dlm: DLM_WEBGPU_SOFTWARE=1 ignored: ${problem}\n`);
}

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`dlm: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);

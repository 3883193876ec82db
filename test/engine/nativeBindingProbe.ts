/**
 * Child process of gpuProvider.test.ts: imports the engine's native binding loader first (as the engine's entry
 * does), then runs one step of a model with onnxruntime-node on the CPU, and prints as one JSON line which
 * folder onnxruntime was loaded from (its library's path in /proc/self/maps), what the loader decided, and what
 * the CUDA check says. Usage: DLM_ORT_NATIVE_DIR=<folder> node -r tsx/cjs nativeBindingProbe.ts <modelDir>
 */
import { nativeBinding } from '../../engine/runtime/nativeBinding';
import * as fs from 'node:fs';
import { readManifest } from '../../engine/model/manifest';
import { backendUnavailableReason } from '../../engine/runtime/executionProviders';
import { loadStepModel } from '../../engine/runtime/onnxStepModel';
import { stepFeeds } from './graphTestSupport';

async function main(): Promise<void> {
  const dir = process.argv[2];
  const loaded = await loadStepModel(dir, readManifest(dir), { device: 'cpu' });
  const result = await loaded.model.run(stepFeeds(loaded.model, { ids: [1, 2, 3], positions: [0, 1, 2], read: [0, 1, 2] }));
  const libraries = fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((line) => line.split(/\s+/).pop() ?? '')
    .filter((file) => file.endsWith('libonnxruntime.so.1'));
  process.stdout.write(
    `${JSON.stringify({ nativeBinding, libraries: [...new Set(libraries)], ran: result.predictions.rows, cudaUnavailable: backendUnavailableReason('cuda') })}\n`,
  );
}

main().catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: (error as Error).stack })}\n`);
  process.exit(1);
});

/**
 * The model the extension's tests run: the runtime's tiny synthetic Dream-family model (random weights,
 * byte-level tokenizer), written fresh for each run. Its fills are noise, but it denoises for real: one
 * token per step (steps = length), each step a real graph call, with progress streamed by the engine.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSyntheticModel } from '../../engine/model/synthetic';

export const TEST_MODEL_NAME = 'test-tiny-dream';

/** Writes the model into a new temporary folder and returns the folder. */
export async function writeTestModel(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-test-model-'));
  await writeSyntheticModel(dir, { preset: 'tiny-dream', seed: 7, name: TEST_MODEL_NAME });
  return dir;
}

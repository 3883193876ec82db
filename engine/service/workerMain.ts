/**
 * Entry of a model worker thread (bundled as dist/engine/service/workerMain.js): loads one model's step
 * graph with onnxruntime-node, refuses it when one forward pass shows corrupt weights (weightSelfCheck.ts), and
 * runs whole denoising loops on it. `run()` is synchronous in onnxruntime-node 1.30, so the loop lives here,
 * off the protocol thread; a cancel arrives through shared memory and is honoured between steps.
 */
// First, as in main.ts: this thread's module cache must get onnxruntime from the same folder.
import '../runtime/nativeBinding';
import { parentPort, workerData } from 'node:worker_threads';
import { loadStepModel } from '../runtime/onnxStepModel';
import { weightProblem } from '../runtime/weightSelfCheck';
import { denoise, type DenoiseHooks } from '../denoiser/denoiser';
import { CancelledError } from '../denoiser/cancellation';
import type { StepModel } from '../graph/stepContract';
import { PrefixReuser } from '../reuse/prefixReuse';
import type { FromWorker, ModelWorkerData, ReuseOutcome, ToWorker } from './workerMessages';

const port = parentPort;
if (!port) throw new Error('workerMain.ts runs only as a worker thread.');
const cancelFlag = new Int32Array((workerData as ModelWorkerData).cancelFlag);
let model: StepModel | undefined;
/** What prefix reuse is built from, once a model is loaded; the reuser itself is made at its first use. */
let reuseSource: { load(): Promise<PrefixReuser> } | undefined;
let reuser: Promise<PrefixReuser> | undefined;
function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

async function handle(message: ToWorker): Promise<void> {
  if (message.kind === 'load') {
    try {
      const loaded = await loadStepModel(message.modelDir, message.manifest, { device: message.device, exclude: message.exclude });
      const problem = await weightProblem(loaded.model, message.manifest.architecture.vocabSize);
      if (problem) {
        throw new Error(`the weights in ${message.modelDir} are corrupt: ${problem}. Convert or download the model again.`);
      }
      model = loaded.model;
      const { modelDir, manifest } = message;
      reuseSource = { load: () => PrefixReuser.load(modelDir, manifest.architecture, loaded.variant, loaded.device, loaded.model) };
      const notes = [
        ...(loaded.skippedVariants ?? []).map((reason) => `graph variant skipped: ${reason}`),
        ...(loaded.deviceKvUnavailable ? [`K/V cache kept on the host: ${loaded.deviceKvUnavailable}`] : []),
      ];
      send({ kind: 'loaded', device: loaded.device, fallbackReason: loaded.fallbackReason, notes });
    } catch (error) {
      send({ kind: 'loadFailed', message: (error as Error).message });
    }
    return;
  }

  const { jobId, spec, request, reportProgress } = message;
  try {
    if (!model) throw new Error('No model is loaded in this worker.');
    const hooks: DenoiseHooks = {
      onProgress(progress) {
        if (!reportProgress) return;
        const fill = Int32Array.from(progress.fill);
        const confidence = Float32Array.from(progress.confidence);
        send(
          { kind: 'progress', jobId, step: progress.step, totalSteps: progress.totalSteps, fill, confidence },
          [fill.buffer, confidence.buffer],
        );
      },
      isCancelled: () => Atomics.load(cancelFlag, 0) === jobId,
    };
    let reuse: ReuseOutcome | undefined;
    let reusing: PrefixReuser | undefined;
    if (message.reuse) {
      try {
        // A failed load is not kept: the folder may be readied (dlm profile-depth) while the engine runs.
        reusing = await (reuser ??= reuseSource!.load().catch((error: unknown) => {
          reuser = undefined;
          throw error;
        }));
      } catch (error) {
        reuse = { unavailable: (error as Error).message };
      }
    }
    let result;
    if (reusing) {
      const reused = await reusing.denoise(spec, request, message.reuse!.document, hooks);
      result = reused.result;
      reuse = { stats: reused.reuse };
    } else {
      result = await denoise(model, spec, request, hooks);
    }
    send({ kind: 'done', jobId, result, reuse });
  } catch (error) {
    if (error instanceof CancelledError) {
      send({ kind: 'cancelled', jobId, stepsDone: error.stepsDone, totalSteps: error.totalSteps });
    } else {
      send({ kind: 'failed', jobId, message: (error as Error).message });
    }
  }
}

// Messages are handled one after another: the main thread sends a model one denoise at a time.
let queue = Promise.resolve();
port.on('message', (message: ToWorker) => {
  queue = queue.then(() => handle(message));
});

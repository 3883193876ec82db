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
import { fullPassFeeds, type StepModel } from '../graph/stepContract';
import { PromptComputationCancelled } from '../reuse/carriedPromptModel';
import { PromptReuse, ReuseUnavailableError } from '../reuse/promptReuse';
import type { FromWorker, ModelWorkerData, ReuseOutcome, ToWorker } from './workerMessages';

const port = parentPort;
if (!port) throw new Error('workerMain.ts runs only as a worker thread.');
const cancelFlag = new Int32Array((workerData as ModelWorkerData).cancelFlag);
let model: StepModel | undefined;
/** Cross-request prompt reuse for the loaded model. */
let reuse: PromptReuse | undefined;
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
      reuse = new PromptReuse(message.modelDir, message.manifest.architecture, loaded.variant, loaded.device, loaded.model);
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

  if (message.kind === 'warm') return warm(message);
  if (message.kind === 'time') return time(message);

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
    let outcome: ReuseOutcome | undefined;
    let result;
    if (message.reuse) {
      try {
        const reused = await reuse!.denoise(spec, request, message.reuse.document, message.reuse.mode, hooks);
        result = reused.result;
        outcome = { stats: reused.reuse };
      } catch (error) {
        if (!(error instanceof ReuseUnavailableError)) throw error;
        outcome = { unavailable: error.message };
      }
    }
    result ??= await denoise(model, spec, request, hooks);
    send({ kind: 'done', jobId, result, reuse: outcome });
  } catch (error) {
    if (error instanceof CancelledError) {
      send({ kind: 'cancelled', jobId, stepsDone: error.stepsDone, totalSteps: error.totalSteps });
    } else {
      send({ kind: 'failed', jobId, message: (error as Error).message });
    }
  }
}

/** A background warm-up: the prompt K/V of a context, stopped between layers when its job is cancelled. */
async function warm(message: Extract<ToWorker, { kind: 'warm' }>): Promise<void> {
  const { jobId, spec, request } = message;
  const started = performance.now();
  try {
    if (!reuse) throw new Error('No model is loaded in this worker.');
    const isCancelled = () => Atomics.load(cancelFlag, 0) === jobId;
    // Queued behind a request that preempted it: stop before computing anything.
    if (isCancelled()) throw new PromptComputationCancelled('cancelled before it started');
    let outcome: ReuseOutcome;
    try {
      outcome = { stats: await reuse.warm(spec, request, message.reuse.document, message.reuse.mode, isCancelled) };
    } catch (error) {
      if (!(error instanceof ReuseUnavailableError)) throw error;
      outcome = { unavailable: error.message };
    }
    send({ kind: 'warmed', jobId, outcome, ms: performance.now() - started });
  } catch (error) {
    if (error instanceof PromptComputationCancelled) send({ kind: 'cancelled', jobId, stepsDone: 0, totalSteps: 0 });
    else send({ kind: 'failed', jobId, message: (error as Error).message });
  }
}

/** One timed graph call per shape, over token 0 and zero K/V: the cost of a call depends on its shape only. */
async function time(message: Extract<ToWorker, { kind: 'time' }>): Promise<void> {
  try {
    if (!model) throw new Error('No model is loaded in this worker.');
    const ms: number[] = [];
    for (const { rows, contextRows } of message.shapes) {
      const feeds = fullPassFeeds(model, new Array<number>(rows).fill(0), [rows - 1], contextRows);
      const started = performance.now();
      await model.run(feeds, { newKv: 'none' });
      ms.push(performance.now() - started);
    }
    send({ kind: 'timed', jobId: message.jobId, ms });
  } catch (error) {
    send({ kind: 'failed', jobId: message.jobId, message: (error as Error).message });
  }
}

// Messages are handled one after another: the main thread sends a model one denoise at a time.
let queue = Promise.resolve();
port.on('message', (message: ToWorker) => {
  queue = queue.then(() => handle(message));
});

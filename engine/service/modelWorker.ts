/**
 * The main thread's handle on a model worker: a `worker_threads` Worker that loads one model's step graph
 * and runs whole denoising loops, so that onnxruntime-node's synchronous `run()` never blocks the protocol.
 */
import { Worker } from 'node:worker_threads';
import type { ExecutionDevice, ModelManifest } from '../model/manifest';
import { CancelledError } from '../denoiser/cancellation';
import type { DenoiseRequest, DenoiseResult, DenoiseSpec } from '../denoiser/denoiser';
import type { DeviceOption } from '../../common/protocol';
import type { CallShape, FromWorker, ModelWorkerData, PromptReuseTarget, ReuseOutcome, ToWorker } from './workerMessages';
import { workerScript } from './workerScript';

export interface WorkerProgress {
  step: number;
  totalSteps: number;
  fill: Int32Array;
  confidence: Float32Array;
}

/** A denoise's result and how prefix reuse fared when it was asked for. */
export type WorkerDenoiseResult = DenoiseResult & { reuse?: ReuseOutcome };

/** What a warm-up computed (or why it could not), and how long it took. */
export interface WarmOutcome {
  outcome: ReuseOutcome;
  ms: number;
}

interface PendingJob {
  resolve(result: WorkerDenoiseResult | WarmOutcome | number[]): void;
  reject(error: Error): void;
  onProgress?: (progress: WorkerProgress) => void;
}

export class ModelWorker {
  private readonly pending = new Map<number, PendingJob>();
  private exitError: Error | undefined;
  private loadWaiter: { resolve(message: FromWorker): void; reject(error: Error): void } | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly cancelFlag: Int32Array,
  ) {
    // Whatever the worker prints goes to stderr: in `dlm serve` stdout carries only the protocol.
    worker.stdout.pipe(process.stderr);
    worker.stderr.pipe(process.stderr);
    worker.on('message', (message: FromWorker) => this.receive(message));
    worker.on('error', (error) => this.fail(new Error(`The model worker crashed: ${error.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`The model worker exited (code ${code}).`)));
  }

  /** Starts a worker and loads the model's step graph in it. */
  static async start(
    modelDir: string,
    manifest: ModelManifest,
    device: DeviceOption,
    /** Devices not to try, with why (the memory guard's findings). */
    exclude: Partial<Record<ExecutionDevice, string>> = {},
  ): Promise<{ worker: ModelWorker; device: Exclude<DeviceOption, 'auto'>; fallbackReason?: string; notes: string[] }> {
    const script = workerScript('workerMain');
    const cancelFlag = new SharedArrayBuffer(4);
    const workerData: ModelWorkerData = { cancelFlag };
    const handle = new ModelWorker(
      new Worker(script.file, { execArgv: script.execArgv, workerData, stdout: true, stderr: true }),
      new Int32Array(cancelFlag),
    );
    const loaded = await new Promise<FromWorker>((resolve, reject) => {
      handle.loadWaiter = { resolve, reject };
      handle.post({ kind: 'load', modelDir, manifest, device, exclude });
    });
    handle.loadWaiter = undefined;
    if (loaded.kind !== 'loaded') {
      await handle.dispose();
      throw new Error(loaded.kind === 'loadFailed' ? loaded.message : `unexpected worker message ${loaded.kind}`);
    }
    return { worker: handle, device: loaded.device, fallbackReason: loaded.fallbackReason, notes: loaded.notes };
  }

  denoise(
    jobId: number,
    spec: DenoiseSpec,
    request: DenoiseRequest,
    onProgress?: (progress: WorkerProgress) => void,
    reuse?: PromptReuseTarget,
  ): Promise<WorkerDenoiseResult> {
    if (this.exitError) return Promise.reject(this.exitError);
    return new Promise<WorkerDenoiseResult>((resolve, reject) => {
      this.pending.set(jobId, { resolve: (result) => resolve(result as WorkerDenoiseResult), reject, onProgress });
      this.post({ kind: 'denoise', jobId, spec, request, reportProgress: onProgress !== undefined, ...(reuse ? { reuse } : {}) });
    });
  }

  /** Computes `request`'s prompt K/V for `reuse` (a background warm-up); a cancel stops it between layers. */
  warm(jobId: number, spec: DenoiseSpec, request: DenoiseRequest, reuse: PromptReuseTarget): Promise<WarmOutcome> {
    if (this.exitError) return Promise.reject(this.exitError);
    return new Promise<WarmOutcome>((resolve, reject) => {
      this.pending.set(jobId, { resolve: (result) => resolve(result as WarmOutcome), reject });
      this.post({ kind: 'warm', jobId, spec, request, reuse });
    });
  }

  /** The milliseconds of one graph call of each shape, in order (coldBudget.ts calibration). */
  time(jobId: number, shapes: CallShape[]): Promise<number[]> {
    if (this.exitError) return Promise.reject(this.exitError);
    return new Promise<number[]>((resolve, reject) => {
      this.pending.set(jobId, { resolve: (result) => resolve(result as number[]), reject });
      this.post({ kind: 'time', jobId, shapes });
    });
  }

  /** Asks the worker to stop `jobId` at its next step boundary. */
  cancel(jobId: number): void {
    Atomics.store(this.cancelFlag, 0, jobId);
  }

  async dispose(): Promise<void> {
    this.exitError ??= new Error('The model was unloaded.');
    await this.worker.terminate();
  }

  private post(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  private receive(message: FromWorker): void {
    if (message.kind === 'loaded' || message.kind === 'loadFailed') {
      this.loadWaiter?.resolve(message);
      return;
    }
    const job = this.pending.get(message.jobId);
    if (!job) return;
    switch (message.kind) {
      case 'progress':
        job.onProgress?.(message);
        return;
      case 'done':
        this.pending.delete(message.jobId);
        job.resolve({ ...message.result, ...(message.reuse ? { reuse: message.reuse } : {}) });
        return;
      case 'warmed':
        this.pending.delete(message.jobId);
        job.resolve({ outcome: message.outcome, ms: message.ms });
        return;
      case 'timed':
        this.pending.delete(message.jobId);
        job.resolve(message.ms);
        return;
      case 'cancelled':
        this.pending.delete(message.jobId);
        job.reject(new CancelledError(message.stepsDone, message.totalSteps));
        return;
      case 'failed':
        this.pending.delete(message.jobId);
        job.reject(new Error(message.message));
        return;
    }
  }

  /** Called once if the worker dies on its own (not when disposed), with the reason. */
  onDeath: ((error: Error) => void) | undefined;

  private fail(error: Error): void {
    if (!this.exitError) this.onDeath?.(error);
    this.exitError ??= error;
    this.loadWaiter?.reject(this.exitError);
    for (const job of this.pending.values()) job.reject(this.exitError);
    this.pending.clear();
  }
}

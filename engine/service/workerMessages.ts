/**
 * Messages between the engine's main thread and a model worker (internal to the engine process; the
 * extension never sees them). One worker owns one loaded model and runs one denoise at a time.
 */
import type { ExecutionDevice, ModelManifest } from '../model/manifest';
import type { DeviceOption } from '../../common/protocol';
import type { DenoiseRequest, DenoiseResult, DenoiseSpec } from '../denoiser/denoiser';
import type { ReuseStats } from '../reuse/prefixReuse';

/** `workerData` of a model worker. */
export interface ModelWorkerData {
  /**
   * Int32Array[1] over shared memory: the id of the job to stop. The worker reads it between denoising
   * steps, so a cancel needs no message round trip while a step's graph call blocks the worker.
   */
  cancelFlag: SharedArrayBuffer;
}

export type ToWorker =
  | { kind: 'load'; modelDir: string; manifest: ModelManifest; device: DeviceOption; exclude: Partial<Record<ExecutionDevice, string>> }
  | {
      kind: 'denoise';
      jobId: number;
      spec: DenoiseSpec;
      request: DenoiseRequest;
      /** Progress messages cost a copy of the fill per step; skipped when nobody listens. */
      reportProgress: boolean;
      /** Reuse the prefix shared with this document's previous request (engine/reuse/prefixReuse.ts). */
      reuse?: { document: string };
    };

/** How a request asked to reuse a prefix fared: its stats, or why the model cannot reuse prefixes. */
export type ReuseOutcome = { stats: ReuseStats } | { unavailable: string };

export type FromWorker =
  | {
      kind: 'loaded';
      device: Exclude<DeviceOption, 'auto'>;
      fallbackReason?: string;
      /** Load-time findings worth a log line: graph variants skipped, K/V kept on the host. */
      notes: string[];
    }
  | { kind: 'loadFailed'; message: string }
  | { kind: 'progress'; jobId: number; step: number; totalSteps: number; fill: Int32Array; confidence: Float32Array }
  | { kind: 'done'; jobId: number; result: DenoiseResult; reuse?: ReuseOutcome }
  | { kind: 'cancelled'; jobId: number; stepsDone: number; totalSteps: number }
  | { kind: 'failed'; jobId: number; message: string };

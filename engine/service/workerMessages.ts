/**
 * Messages between the engine's main thread and a model worker (internal to the engine process; the
 * extension never sees them). One worker owns one loaded model and runs one denoise at a time.
 */
import type { ExecutionDevice, ModelManifest } from '../model/manifest';
import type { DeviceOption } from '../../common/protocol';
import type { PromptReuseMode } from '../../common/protocol';
import type { DenoiseRequest, DenoiseResult, DenoiseSpec } from '../denoiser/denoiser';
import type { ReuseSummary } from '../reuse/promptReuse';

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
      /** Reuse the prompt rows shared with this document's previous request (engine/reuse/promptReuse.ts). */
      reuse?: PromptReuseTarget;
    }
  | {
      kind: 'warm';
      jobId: number;
      spec: DenoiseSpec;
      request: DenoiseRequest;
      reuse: PromptReuseTarget;
    }
  | {
      /** Times one graph call of each shape (rows computed, cached rows of zero K/V read): the cost calibration. */
      kind: 'time';
      jobId: number;
      shapes: CallShape[];
    };

export interface CallShape {
  rows: number;
  contextRows: number;
}

export interface PromptReuseTarget {
  document: string;
  mode: PromptReuseMode;
}

/** How a request asked to reuse a prefix fared: what it reused, or why the model cannot reuse prefixes this way. */
export type ReuseOutcome = { stats: ReuseSummary } | { unavailable: string };

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
  | { kind: 'warmed'; jobId: number; outcome: ReuseOutcome; ms: number }
  | { kind: 'timed'; jobId: number; ms: number[] }
  | { kind: 'cancelled'; jobId: number; stepsDone: number; totalSteps: number }
  | { kind: 'failed'; jobId: number; message: string };

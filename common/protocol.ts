/**
 * The engine protocol: JSON-RPC 2.0 over stdio (vscode-jsonrpc), shared by the engine and the extension.
 * Every type that crosses the process boundary is declared here and nowhere else.
 *
 * Flow: the extension spawns `dlm serve`, calls `dlm/loadModel` (progress via `dlm/loadProgress`), then
 * `dlm/infill` per completion; the engine streams `dlm/infillProgress` notifications (the partially denoised
 * canvas) and answers with the final text and stats. Cancellation is the standard `$/cancelRequest`; it takes
 * effect between denoising steps. A newer infill for the same `documentId` supersedes a running one.
 */
import { NotificationType, RequestType, RequestType0 } from 'vscode-jsonrpc';
import type { CacheMode, DecodingOptions } from './decodingOptions';

// ---------------------------------------------------------------------------------------------------------
// Devices (the decoding options are described in decodingOptions.ts)

export type DeviceOption = 'auto' | 'cpu' | 'webgpu' | 'cuda' | 'dml' | 'coreml';
export const DEVICE_OPTIONS: readonly DeviceOption[] = ['auto', 'cpu', 'webgpu', 'cuda', 'dml', 'coreml'];

// ---------------------------------------------------------------------------------------------------------
// Errors

export const ErrorCodes = {
  /** Standard JSON-RPC codes used by the engine. */
  InvalidParams: -32602,
  RequestCancelled: -32800,
  /** Engine-specific codes. */
  ModelNotLoaded: -32001,
  ModelLoadFailed: -32002,
  CanvasTooLong: -32003,
  /** A newer request for the same document replaced this one. */
  Superseded: -32004,
  EngineShuttingDown: -32005,
  ConversionFailed: -32006,
} as const;

// ---------------------------------------------------------------------------------------------------------
// dlm/loadModel

export interface LoadModelParams {
  /** `builtin`, a model folder, a Hugging Face checkpoint folder, or a Hugging Face id. */
  model: string;
  device: DeviceOption;
  /** Correlates `dlm/loadProgress` notifications with this call. */
  progressToken?: string;
  /** Hugging Face access token for gated or private repositories (else the engine's HF_TOKEN); never stored. */
  huggingFaceToken?: string;
}

export interface LoadedModelInfo {
  /** Handle to pass in infill requests. */
  modelId: string;
  name: string;
  family: string;
  /** The execution provider actually in use. */
  device: Exclude<DeviceOption, 'auto'>;
  /** Why the requested device was not used, when it was not. */
  deviceFallbackReason?: string;
  maxCanvasTokens: number;
  /** The model's own decoding defaults (from its manifest). */
  defaults: DecodingOptions;
}

export const LoadModelRequest = new RequestType<LoadModelParams, LoadedModelInfo, void>('dlm/loadModel');

export interface LoadProgressParams {
  progressToken: string;
  stage: 'download' | 'convert' | 'session';
  message: string;
  /** 0..1 when known. */
  fraction?: number;
}

export const LoadProgressNotification = new NotificationType<LoadProgressParams>('dlm/loadProgress');

// ---------------------------------------------------------------------------------------------------------
// dlm/unloadModel

export interface UnloadModelParams {
  modelId: string;
}

/** Cancels the model's queued and running requests and releases its session (e.g. when the setting changes). */
export const UnloadModelRequest = new RequestType<UnloadModelParams, void, void>('dlm/unloadModel');

// ---------------------------------------------------------------------------------------------------------
// dlm/infill

export interface InfillParams {
  modelId: string;
  /** Requests with the same documentId supersede each other (newest wins). */
  documentId?: string;
  prefix: string;
  suffix: string;
  /** Number of [MASK] tokens between prefix and suffix. */
  length: number;
  /** Overrides of the model's defaults. */
  options?: Partial<DecodingOptions>;
  /** When set, the engine sends `dlm/infillProgress` notifications carrying this token. */
  progressToken?: string;
  /**
   * Reuse the keys/values of the prefix this request shares with the previous request of its `documentId`
   * (BiCache, tuned to typing: the first partial result computes only the rows that changed). Approximate, like
   * every cache; needs a `documentId` and a model folder readied by `dlm profile-depth`. Default: true.
   */
  reusePrefix?: boolean;
  /**
   * Fit the canvas to the model instead of refusing it with CanvasTooLong: whole lines are dropped from the start
   * of the prefix and the end of the suffix, measured with the model's tokenizer. Prefix cuts land on lines
   * chosen by their content, so they stay put while the user types and the shared-prefix cache keeps matching.
   * Default: false.
   */
  fitToModel?: boolean;
  /**
   * With `fitToModel`: fit the canvas also to this many milliseconds, so that the request computed cold (nothing
   * reused from an earlier one) is expected to take about that long at most on the model's device, from the
   * model's measured speed there (at least 64 tokens of context are kept). 0 or absent: the model's canvas only.
   */
  coldBudgetMs?: number;
}

export interface InfillStats {
  cache: CacheMode;
  device: string;
  promptTokens: number;
  genTokens: number;
  steps: number;
  graphCalls: number;
  /** Sum over graph calls of the rows computed (Q). */
  rowsComputed: number;
  ms: number;
  /** Of `ms`, the time spent in graph calls (the rest is host-side denoiser work and messaging). */
  graphMs?: number;
  tokensPerSecond: number;
  /** Prefix tokens whose keys/values came from the document's previous request (with `reusePrefix`). */
  reusedPrefixTokens?: number;
  /** Layers in which they were reused for the whole request (the deeper ones were refreshed in it). */
  reuseDepth?: number;
  /** With `coldBudgetMs`: the canvas limit in tokens (fill included) it set, and the measured graph cost it used. */
  canvasTokenLimit?: number;
  msPerCall?: number;
  msPerRow?: number;
}

export interface InfillResult {
  /** The fill, with everything from the first end-of-text token on trimmed. */
  text: string;
  /** True when the model ended the fill early with an end-of-text token. */
  endedEarly: boolean;
  stats: InfillStats;
}

export const InfillRequest = new RequestType<InfillParams, InfillResult, void>('dlm/infill');

/** Drawn for each still-masked token in `InfillProgressParams.text`. */
export const MASK_GLYPH = '\u2591';

export interface InfillProgressParams {
  progressToken: string;
  /** 1-based index of the step just completed. */
  step: number;
  /** Total steps planned (an estimate for the threshold schedule). */
  totalSteps: number;
  /** One entry per fill token: its text, or null while it is still masked. */
  pieces: (string | null)[];
  /** One entry per fill token: the confidence it was committed with, or null while masked. */
  confidence: (number | null)[];
}

/**
 * The partial fill as text, MASK_GLYPH for each masked token. Pieces after the first committed end-of-text token
 * are empty (the result is trimmed there), so once nothing is masked this is the result's text.
 */
export function progressText(pieces: readonly (string | null)[]): string {
  return pieces.map((piece) => piece ?? MASK_GLYPH).join('');
}

export const InfillProgressNotification = new NotificationType<InfillProgressParams>('dlm/infillProgress');

// ---------------------------------------------------------------------------------------------------------
// dlm/status, dlm/shutdown, dlm/log

export interface EngineStatus {
  version: string;
  pid: number;
  models: LoadedModelInfo[];
  /** Requests running or queued. */
  busy: number;
  lastStats?: InfillStats;
}

export const StatusRequest = new RequestType0<EngineStatus, void>('dlm/status');

/** Stops accepting work, cancels running requests, releases sessions; the process exits after answering. */
export const ShutdownRequest = new RequestType0<void, void>('dlm/shutdown');

export interface LogParams {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
}

export const LogNotification = new NotificationType<LogParams>('dlm/log');

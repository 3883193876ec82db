/**
 * The engine protocol: JSON-RPC 2.0 over stdio (vscode-jsonrpc), shared by the engine and the extension.
 * Every type that crosses the process boundary is declared here and nowhere else.
 *
 * Flow: the extension spawns `dlm serve`, calls `dlm/loadModel` (progress via `dlm/loadProgress`), then
 * `dlm/infill` per completion; the engine streams `dlm/infillProgress` notifications (the partially denoised
 * canvas) and answers with the final text and stats. Cancellation is the standard `$/cancelRequest`; it takes
 * effect between denoising steps. A newer infill for the same `documentId` supersedes a running one. The
 * extension may call `dlm/warmPrompt` when a request is likely soon (a document opened, the cursor settled on
 * another line, a completion accepted): the engine computes that context's prompt K/V at the lowest priority.
 */
import { NotificationType, RequestType, RequestType0 } from 'vscode-jsonrpc';
import type { CacheMode, DecodingOptions } from './decodingOptions';

// ---------------------------------------------------------------------------------------------------------
// Devices (the decoding options are described in decodingOptions.ts)

/**
 * How a request reuses the prompt K/V its document's previous request (or a warm-up) computed, with
 * `reusePrefix`. Either way only rows whose tokens are unchanged are reused, and a request that asks for exact
 * decoding (cache `none`, or a refresh interval of 1) reuses nothing.
 * - `full-depth`: every prompt row with the same token at the same position keeps its K/V in every layer, and
 *   the suffix's leading rows move with the cursor (their keys rotated to the new positions); a keystroke
 *   computes only the tokens it changed, the fill and what the cache mode recomputes. Works with any model.
 * - `depthwise`: BiCache; the shared prefix keeps its K/V only in the layers below a profiled safe depth, the
 *   deeper ones are recomputed within the request. More exact, slower; needs a folder readied by
 *   `dlm profile-depth`.
 */
export const PROMPT_REUSE_MODES = ['full-depth', 'depthwise'] as const;
export type PromptReuseMode = (typeof PROMPT_REUSE_MODES)[number];

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

/**
 * `data` of a failed dlm/loadModel, dlm/prepareModel or dlm/installGpuProvider: why, with the numbers, so the
 * client can say what to do (offer a token, say how much space or memory is missing, which URL failed).
 */
export interface SetupErrorData {
  reason:
    | 'gated' // the repository needs an access token (or refused the one sent)
    | 'notFound' // no such model, file or package at the source
    | 'unreachable' // the network or the source is down: see `url`
    | 'interrupted' // the transfer broke; what arrived is kept for a resume
    | 'corrupt' // a file did not match the announced size or digest and was deleted
    | 'noDiskSpace' // see neededBytes / availableBytes / dir
    | 'notEnoughMemory' // the memory guard: see neededBytes / availableBytes / device
    | 'busy' // another engine is downloading the same model
    | 'other';
  url?: string;
  dir?: string;
  device?: string;
  neededBytes?: number;
  availableBytes?: number;
}

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
  /** Hugging Face endpoint (a mirror); else the engine's HF_ENDPOINT, else https://huggingface.co. */
  hubUrl?: string;
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

/** Progress of long work: a model load or preparation (download, conversion, session), a GPU provider set-up. */
export interface LoadProgressParams {
  progressToken: string;
  stage: 'download' | 'convert' | 'install' | 'session';
  message: string;
  /** 0..1 when known. */
  fraction?: number;
  /** Downloads: bytes present (resumed ones included) and expected in all, for rate and time left. */
  receivedBytes?: number;
  totalBytes?: number;
}

export const LoadProgressNotification = new NotificationType<LoadProgressParams>('dlm/loadProgress');

// ---------------------------------------------------------------------------------------------------------
// dlm/prepareModel: download and convert without loading (the model picker), cancellable with
// $/cancelRequest; what was downloaded is kept and a later call resumes it.

export type PrepareModelParams = Omit<LoadModelParams, 'progressToken'> & { progressToken?: string };

export interface PreparedModel {
  /** The model folder, ready to load. */
  modelDir: string;
  name: string;
}

export const PrepareModelRequest = new RequestType<PrepareModelParams, PreparedModel, void>('dlm/prepareModel');

// ---------------------------------------------------------------------------------------------------------
// dlm/machineFacts: what the engine measured of this machine (the model picker's verdicts come from it)

export type ExecutionDeviceName = Exclude<DeviceOption, 'auto'>;

export interface GpuFacts {
  name: string;
  /** Total and free memory of the GPU; null where they cannot be read. */
  memoryBytes: number | null;
  freeMemoryBytes: number | null;
  /** Where the numbers come from: `nvidia-smi`, `amdgpu sysfs`, or `unified memory` (the GPU shares system RAM). */
  source: string;
}

export interface MachineFacts {
  platform: string;
  arch: string;
  cpuCores: number;
  totalMemoryBytes: number;
  /** Memory available to a new process now (Linux MemAvailable). */
  availableMemoryBytes: number;
  /** Where models are stored, and the free space on its disk (null when it cannot be read). */
  cacheDir: string;
  freeDiskBytes: number | null;
  gpus: GpuFacts[];
  /** The GPU providers `auto` would try here, in order, each usable or not (with the reason). */
  gpuDevices: { device: ExecutionDeviceName; usable: boolean; reason?: string }[];
}

export const MachineFactsRequest = new RequestType0<MachineFacts, void>('dlm/machineFacts');

// ---------------------------------------------------------------------------------------------------------
// dlm/modelCatalogue: the code DLMs the converter supports, sized for each precision

export type WeightPrecisionName = 'fp32' | 'fp16' | 'int4' | 'int8';

/** Memory a model needs on a device, at the precision it is converted to for that device. */
export interface MemoryNeed {
  precision: WeightPrecisionName;
  weightBytes: number;
  /** The K/V cache of one canvas of `canvasTokens`. */
  kvCacheBytes: number;
  /** The largest temporaries of one full pass over that canvas (attention scores, MLP, logits). */
  activationBytes: number;
  totalBytes: number;
  canvasTokens: number;
}

export interface CatalogueModel {
  /** What `dlm.model` is set to: `builtin` or a Hugging Face id. */
  id: string;
  name: string;
  description: string;
  parameters: number;
  licence: string;
  /** Checkpoint bytes to download (0 for the built-in model): parameters times the stored bytes per weight. */
  downloadBytes: number;
  /** Disk the converted model takes on a GPU and on the CPU (each its own precision). */
  convertedBytes: { gpu: number; cpu: number };
  memory: { gpu: MemoryNeed; cpu: MemoryNeed };
  /** HumanEval-Infill pass@1 (single line, fixed length) where published, with its source. */
  infillScore?: { value: number; source: string };
  /** What is on this machine already. */
  local: {
    /** Converted for the device asked about: loads at once. */
    ready: boolean;
    downloadedBytes: number;
    downloadComplete: boolean;
  };
}

export interface ModelCatalogueParams {
  /** The device the `ready` flags are for. */
  device: DeviceOption;
}

export const ModelCatalogueRequest = new RequestType<ModelCatalogueParams, CatalogueModel[], void>('dlm/modelCatalogue');

// ---------------------------------------------------------------------------------------------------------
// dlm/listStoredModels, dlm/deleteStoredModel: what downloads and conversions take on disk

export interface StoredModel {
  /** The folder; pass it to dlm/deleteStoredModel. */
  path: string;
  kind: 'download' | 'converted';
  /** The Hugging Face id (with @revision when not main), or the folder name for local checkpoints. */
  name: string;
  bytes: number;
  /** A download that has every file (else it resumes), or a finished conversion. */
  complete: boolean;
  /** Converted models: their weights' precision. */
  precision?: WeightPrecisionName;
  /** Loaded in this engine now (deleting it is refused). */
  inUse: boolean;
}

export const ListStoredModelsRequest = new RequestType0<StoredModel[], void>('dlm/listStoredModels');
export const DeleteStoredModelRequest = new RequestType<{ path: string }, void, void>('dlm/deleteStoredModel');

// ---------------------------------------------------------------------------------------------------------
// dlm/gpuProviderStatus, dlm/installGpuProvider: onnxruntime-node's CUDA provider libraries, fetched as its own
// install script fetches them, into a folder the engine loads onnxruntime from (env DLM_ORT_NATIVE_DIR)

/** Written into a GPU provider folder once it is complete and checked; the editor starts the engine on it then. */
export const GPU_PROVIDER_MARKER = 'dlm-gpu-provider.json';

export interface GpuProviderParams {
  /** The folder the provider goes into (the extension's storage). */
  dir: string;
  progressToken?: string;
}

export interface GpuProviderStatus {
  /** Whether this platform's onnxruntime-node has a provider to fetch (Linux x64: CUDA 12). */
  applicable: boolean;
  /** What the platform uses instead, or what the provider needs; one paragraph for the user. */
  explanation: string;
  /** The provider is in `dir`, complete and checked. */
  installed: boolean;
  /** The NuGet package and version the libraries come from. */
  source?: { package: string; version: string; feed: string };
  /** System libraries the provider needs that this machine lacks (CUDA 12 runtime, cuBLAS, cuDNN 9). */
  missingLibraries: string[];
  /** The engine process runs onnxruntime from `dir` now. */
  active: boolean;
}

export const GpuProviderStatusRequest = new RequestType<GpuProviderParams, GpuProviderStatus, void>('dlm/gpuProviderStatus');
export const InstallGpuProviderRequest = new RequestType<GpuProviderParams, GpuProviderStatus, void>('dlm/installGpuProvider');

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
   * Reuse the keys/values of the prompt rows this request shares with the previous request (or warm-up) of its
   * `documentId`, as `reuseMode` says. Approximate, like every cache; needs a `documentId`. Default: true.
   */
  reusePrefix?: boolean;
  /** Default: `full-depth`. */
  reuseMode?: PromptReuseMode;
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
  /** How the prompt was reused (with `reusePrefix`, when the request reused rows or could have). */
  reuseMode?: PromptReuseMode;
  /** Prefix tokens whose keys/values came from the document's previous request (with `reusePrefix`). */
  reusedPrefixTokens?: number;
  /** Leading suffix tokens whose keys/values came from it (`depthwise`: for the first step only). */
  reusedSuffixTokens?: number;
  /** Layers in which the prefix tokens were reused for the whole request (the deeper ones were refreshed in it). */
  reuseDepth?: number;
  /** With `coldBudgetMs`: the canvas limit in tokens (fill included) it set, and the measured graph cost it used. */
  canvasTokenLimit?: number;
  msPerCall?: number;
  msPerRow?: number;
  /** Per cached row a call reads (its K/V and the attention over them). */
  msPerContextRow?: number;
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
// dlm/warmPrompt

/**
 * The context an inline request is likely to come with soon, as an infill would send it. The engine computes
 * its prompt K/V for `reuseMode` at the lowest priority: any infill of the model stops the warm-up at once (at
 * its next layer boundary when the model folder has depth-wise segments, else when its one graph call ends) and
 * a newer warm-up replaces it; either answers RequestCancelled.
 */
export interface WarmPromptParams {
  modelId: string;
  documentId: string;
  prefix: string;
  suffix: string;
  /** The fill length the request will have (its masks are part of the prompt's context). */
  length: number;
  /** As the request will send them: the prompt K/V are kept per decoding options. */
  options?: Partial<DecodingOptions>;
  /** As the request will send them: the context is cut the same way, or the request finds nothing to carry. */
  fitToModel?: boolean;
  coldBudgetMs?: number;
  /** Default: `full-depth`. */
  reuseMode?: PromptReuseMode;
}

/** What a warm-up computed; null when the request would reuse nothing (exact decoding options, or a mode the folder lacks). */
export interface WarmPromptResult {
  reuseMode: PromptReuseMode;
  /** Prompt tokens of the context, and of them those already stored, whose K/V were kept. */
  promptTokens: number;
  storedTokens: number;
  /** Rows computed (prompt rows not stored, and the fill's masks they attend to). */
  rowsComputed: number;
  ms: number;
}

export const WarmPromptRequest = new RequestType<WarmPromptParams, WarmPromptResult | null, void>('dlm/warmPrompt');

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

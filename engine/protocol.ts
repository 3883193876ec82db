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

// ---------------------------------------------------------------------------------------------------------
// Decoding settings (also the extension's `dlm.*` settings and the CLI's flags)

/**
 * Which K/V rows are reused between denoising steps.
 * - `none`: every step recomputes the whole canvas.
 * - `decode`: dKV-Cache-Decode; a token's K/V are cached one step after it is decoded, full refresh every N.
 * - `greedy`: dKV-Cache-Greedy; everything cached, only the last decoded, the next to decode and a window
 *   around them recomputed; full refresh every N.
 * - `prefill`: the prefix and suffix are computed once per request (refreshed only every N when N > 0).
 * - `block-prefix`: Fast-dLLM's PrefixCache; each semi-autoregressive block starts with a full pass (which also
 *   commits its first tokens), then computes the block and everything right of it against the cached rows left
 *   of it; an extra full pass every N steps into a block when N > 0.
 * - `block-dual`: Fast-dLLM's DualCache; like `block-prefix`, but only the block is computed, against every
 *   other row cached (left and right). Fast-dLLM pairs both with the `threshold` schedule.
 */
export const CACHE_MODES = ['none', 'decode', 'greedy', 'prefill', 'block-prefix', 'block-dual'] as const;
export type CacheMode = (typeof CACHE_MODES)[number];

/**
 * How many tokens are committed per step.
 * - `blocks`: LLaDA semi-autoregressive blocks, `get_num_transfer_tokens` per block.
 * - `timesteps`: Dream's `k = n_masked * (1 - s/t)` over `linspace(1, eps, steps + 1)`.
 * - `threshold`: Fast-dLLM; every candidate with confidence >= threshold, at least one per step.
 */
export const SCHEDULES = ['blocks', 'timesteps', 'threshold'] as const;
export type ScheduleKind = (typeof SCHEDULES)[number];

/** Which masked positions are committed first: max probability, top1-top2 margin, negative entropy, random. */
export const ALGORITHMS = ['confidence', 'margin', 'entropy', 'random'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/** dKV-Cache-Greedy's decoding order: the paper's random order, or our confidence-ordered variant. */
export const GREEDY_ORDERS = ['random', 'confidence'] as const;
export type GreedyOrder = (typeof GREEDY_ORDERS)[number];

export interface DecodingOptions {
  /** Total denoising steps (`blocks` and `timesteps`); `threshold` runs until the fill is complete. */
  steps: number;
  /** Semi-autoregressive block length; equal to the fill length for pure diffusion. */
  blockLength: number;
  schedule: ScheduleKind;
  /** Confidence threshold of the `threshold` schedule, in (0, 1]. */
  threshold: number;
  algorithm: Algorithm;
  /** 0 = deterministic argmax; > 0 samples with Gumbel noise at this temperature. */
  temperature: number;
  /** Seed of every random choice (sampling, random order), so runs are reproducible. */
  seed: number;
  cache: CacheMode;
  /**
   * Full refresh every N steps; 1 makes every policy equal to `none`; 0 = never (`prefill`), or only at block
   * starts (`block-prefix`, `block-dual`, where N counts the steps into a block).
   */
  refreshInterval: number;
  /** Greedy: rows recomputed around each token to decode. */
  window: number;
  greedyOrder: GreedyOrder;
}

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
  /**
   * The fill as text with MASK_GLYPH for each masked token, up to the first committed end-of-text token
   * (the result is trimmed there, so nothing after it is shown).
   */
  text: string;
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
  fitToModel?: boolean;
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

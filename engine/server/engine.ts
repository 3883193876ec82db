/**
 * The engine: loaded models, infill requests and their scheduling. Both `dlm serve` (JSON-RPC) and the CLI
 * drive it. Text is tokenized here on the main thread; each model's denoising loop runs in its own worker
 * (modelWorker.ts). Requests are validated before they are queued, so a bad request never supersedes a
 * good one.
 */
import path from 'node:path';
import { version as ENGINE_VERSION } from '../../package.json';
import { readManifest, type ModelManifest } from '../model/manifest';
import { resolveModel, type ModelProgress } from '../model/modelManager';
import { fitContext } from '../model/contextFit';
import { canvasPrefix } from '../model/prompting';
import { Tokenizer } from '../model/tokenizer';
import type { DenoiseRequest, DenoiseSpec } from '../denoiser/denoiser';
import { InvalidOptionsError, resolveDecodingOptions } from '../denoiser/options';
import {
  ErrorCodes,
  MASK_GLYPH,
  type DecodingOptions,
  type DeviceOption,
  type EngineStatus,
  type InfillParams,
  type InfillProgressParams,
  type InfillResult,
  type InfillStats,
  type LoadedModelInfo,
  type LogParams,
  type PromptReuseMode,
  type WarmPromptParams,
  type WarmPromptResult,
} from '../protocol';
import { EngineError, invalidParams, type ErrorCode } from './errors';
import { DenoiseStopped, InvalidDecodingOptions, ModelWorker, type WorkerProgress } from './modelWorker';
import type { PromptReuseTarget } from './workerMessages';
import { JobCancelledError, Scheduler, type CancelReason, type JobContext, type ScheduledJob } from './scheduler';

export type EngineLog = (level: LogParams['level'], message: string) => void;

export interface EngineOptions {
  /** Where downloaded and converted models are kept. */
  cacheDir: string;
  log: EngineLog;
}

export type InfillProgress = Omit<InfillProgressParams, 'progressToken'>;

export interface InfillHooks {
  onProgress?(progress: InfillProgress): void;
}

/** An infill on token ids (what `infill` does after tokenizing; the benchmark uses it directly). */
export interface TokenInfillRequest {
  modelId: string;
  documentId?: string;
  prefixIds: number[];
  suffixIds: number[];
  length: number;
  options?: Partial<DecodingOptions>;
  /** Keep denoising after the fill has ended (equal work across cache modes, for the benchmark). */
  runToCompletion?: boolean;
  /** As InfillParams.reusePrefix: reuse the prompt rows shared with the document's previous request (default true). */
  reusePrefix?: boolean;
  /** As InfillParams.reuseMode (default `full-depth`). */
  reuseMode?: PromptReuseMode;
}

export interface TokenInfillResult extends InfillResult {
  /** The fill's token ids, trimmed like `text`. */
  fillIds: number[];
}

interface LoadedModel {
  info: LoadedModelInfo;
  /** Its entry in `loads`. */
  loadKey: string;
  manifest: ModelManifest;
  tokenizer: Tokenizer;
  worker: ModelWorker;
  /** Committed tokens that end the fill; progress shows nothing from the first one on. */
  endTokens: Set<number>;
  /** Why the model cannot reuse prefixes, once logged. */
  reuseUnavailable?: string;
}

export class Engine {
  private readonly models = new Map<string, LoadedModel>();
  /** Loads in flight or done, by folder and device, so a repeated load returns the same model. */
  private readonly loads = new Map<string, Promise<LoadedModelInfo>>();
  private readonly scheduler = new Scheduler();
  private nextModelNumber = 1;
  private lastStats: InfillStats | undefined;
  private shuttingDown = false;

  constructor(private readonly options: EngineOptions) {}

  async loadModel(
    params: { model: string; device: DeviceOption; huggingFaceToken?: string },
    onProgress?: (progress: ModelProgress) => void,
  ): Promise<LoadedModelInfo> {
    this.ensureRunning();
    let dir: string;
    try {
      dir = await resolveModel(params.model, { cacheDir: this.options.cacheDir, device: params.device, token: params.huggingFaceToken, onProgress });
    } catch (error) {
      throw new EngineError(ErrorCodes.ModelLoadFailed, (error as Error).message);
    }
    const key = `${dir}\u0000${params.device}`;
    let load = this.loads.get(key);
    if (!load) {
      load = this.load(dir, params.device, key, onProgress);
      this.loads.set(key, load);
      load.catch(() => this.loads.delete(key));
    }
    return load;
  }

  private async load(
    dir: string,
    device: DeviceOption,
    loadKey: string,
    onProgress?: (progress: ModelProgress) => void,
  ): Promise<LoadedModelInfo> {
    const started = performance.now();
    let manifest: ModelManifest;
    let tokenizer: Tokenizer;
    try {
      manifest = readManifest(dir);
      tokenizer = Tokenizer.load(path.join(dir, manifest.tokenizer));
    } catch (error) {
      throw new EngineError(ErrorCodes.ModelLoadFailed, `Cannot load the model in ${dir}: ${(error as Error).message}`);
    }
    let defaults: DecodingOptions;
    try {
      defaults = resolveDecodingOptions(manifest.decoding, {}, undefined, manifest.architecture.family);
    } catch (error) {
      throw new EngineError(ErrorCodes.ModelLoadFailed, `The model's decoding defaults are invalid: ${(error as Error).message}`);
    }
    onProgress?.({ stage: 'session', message: `Creating the ${device} session for ${manifest.name}` });
    let session: Awaited<ReturnType<typeof ModelWorker.start>>;
    try {
      session = await ModelWorker.start(dir, manifest, device);
    } catch (error) {
      throw new EngineError(ErrorCodes.ModelLoadFailed, `Cannot start ${manifest.name} on ${device}: ${(error as Error).message}`);
    }
    const modelId = `${manifest.name}#${this.nextModelNumber++}`;
    const info: LoadedModelInfo = {
      modelId,
      name: manifest.name,
      family: manifest.architecture.family,
      device: session.device,
      ...(session.fallbackReason ? { deviceFallbackReason: session.fallbackReason } : {}),
      maxCanvasTokens: manifest.architecture.maxPositions,
      defaults,
    };
    const tokens = manifest.tokens;
    session.worker.onDeath = (error) => {
      // Forget the model, so the client's next request says it is not loaded and a reload starts afresh.
      this.options.log('error', `${modelId}: ${error.message} The model is unloaded.`);
      this.forget(modelId);
    };
    this.models.set(modelId, {
      info,
      loadKey,
      manifest,
      tokenizer,
      worker: session.worker,
      endTokens: new Set([...tokens.eos, ...(tokens.pad === null ? [] : [tokens.pad])]),
    });
    const ms = Math.round(performance.now() - started);
    this.options.log('info', `loaded ${manifest.name} from ${dir} on ${info.device} as ${modelId} in ${ms} ms`);
    if (session.fallbackReason) {
      this.options.log('warn', `${modelId}: device ${device} not used: ${session.fallbackReason}`);
    }
    for (const note of session.notes) this.options.log('info', `${modelId}: ${note}`);
    return info;
  }

  /** Stops a model's worker; its queued and running requests are cancelled first. */
  async unloadModel(modelId: string): Promise<void> {
    const model = this.model(modelId);
    this.forget(modelId);
    await this.scheduler.cancelAll('unloaded', modelId);
    await model.worker.dispose();
    this.options.log('info', `unloaded ${modelId}`);
  }

  /** The ids a model's tokenizer gives `text` (e.g. to size a fill like the text it replaces). */
  tokenize(modelId: string, text: string): number[] {
    return this.model(modelId).tokenizer.encode(text);
  }

  /** The manifest of a loaded model. */
  manifestOf(modelId: string): ModelManifest {
    return this.model(modelId).manifest;
  }

  private forget(modelId: string): void {
    const model = this.models.get(modelId);
    if (!model) return;
    this.models.delete(modelId);
    this.loads.delete(model.loadKey);
  }

  /**
   * The token ids either side of the masks: the text tokenized, framed as the model expects (e.g. a leading BOS,
   * from its manifest), and with `fitToModel` cut by whole lines to fit the model's canvas.
   */
  canvasIds(params: Pick<InfillParams, 'modelId' | 'prefix' | 'suffix' | 'length' | 'fitToModel'>): { prefixIds: number[]; suffixIds: number[] } {
    const model = this.model(params.modelId);
    let { prefix, suffix } = params;
    if (params.fitToModel && Number.isInteger(params.length) && params.length >= 1) {
      const framing = canvasPrefix(model.manifest.tokens, []).length;
      ({ prefix, suffix } = fitContext(prefix, suffix, model.info.maxCanvasTokens - params.length - framing, model.tokenizer));
    }
    return { prefixIds: canvasPrefix(model.manifest.tokens, model.tokenizer.encode(prefix)), suffixIds: model.tokenizer.encode(suffix) };
  }

  /** Tokenizes and schedules an infill; throws EngineError at once for a request that cannot run. */
  infill(params: Omit<InfillParams, 'progressToken'>, hooks: InfillHooks = {}): ScheduledJob<InfillResult> {
    const job = this.infillTokens({ ...params, ...this.canvasIds(params) }, hooks);
    return {
      id: job.id,
      cancel: (reason) => job.cancel(reason),
      result: job.result.then(({ fillIds: _ids, ...result }) => result),
    };
  }

  infillTokens(request: TokenInfillRequest, hooks: InfillHooks = {}): ScheduledJob<TokenInfillResult> {
    this.ensureRunning();
    const model = this.model(request.modelId);
    const { length, prefixIds, suffixIds } = request;
    const options = this.requestOptions(model, request);
    const reuse = request.reusePrefix === false ? undefined : reuseTarget(request.documentId, request.reuseMode, options);
    return this.scheduler.schedule(request.modelId, request.documentId, (job) =>
      this.run(job, model, { prefixIds, suffixIds, length, options, runToCompletion: request.runToCompletion }, hooks, reuse),
    );
  }

  /**
   * Schedules a background warm-up: the prompt K/V of the context `params` describes, computed for its document
   * as its next request will reuse them; any request of the model stops it. Resolves to what was computed, or to
   * null when the request would reuse nothing (exact decoding options).
   */
  warmPrompt(params: WarmPromptParams): ScheduledJob<WarmPromptResult | null> {
    this.ensureRunning();
    const model = this.model(params.modelId);
    const { prefixIds, suffixIds } = this.canvasIds(params);
    const options = this.requestOptions(model, { ...params, prefixIds, suffixIds });
    const target = reuseTarget(params.documentId, params.reuseMode, options);
    const request: DenoiseRequest = { prefixIds, suffixIds, length: params.length, options };
    return this.scheduler.schedule(
      params.modelId,
      params.documentId,
      async (job) => (target ? this.warm(job, model, request, target) : null),
      { background: true },
    );
  }

  private async warm(job: JobContext, model: LoadedModel, request: DenoiseRequest, target: PromptReuseTarget): Promise<WarmPromptResult | null> {
    job.onCancel(() => model.worker.cancel(job.id));
    let warmed;
    try {
      warmed = await model.worker.warm(job.id, this.denoiseSpec(model), request, target);
    } catch (error) {
      if (error instanceof DenoiseStopped) throw new JobCancelledError(job.cancelReason ?? 'cancelled', 0);
      if (error instanceof InvalidDecodingOptions) throw invalidParams(error.message);
      throw error;
    }
    const label = `${model.info.modelId}: warm-up of ${target.document}`;
    if ('unavailable' in warmed.outcome) {
      this.options.log('debug', `${label}: ${target.mode} reuse is not available: ${warmed.outcome.unavailable}`);
      return null;
    }
    const s = warmed.outcome.stats;
    this.options.log(
      'debug',
      `${label}: ${Math.round(s.rowsComputed)} rows computed, ${s.prefixTokens} prefix + ${s.suffixTokens} suffix of ${s.promptTokens} prompt rows already stored, in ${Math.round(warmed.ms)} ms`,
    );
    return {
      reuseMode: s.mode,
      promptTokens: s.promptTokens,
      storedTokens: s.prefixTokens + s.suffixTokens,
      rowsComputed: Math.round(s.rowsComputed),
      ms: Math.round(warmed.ms * 10) / 10,
    };
  }

  /** The request's canvas checked against the model, and its decoding options resolved against the model's defaults. */
  private requestOptions(model: LoadedModel, request: Pick<TokenInfillRequest, 'prefixIds' | 'suffixIds' | 'length' | 'options'>): DecodingOptions {
    const { length, prefixIds, suffixIds } = request;
    const max = model.info.maxCanvasTokens;
    if (!Number.isInteger(length) || length < 1) throw invalidParams(`length must be a whole number >= 1; got ${length}.`);
    if (length > max) {
      throw invalidParams(`length ${length} is more than the model's canvas of ${max} tokens.`);
    }
    const canvas = prefixIds.length + length + suffixIds.length;
    if (canvas > max) {
      throw new EngineError(
        ErrorCodes.CanvasTooLong,
        `The canvas is ${canvas} tokens (prefix ${prefixIds.length} + fill ${length} + suffix ${suffixIds.length}); ` +
          `the model takes at most ${max}.`,
        { prefixTokens: prefixIds.length, fillTokens: length, suffixTokens: suffixIds.length, maxCanvasTokens: max },
      );
    }
    try {
      return resolveDecodingOptions(model.manifest.decoding, request.options ?? {}, length, model.manifest.architecture.family);
    } catch (error) {
      if (error instanceof InvalidOptionsError) throw invalidParams(error.message);
      throw error;
    }
  }

  private denoiseSpec(model: LoadedModel): DenoiseSpec {
    const { manifest } = model;
    return { tokens: manifest.tokens, logitShift: manifest.architecture.logitShift, vocabSize: manifest.architecture.vocabSize };
  }

  private async run(
    job: JobContext,
    model: LoadedModel,
    request: DenoiseRequest,
    hooks: InfillHooks,
    reuse: PromptReuseTarget | undefined,
  ): Promise<TokenInfillResult> {
    const { manifest, tokenizer, worker } = model;
    job.onCancel(() => worker.cancel(job.id));
    const onProgress = hooks.onProgress;
    const started = performance.now();
    let denoised;
    try {
      denoised = await worker.denoise(
        job.id,
        this.denoiseSpec(model),
        request,
        onProgress && ((progress) => job.cancelReason || onProgress(this.progressOf(model, progress))),
        reuse,
      );
    } catch (error) {
      if (error instanceof DenoiseStopped) {
        throw new JobCancelledError(job.cancelReason ?? 'cancelled', error.stepsDone, error.totalSteps);
      }
      if (error instanceof InvalidDecodingOptions) throw invalidParams(error.message);
      throw error;
    }
    const { stats } = denoised;
    // A job cancelled while its last step ran still counts as cancelled: its caller has moved on.
    if (job.cancelReason) throw new JobCancelledError(job.cancelReason, stats.steps, stats.steps);
    const ms = performance.now() - started;
    const result: TokenInfillResult = {
      text: tokenizer.decode(denoised.fill),
      fillIds: denoised.fill,
      endedEarly: denoised.endedEarly,
      stats: {
        cache: request.options.cache,
        device: model.info.device,
        promptTokens: request.prefixIds.length + request.suffixIds.length,
        genTokens: request.length,
        steps: stats.steps,
        graphCalls: stats.graphCalls,
        rowsComputed: stats.rowsComputed,
        ms: Math.round(ms * 10) / 10,
        graphMs: Math.round(denoised.graphMs * 10) / 10,
        tokensPerSecond: Math.round((request.length / (ms / 1000)) * 10) / 10,
      },
    };
    const reused = denoised.reuse;
    if (reused && 'stats' in reused) {
      const r = reused.stats;
      Object.assign(result.stats, { reuseMode: r.mode, reusedPrefixTokens: r.prefixTokens, reusedSuffixTokens: r.suffixTokens, reuseDepth: r.depth });
      this.options.log(
        'debug',
        `${model.info.modelId}: infill ${job.id} of ${reuse!.document}: ${r.mode} reuse of ${r.prefixTokens} prefix + ${r.suffixTokens} suffix ` +
          `of ${r.promptTokens} prompt rows (in ${r.depth} of ${manifest.architecture.numLayers} layers); ${stats.rowsComputed} rows computed in ${stats.graphCalls} calls`,
      );
    } else if (reused && reused.unavailable !== model.reuseUnavailable) {
      model.reuseUnavailable = reused.unavailable;
      this.options.log('info', `${model.info.modelId}: prefix reuse is off: ${reused.unavailable}`);
    }
    this.lastStats = result.stats;
    return result;
  }

  /** Worker progress (token ids, NaN confidence where masked) as the text the editor shows. */
  private progressOf(model: LoadedModel, progress: WorkerProgress): InfillProgress {
    const mask = model.manifest.tokens.mask;
    const pieces = model.tokenizer.pieces(progress.fill, mask);
    let end = progress.fill.findIndex((id) => model.endTokens.has(id));
    if (end < 0) end = pieces.length;
    for (let i = end; i < pieces.length; i++) if (pieces[i] !== null) pieces[i] = '';
    const confidence = Array.from(progress.confidence, (c, i) => (progress.fill[i] === mask || Number.isNaN(c) ? null : c));
    return {
      step: progress.step,
      totalSteps: progress.totalSteps,
      pieces,
      confidence,
      text: pieces
        .slice(0, end)
        .map((piece) => piece ?? MASK_GLYPH)
        .join(''),
    };
  }

  status(): EngineStatus {
    return {
      version: ENGINE_VERSION,
      pid: process.pid,
      models: [...this.models.values()].map((m) => m.info),
      busy: this.scheduler.busy,
      ...(this.lastStats ? { lastStats: this.lastStats } : {}),
    };
  }

  /** Refuses new work, cancels what is queued or running, and stops every worker. */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    await this.scheduler.cancelAll('shutdown');
    await Promise.all([...this.models.values()].map((m) => m.worker.dispose()));
    this.models.clear();
  }

  private model(modelId: string): LoadedModel {
    const model = this.models.get(modelId);
    if (!model) {
      const loaded = [...this.models.keys()];
      throw new EngineError(
        ErrorCodes.ModelNotLoaded,
        `No model "${modelId}" is loaded${loaded.length ? ` (loaded: ${loaded.join(', ')})` : ''}; call dlm/loadModel first.`,
      );
    }
    return model;
  }

  private ensureRunning(): void {
    if (this.shuttingDown) throw new EngineError(ErrorCodes.EngineShuttingDown, 'The engine is shutting down.');
  }
}

/**
 * Where a request reuses prompt K/V: its document, in `mode`; none without a document, or when its decoding
 * options ask for exact decoding (cache `none`, or a full refresh every step), which cross-request reuse would break.
 */
function reuseTarget(documentId: string | undefined, mode: PromptReuseMode | undefined, options: DecodingOptions): PromptReuseTarget | undefined {
  if (documentId === undefined || options.cache === 'none' || options.refreshInterval === 1) return undefined;
  return { document: documentId, mode: mode ?? 'full-depth' };
}

const CANCELLATIONS: Record<CancelReason, { code: ErrorCode; what: string }> = {
  cancelled: { code: ErrorCodes.RequestCancelled, what: 'Cancelled' },
  superseded: { code: ErrorCodes.Superseded, what: 'Superseded by a newer request for the same document' },
  preempted: { code: ErrorCodes.RequestCancelled, what: 'Preempted by a request' },
  unloaded: { code: ErrorCodes.ModelNotLoaded, what: 'The model was unloaded' },
  shutdown: { code: ErrorCodes.EngineShuttingDown, what: 'The engine is shutting down' },
};

/** The protocol error for a cancelled job. */
export function cancelledJobError(error: JobCancelledError): EngineError {
  const { code, what } = CANCELLATIONS[error.reason];
  const when = error.stepsPlanned === undefined ? 'before it started' : `after step ${error.stepsDone} of ${error.stepsPlanned}`;
  return new EngineError(code, `${what}: stopped ${when}.`, { stepsDone: error.stepsDone, stepsPlanned: error.stepsPlanned });
}

/**
 * The engine: loaded models, infill requests and their scheduling. Both `dlm serve` (JSON-RPC) and the CLI
 * drive it. Text is tokenized in a text worker (textWorker.ts) and each model's denoising loop runs in its own
 * worker (modelWorker.ts), so the main thread stays free to answer status requests and cancels. Requests are
 * validated before they are queued, so a bad request never supersedes a good one.
 */
import path from 'node:path';
import { version as ENGINE_VERSION } from '../../package.json';
import { measureMachine } from '../machine/machineFacts';
import { readManifest, type ModelManifest } from '../model/manifest';
import { parseHubModelId } from '../store/huggingFaceHub';
import { hubDownloadDir, resolveModel, type ModelProgress } from '../store/modelManager';
import { canvasTokenIds, type CanvasIds } from '../model/canvasTokens';
import { GraphCost, SteadyCanvasLimits, calibrationShapes, canvasTokensForBudget } from './coldBudget';
import { Tokenizer } from '../model/tokenizer';
import type { DenoiseRequest, DenoiseSpec } from '../denoiser/denoiser';
import { CanvasTooLongError, checkCanvasFits } from '../denoiser/tokenCanvas';
import { checkDecodingOverrides, InvalidOptionsError, resolveDecodingOptions } from '../denoiser/options';
import { ErrorCodes, type DeviceOption, type EngineStatus, type InfillParams, type InfillProgressParams, type InfillResult, type InfillStats, type LoadedModelInfo, type LogParams, type PrepareModelParams, type PreparedModel, type PromptReuseMode, type WarmPromptParams, type WarmPromptResult } from '../../common/protocol';
import { type DecodingOptions } from '../../common/decodingOptions';
import { EngineError, invalidParams, type ErrorCode } from './errors';
import { checkMemory, type MemoryFacts } from './memoryGuard';
import { ModelWorker, type WorkerProgress } from './modelWorker';
import { CancelledError } from '../denoiser/cancellation';
import type { PromptReuseTarget } from './workerMessages';
import { JobCancelledError, Scheduler, type CancelReason, type JobContext, type ScheduledJob } from './scheduler';
import { setupError } from './setupErrors';
import { SharedWork } from './sharedWork';
import { TextWorker } from './textWorker';

export type EngineLog = (level: LogParams['level'], message: string) => void;

export interface EngineOptions {
  /** Where downloaded and converted models are kept. */
  cacheDir: string;
  log: EngineLog;
  /** Memory free now, for the memory guard; measured on this machine unless given (tests). */
  memoryFacts?: () => Promise<MemoryFacts>;
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
  /** On the main thread for progress and results; the text worker loads its own copy from `tokenizerFile`. */
  tokenizer: Tokenizer;
  tokenizerFile: string;
  worker: ModelWorker;
  /** Committed tokens that end the fill; progress shows nothing from the first one on. */
  endTokens: Set<number>;
  /** Why the model cannot reuse prefixes, once logged. */
  reuseUnavailable?: string;
  /** Graph time per call and per computed row on its device: calibrated at load, rescaled by cold requests. */
  graphCost: GraphCost;
  canvasLimits: SteadyCanvasLimits;
}

export class Engine {
  private readonly models = new Map<string, LoadedModel>();
  /** Loads in flight or done, by folder and device, so a repeated load returns the same model. */
  private readonly loads = new Map<string, Promise<LoadedModelInfo>>();
  /** Downloads and conversions running, by model setting and device, shared by every caller. */
  private readonly preparations = new SharedWork<string, ModelProgress>();
  private readonly scheduler = new Scheduler();
  private readonly text = new TextWorker();
  /** Infills whose text is being tokenized, not yet scheduled; cancelled with the scheduled ones. */
  private readonly preparing = new Set<{ modelId: string; cancel(reason: CancelReason): void }>();
  private nextModelNumber = 1;
  private lastStats: InfillStats | undefined;
  private shuttingDown = false;

  constructor(private readonly options: EngineOptions) {}

  async loadModel(
    params: PrepareModelParams,
    onProgress?: (progress: ModelProgress) => void,
    signal?: AbortSignal,
  ): Promise<LoadedModelInfo> {
    this.ensureRunning();
    const dir = await this.resolve(params, onProgress, signal);
    const key = `${dir}\u0000${params.device}`;
    let load = this.loads.get(key);
    if (!load) {
      load = this.load(dir, params.device, key, onProgress);
      this.loads.set(key, load);
      load.catch(() => this.loads.delete(key));
    }
    return load;
  }

  /**
   * Downloads and converts what `params.model` names (nothing for a model folder) without loading it; a
   * withdrawn call keeps what was downloaded, and the next call resumes it.
   */
  async prepareModel(params: PrepareModelParams, onProgress?: (progress: ModelProgress) => void, signal?: AbortSignal): Promise<PreparedModel> {
    this.ensureRunning();
    const modelDir = await this.resolve(params, onProgress, signal);
    return { modelDir, name: readManifest(modelDir).name };
  }

  /** The model folder for a setting, preparing it once however many callers ask at the same time. */
  private async resolve(params: PrepareModelParams, onProgress?: (progress: ModelProgress) => void, signal?: AbortSignal): Promise<string> {
    const key = `${params.model}\u0000${params.device}\u0000${params.hubUrl ?? ''}`;
    try {
      return await this.preparations.run(
        key,
        (workSignal, progress) =>
          resolveModel(params.model, {
            cacheDir: this.options.cacheDir,
            device: params.device,
            token: params.huggingFaceToken,
            hubUrl: params.hubUrl,
            onProgress: progress,
            signal: workSignal,
          }),
        { signal, onProgress },
      );
    } catch (error) {
      throw setupError(error, `Preparing ${params.model}`);
    }
  }

  /** Folders the engine reads or writes now: loaded models and the downloads running. */
  busyFolders(): Set<string> {
    const busy = new Set<string>();
    for (const model of this.models.values()) busy.add(path.resolve(model.loadKey.split('\u0000')[0]));
    for (const key of this.preparations.keys()) {
      const hubId = parseHubModelId(key.split('\u0000')[0]);
      if (hubId) busy.add(path.resolve(hubDownloadDir(this.options.cacheDir, hubId)));
    }
    return busy;
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
    let tokenizerFile: string;
    try {
      manifest = readManifest(dir);
      tokenizerFile = path.join(dir, manifest.tokenizer);
      tokenizer = Tokenizer.load(tokenizerFile);
    } catch (error) {
      throw new EngineError(ErrorCodes.ModelLoadFailed, `Cannot load the model in ${dir}: ${(error as Error).message}`);
    }
    let defaults: DecodingOptions;
    try {
      defaults = resolveDecodingOptions(manifest.decoding, {}, undefined, manifest.architecture.family);
    } catch (error) {
      throw new EngineError(ErrorCodes.ModelLoadFailed, `The model's decoding defaults are invalid: ${(error as Error).message}`);
    }
    const facts = await (this.options.memoryFacts ?? (() => measureMachine(this.options.cacheDir)))();
    const memory = checkMemory(dir, manifest, device, facts);
    if (memory.refuse) throw new EngineError(ErrorCodes.ModelLoadFailed, memory.refuse.message, memory.refuse.data);
    onProgress?.({ stage: 'session', message: `Creating the ${device} session for ${manifest.name}` });
    let session: Awaited<ReturnType<typeof ModelWorker.start>>;
    try {
      session = await ModelWorker.start(dir, manifest, device, memory.skip);
    } catch (error) {
      throw new EngineError(ErrorCodes.ModelLoadFailed, `Cannot start ${manifest.name} (${dir}) on ${device}: ${(error as Error).message}`);
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
    const graphCost = await this.calibrate(session.worker, manifest, modelId);
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
      tokenizerFile,
      worker: session.worker,
      endTokens: new Set([...tokens.eos, ...(tokens.pad === null ? [] : [tokens.pad])]),
      graphCost,
      canvasLimits: new SteadyCanvasLimits(),
    });
    const ms = Math.round(performance.now() - started);
    this.options.log('info', `loaded ${manifest.name} from ${dir} on ${info.device} as ${modelId} in ${ms} ms`);
    if (session.fallbackReason) {
      this.options.log('warn', `${modelId}: device ${device} not used: ${session.fallbackReason}`);
    }
    for (const note of session.notes) this.options.log('info', `${modelId}: ${note}`);
    return info;
  }

  /**
   * Timed calls of calibrationShapes (coldBudget.ts), the small ones twice (the lesser counts: the first call of a
   * session pays for its set-up), so the first request can already be sized to a cold budget; a failure leaves
   * requests unsized by it.
   */
  private async calibrate(worker: ModelWorker, manifest: ModelManifest, modelId: string): Promise<GraphCost> {
    const cost = new GraphCost();
    const { rows, context, shapes } = calibrationShapes(manifest.architecture.maxPositions);
    try {
      const [one, pass, oneOverContext, passOverContext, oneAgain, oneOverContextAgain] = await worker.time(CALIBRATION_JOB, [
        ...shapes,
        shapes[0],
        shapes[2],
      ]);
      cost.calibrate([Math.min(one, oneAgain), pass, Math.min(oneOverContext, oneOverContextAgain), passOverContext], rows, context);
    } catch (error) {
      this.options.log('warn', `${modelId}: the calibration calls failed (${(error as Error).message}); requests are not sized to a cold budget`);
    }
    return cost;
  }

  /** Stops a model's worker; its queued and running requests are cancelled first. */
  async unloadModel(modelId: string): Promise<void> {
    const model = this.model(modelId);
    this.forget(modelId);
    for (const preparation of this.preparing) if (preparation.modelId === modelId) preparation.cancel('unloaded');
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
    if (![...this.models.values()].some((other) => other.tokenizerFile === model.tokenizerFile)) this.text.forget(model.tokenizerFile);
  }

  /**
   * The token ids either side of the masks (engine/model/canvasTokens.ts), on this thread: for benchmarks that
   * time the fill alone. Requests go through `infill`, which tokenizes in the text worker.
   */
  canvasIds(params: Pick<InfillParams, 'modelId' | 'prefix' | 'suffix' | 'length' | 'fitToModel' | 'coldBudgetMs' | 'options'>): CanvasIds & {
    budget?: ColdBudget;
  } {
    const model = this.model(params.modelId);
    const budget = this.coldBudget(model, params);
    const ids = canvasTokenIds(model.tokenizer, model.manifest.tokens, canvasLimit(model, budget), params);
    return { ...ids, ...(budget ? { budget } : {}) };
  }

  /** The canvas limit `coldBudgetMs` sets at the model's measured speed, when asked and measured. */
  private coldBudget(model: LoadedModel, params: Pick<InfillParams, 'length' | 'coldBudgetMs' | 'options'>): ColdBudget | undefined {
    const cost = model.graphCost.cost;
    if (!(params.coldBudgetMs && params.coldBudgetMs > 0) || cost === undefined) return undefined;
    let options: DecodingOptions;
    try {
      options = resolveDecodingOptions(model.manifest.decoding, params.options ?? {}, params.length, model.manifest.architecture.family);
    } catch {
      return undefined; // infillTokens reports the bad options
    }
    const estimate = canvasTokensForBudget(params.coldBudgetMs, cost, params.length, options.steps, options.cache, model.info.maxCanvasTokens);
    const shape = `${params.coldBudgetMs}/${params.length}/${options.steps}/${options.cache}`;
    const canvasTokenLimit = Math.min(model.info.maxCanvasTokens, model.canvasLimits.limit(shape, estimate));
    const ms = (value: number) => Math.round(value * 1000) / 1000;
    return { canvasTokenLimit, msPerCall: ms(cost.msPerCall), msPerRow: ms(cost.msPerRow), msPerContextRow: ms(cost.msPerContextRow) };
  }

  /**
   * Tokenizes (in the text worker) and schedules an infill. A request that cannot run on the model is refused
   * at once (EngineError); one whose canvas turns out too long, or that is cancelled while its text is being
   * tokenized, fails through `result`, a cancel at once.
   */
  infill(params: Omit<InfillParams, 'progressToken'>, hooks: InfillHooks = {}): ScheduledJob<InfillResult> {
    this.ensureRunning();
    invalidOptionsAsParams(() => checkDecodingOverrides(params.options));
    const model = this.model(params.modelId);
    this.decodingOptions(model, params.length, params.options);
    const budget = this.coldBudget(model, params);
    const id = this.scheduler.reserveId();
    let cancelReason: CancelReason | undefined;
    let cancelPreparation!: (reason: CancelReason) => void;
    const cancelled = new Promise<never>((_, reject) => (cancelPreparation = (reason) => reject(new JobCancelledError(reason, 0))));
    const preparation = {
      modelId: params.modelId,
      cancel: (reason: CancelReason) => {
        cancelReason ??= reason;
        cancelPreparation(reason);
      },
    };
    this.preparing.add(preparation);
    const tokenized = this.text.canvasIds(model.tokenizerFile, model.manifest.tokens, canvasLimit(model, budget), params);
    let scheduled: ScheduledJob<TokenInfillResult> | undefined;
    const result = Promise.race([tokenized, cancelled])
      .finally(() => this.preparing.delete(preparation))
      .then((ids) => {
        if (cancelReason) throw new JobCancelledError(cancelReason, 0);
        scheduled = this.infillTokens({ ...params, ...ids }, hooks, id);
        return scheduled.result;
      });
    return {
      id,
      cancel: (reason) => (scheduled ? scheduled.cancel(reason) : preparation.cancel(reason)),
      result: result.then(({ fillIds: _ids, ...rest }) => (budget ? { ...rest, stats: { ...rest.stats, ...budget } } : rest)),
    };
  }

  /** Schedules an infill on token ids; throws EngineError at once for a request that cannot run. */
  infillTokens(request: TokenInfillRequest, hooks: InfillHooks = {}, jobId?: number): ScheduledJob<TokenInfillResult> {
    this.ensureRunning();
    const model = this.model(request.modelId);
    const { length, prefixIds, suffixIds } = request;
    const options = this.decodingOptions(model, length, request.options);
    const max = model.info.maxCanvasTokens;
    try {
      checkCanvasFits(prefixIds.length, length, suffixIds.length, max);
    } catch (error) {
      if (!(error instanceof CanvasTooLongError)) throw error;
      throw new EngineError(ErrorCodes.CanvasTooLong, error.message, {
        prefixTokens: prefixIds.length,
        fillTokens: length,
        suffixTokens: suffixIds.length,
        maxCanvasTokens: max,
      });
    }
    const reuse = request.reusePrefix === false ? undefined : reuseTarget(request.documentId, request.reuseMode, options);
    return this.scheduler.schedule(
      request.modelId,
      request.documentId,
      (job) => this.run(job, model, { prefixIds, suffixIds, length, options, runToCompletion: request.runToCompletion }, hooks, reuse),
      { id: jobId },
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
    const options = this.decodingOptions(model, params.length, params.options);
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
      if (error instanceof CancelledError) throw new JobCancelledError(job.cancelReason ?? 'cancelled', 0);
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

  /** The decoding options of a fill of `length` tokens on `model`; InvalidParams for a fill that cannot run. */
  private decodingOptions(model: LoadedModel, length: number, requested: Partial<DecodingOptions> | undefined): DecodingOptions {
    const max = model.info.maxCanvasTokens;
    if (!Number.isInteger(length) || length < 1) throw invalidParams(`length must be a whole number >= 1; got ${length}.`);
    if (length > max) {
      throw invalidParams(`length ${length} is more than the model's canvas of ${max} tokens.`);
    }
    return invalidOptionsAsParams(() =>
      resolveDecodingOptions(model.manifest.decoding, requested ?? {}, length, model.manifest.architecture.family),
    );
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
      if (error instanceof CancelledError) {
        throw new JobCancelledError(job.cancelReason ?? 'cancelled', error.stepsDone, error.totalSteps);
      }
      throw error;
    }
    const { stats } = denoised;
    // Only a cold request rescales the cost: a carried one's calls also read rows its stats do not count.
    const carried = denoised.reuse && 'stats' in denoised.reuse ? denoised.reuse.stats.prefixTokens + denoised.reuse.stats.suffixTokens : 0;
    if (carried === 0) model.graphCost.record(stats.graphMs, stats.rowsPerCall.map((rows, i) => ({ rows, contextRows: stats.contextRowsPerCall[i] })));
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
        graphMs: Math.round(denoised.stats.graphMs * 10) / 10,
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
    };
  }

  status(): EngineStatus {
    return {
      version: ENGINE_VERSION,
      pid: process.pid,
      models: [...this.models.values()].map((m) => m.info),
      busy: this.scheduler.busy + this.preparing.size,
      ...(this.lastStats ? { lastStats: this.lastStats } : {}),
    };
  }

  /** Refuses new work, cancels what is queued or running, and stops every worker. */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const preparation of this.preparing) preparation.cancel('shutdown');
    await this.scheduler.cancelAll('shutdown');
    await Promise.all([...this.models.values()].map((m) => m.worker.dispose()));
    this.models.clear();
    await this.text.dispose();
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

/** The worker job id of the calibration pass at load: scheduled jobs count up from 1, and 0 is the worker's "no job cancelled". */
const CALIBRATION_JOB = -1;

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

/** Runs an option check, answering its InvalidOptionsError as the protocol's InvalidParams. */
function invalidOptionsAsParams<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof InvalidOptionsError) throw invalidParams(error.message);
    throw error;
  }
}

/** What the cold-request budget set for one request, reported in its stats. */
type ColdBudget = Pick<InfillStats, 'canvasTokenLimit' | 'msPerCall' | 'msPerRow' | 'msPerContextRow'>;

/** The most tokens the request's canvas may have: the model's, or less under a cold-request budget. */
function canvasLimit(model: LoadedModel, budget: ColdBudget | undefined): number {
  return Math.min(model.info.maxCanvasTokens, budget?.canvasTokenLimit ?? Infinity);
}

/**
 * The engine: loaded models, infill requests and their scheduling. Both `dlm serve` (JSON-RPC) and the CLI
 * drive it. Text is tokenized here on the main thread; each model's denoising loop runs in its own worker
 * (modelWorker.ts). Requests are validated before they are queued, so a bad request never supersedes a
 * good one.
 */
import path from 'node:path';
import { version as ENGINE_VERSION } from '../../package.json';
import { measureMachine } from '../machine/machineFacts';
import { readManifest, type ModelManifest } from '../model/manifest';
import { parseHubModelId } from '../model/huggingFaceHub';
import { hubDownloadDir, resolveModel, type ModelProgress } from '../model/modelManager';
import { fitContext } from '../model/contextFit';
import { canvasPrefix } from '../model/prompting';
import { Tokenizer } from '../model/tokenizer';
import type { DenoiseRequest } from '../denoiser/denoiser';
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
  type PrepareModelParams,
  type PreparedModel,
} from '../protocol';
import { EngineError, invalidParams, type ErrorCode } from './errors';
import { checkMemory, type MemoryFacts } from './memoryGuard';
import { DenoiseStopped, InvalidDecodingOptions, ModelWorker, type WorkerProgress } from './modelWorker';
import { JobCancelledError, Scheduler, type CancelReason, type JobContext, type ScheduledJob } from './scheduler';
import { setupError } from './setupErrors';
import { SharedWork } from './sharedWork';

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
  /** As InfillParams.reusePrefix: reuse the prefix shared with the document's previous request (default true). */
  reusePrefix?: boolean;
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
  /** Downloads and conversions running, by model setting and device, shared by every caller. */
  private readonly preparations = new SharedWork<string, ModelProgress>();
  private readonly scheduler = new Scheduler();
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
    const facts = await (this.options.memoryFacts ?? (() => measureMachine(this.options.cacheDir)))();
    const memory = checkMemory(dir, manifest, device, facts);
    if (memory.refuse) throw new EngineError(ErrorCodes.ModelLoadFailed, memory.refuse.message, memory.refuse.data);
    onProgress?.({ stage: 'session', message: `Creating the ${device} session for ${manifest.name}` });
    let session: Awaited<ReturnType<typeof ModelWorker.start>>;
    try {
      session = await ModelWorker.start(dir, manifest, device, memory.skip);
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
    let options: DecodingOptions;
    try {
      options = resolveDecodingOptions(model.manifest.decoding, request.options ?? {}, length, model.manifest.architecture.family);
    } catch (error) {
      if (error instanceof InvalidOptionsError) throw invalidParams(error.message);
      throw error;
    }
    const reuse = request.documentId !== undefined && request.reusePrefix !== false ? { document: request.documentId } : undefined;
    return this.scheduler.schedule(request.modelId, request.documentId, (job) =>
      this.run(job, model, { prefixIds, suffixIds, length, options, runToCompletion: request.runToCompletion }, hooks, reuse),
    );
  }

  private async run(
    job: JobContext,
    model: LoadedModel,
    request: DenoiseRequest,
    hooks: InfillHooks,
    reuse: { document: string } | undefined,
  ): Promise<TokenInfillResult> {
    const { manifest, tokenizer, worker } = model;
    job.onCancel(() => worker.cancel(job.id));
    const onProgress = hooks.onProgress;
    const started = performance.now();
    let denoised;
    try {
      denoised = await worker.denoise(
        job.id,
        {
          tokens: manifest.tokens,
          logitShift: manifest.architecture.logitShift,
          vocabSize: manifest.architecture.vocabSize,
        },
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
      result.stats.reusedPrefixTokens = reused.stats.sharedTokens;
      result.stats.reuseDepth = reused.stats.depth;
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

const CANCELLATIONS: Record<CancelReason, { code: ErrorCode; what: string }> = {
  cancelled: { code: ErrorCodes.RequestCancelled, what: 'Cancelled' },
  superseded: { code: ErrorCodes.Superseded, what: 'Superseded by a newer request for the same document' },
  unloaded: { code: ErrorCodes.ModelNotLoaded, what: 'The model was unloaded' },
  shutdown: { code: ErrorCodes.EngineShuttingDown, what: 'The engine is shutting down' },
};

/** The protocol error for a cancelled job. */
export function cancelledJobError(error: JobCancelledError): EngineError {
  const { code, what } = CANCELLATIONS[error.reason];
  const when = error.stepsPlanned === undefined ? 'before it started' : `after step ${error.stepsDone} of ${error.stepsPlanned}`;
  return new EngineError(code, `${what}: stopped ${when}.`, { stepsDone: error.stepsDone, stepsPlanned: error.stepsPlanned });
}

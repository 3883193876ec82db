/**
 * The local backend: the engine process the extension spawns and supervises (engineSupervisor.ts) with the
 * model the settings name loaded in it (modelSession.ts), behind the backend interface (completionBackend.ts).
 * Its fills are the engine's `dlm/infill` requests; its status is the engine's and the model's.
 */
import * as vscode from 'vscode';
import { ResponseError } from 'vscode-jsonrpc';
import { ErrorCodes, type InfillResult } from '../common/protocol';
import {
  FillCancelled,
  FillRefused,
  type BackendStatus,
  type CompletionBackend,
  type FillProgress,
  type FillRequest,
  type FillResult,
  type ReadyBackend,
} from './completionBackend';
import type { EngineSupervisor } from './engineSupervisor';
import type { ModelSession, ReadyModel } from './modelSession';

/** Tokens of the model's canvas left for context when a fill is as long as it may be. */
const CONTEXT_RESERVE_TOKENS = 16;

export class LocalBackend implements CompletionBackend {
  private readonly statusEmitter = new vscode.EventEmitter<BackendStatus>();
  readonly onDidChangeStatus = this.statusEmitter.event;
  readonly cacheModes = true;
  readonly restartLabel = 'Restart engine';
  private readonly subscriptions: vscode.Disposable[];

  constructor(
    readonly supervisor: EngineSupervisor,
    readonly session: ModelSession,
  ) {
    const changed = () => this.statusEmitter.fire(this.status);
    this.subscriptions = [supervisor.onDidChangeState(changed), session.onDidChangeState(changed)];
  }

  get status(): BackendStatus {
    const engine = this.supervisor.state;
    const model = this.session.state;
    if (engine.kind === 'failed') return { kind: 'failed', message: engine.message, tooltip: [`Engine stopped: ${engine.message}`] };
    if (model.kind === 'failed') {
      return { kind: 'failed', message: model.message, tooltip: [`Model ${model.model} could not be loaded: ${model.message}`] };
    }
    if (engine.kind === 'restarting') {
      return { kind: 'busy', text: 'restarting engine', tooltip: [`Engine crashed ${engine.crashes} time(s); restarting.`] };
    }
    if (model.kind !== 'ready') {
      return { kind: 'busy', text: 'loading', tooltip: model.kind === 'loading' ? [`Loading model ${model.model}...`] : [] };
    }
    const { info } = model;
    return {
      kind: 'ready',
      model: info.name,
      where: info.device,
      defaultCache: info.defaults.cache,
      tooltip: [`Model: ${info.name} (${info.family})`, `Device: ${info.device}${info.deviceFallbackReason ? ` (${info.deviceFallbackReason})` : ''}`],
    };
  }

  /** Starts the engine (it loads the model the settings name once it runs). */
  start(): void {
    this.supervisor.start();
  }

  /** Stops the engine: another backend answers now. */
  stop(): Promise<void> {
    return this.supervisor.stop();
  }

  async ready(token?: vscode.CancellationToken): Promise<ReadyBackend> {
    return new ReadyEngine(await this.session.ready(token));
  }

  restart(): Promise<void> {
    return this.supervisor.restart();
  }

  dispose(): void {
    this.subscriptions.forEach((s) => s.dispose());
    this.statusEmitter.dispose();
  }
}

class ReadyEngine implements ReadyBackend {
  readonly maxFillTokens: number;

  constructor(private readonly model: ReadyModel) {
    this.maxFillTokens = Math.max(1, model.info.maxCanvasTokens - CONTEXT_RESERVE_TOKENS);
  }

  async infill(request: FillRequest, onProgress: ((progress: FillProgress) => void) | undefined, token?: vscode.CancellationToken): Promise<FillResult> {
    const { client, info } = this.model;
    let result: InfillResult;
    try {
      result = await client.infill(
        {
          modelId: info.modelId,
          documentId: request.documentId,
          prefix: request.prefix,
          suffix: request.suffix,
          length: request.length,
          options: request.options,
          fitToModel: true,
          ...(request.coldBudgetMs ? { coldBudgetMs: request.coldBudgetMs } : {}),
          ...request.reuse,
        },
        onProgress && ((progress) => onProgress({ pieces: progress.pieces, step: progress.step, totalSteps: progress.totalSteps })),
        token,
      );
    } catch (error) {
      const code = error instanceof ResponseError ? error.code : undefined;
      if (token?.isCancellationRequested || code === ErrorCodes.RequestCancelled || code === ErrorCodes.Superseded) {
        throw new FillCancelled((error as Error).message);
      }
      if (code === ErrorCodes.InvalidParams || code === ErrorCodes.CanvasTooLong) throw new FillRefused(`the engine refused the completion request: ${(error as Error).message}`);
      throw error;
    }
    const s = result.stats;
    return {
      text: result.text,
      endedEarly: result.endedEarly,
      stats: {
        genTokens: s.genTokens,
        ms: s.ms,
        tokensPerSecond: s.tokensPerSecond,
        summary:
          `${s.genTokens} tokens in ${s.steps} steps, ${Math.round(s.ms)} ms (${Math.round(s.tokensPerSecond)} tokens/s), ` +
          `cache ${s.cache} on ${s.device}`,
        engine: s,
      },
    };
  }
}

/**
 * Typed calls to one running engine process over its JSON-RPC connection. Progress notifications are routed
 * to the call that asked for them by progress token; cancelling a call's token sends `$/cancelRequest`.
 */
import type { CancellationToken, MessageConnection } from 'vscode-jsonrpc';
import {
  InfillProgressNotification,
  InfillRequest,
  LoadModelRequest,
  LoadProgressNotification,
  LogNotification,
  ShutdownRequest,
  StatusRequest,
  UnloadModelRequest,
  WarmPromptRequest,
  type EngineStatus,
  type InfillParams,
  type InfillProgressParams,
  type InfillResult,
  type LoadModelParams,
  type LoadProgressParams,
  type LoadedModelInfo,
  type LogParams,
  type WarmPromptParams,
  type WarmPromptResult,
} from '../engine/protocol';

let nextProgressToken = 0;
const newProgressToken = (kind: string) => `${kind}-${process.pid}-${++nextProgressToken}`;

export class EngineClient {
  private readonly infillListeners = new Map<string, (progress: InfillProgressParams) => void>();
  private readonly loadListeners = new Map<string, (progress: LoadProgressParams) => void>();

  constructor(
    private readonly connection: MessageConnection,
    /** The engine's process id, shown in logs and used by tests to check a restart. */
    readonly pid: number,
    onLog: (params: LogParams) => void,
  ) {
    connection.onNotification(InfillProgressNotification, (progress) =>
      this.infillListeners.get(progress.progressToken)?.(progress),
    );
    connection.onNotification(LoadProgressNotification, (progress) =>
      this.loadListeners.get(progress.progressToken)?.(progress),
    );
    connection.onNotification(LogNotification, onLog);
  }

  async loadModel(
    params: Omit<LoadModelParams, 'progressToken'>,
    onProgress: (progress: LoadProgressParams) => void,
    token?: CancellationToken,
  ): Promise<LoadedModelInfo> {
    const progressToken = newProgressToken('load');
    this.loadListeners.set(progressToken, onProgress);
    try {
      return await this.connection.sendRequest(LoadModelRequest, { ...params, progressToken }, token);
    } finally {
      this.loadListeners.delete(progressToken);
    }
  }

  /** Without `onProgress` the engine sends no progress for this request. */
  async infill(
    params: Omit<InfillParams, 'progressToken'>,
    onProgress: ((progress: InfillProgressParams) => void) | undefined,
    token?: CancellationToken,
  ): Promise<InfillResult> {
    if (!onProgress) return this.connection.sendRequest(InfillRequest, params, token);
    const progressToken = newProgressToken('infill');
    this.infillListeners.set(progressToken, onProgress);
    try {
      return await this.connection.sendRequest(InfillRequest, { ...params, progressToken }, token);
    } finally {
      this.infillListeners.delete(progressToken);
    }
  }

  /** Asks the engine to compute a context's prompt K/V in the background; any completion request stops it. */
  warmPrompt(params: WarmPromptParams, token?: CancellationToken): Promise<WarmPromptResult | null> {
    return this.connection.sendRequest(WarmPromptRequest, params, token);
  }

  unloadModel(modelId: string): Promise<void> {
    return this.connection.sendRequest(UnloadModelRequest, { modelId });
  }

  status(): Promise<EngineStatus> {
    return this.connection.sendRequest(StatusRequest);
  }

  shutdown(): Promise<void> {
    return this.connection.sendRequest(ShutdownRequest);
  }
}

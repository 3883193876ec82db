/**
 * Typed calls to one running engine process over its JSON-RPC connection. Progress notifications are routed
 * to the call that asked for them by progress token; cancelling a call's token sends `$/cancelRequest`.
 * Every call is async: on a connection the engine's exit has closed, vscode-jsonrpc throws at once, and a caller
 * gets that as a rejection like any other failure.
 */
import type { CancellationToken, MessageConnection } from 'vscode-jsonrpc';
import {
  DeleteStoredModelRequest,
  GpuProviderStatusRequest,
  InfillProgressNotification,
  InfillRequest,
  InstallGpuProviderRequest,
  ListStoredModelsRequest,
  LoadModelRequest,
  LoadProgressNotification,
  LogNotification,
  MachineFactsRequest,
  ModelCatalogueRequest,
  PrepareModelRequest,
  ShutdownRequest,
  StatusRequest,
  UnloadModelRequest,
  type CatalogueModel,
  type DeviceOption,
  WarmPromptRequest,
  type EngineStatus,
  type GpuProviderStatus,
  type MachineFacts,
  type PrepareModelParams,
  type PreparedModel,
  type StoredModel,
  type InfillParams,
  type InfillProgressParams,
  type InfillResult,
  type LoadModelParams,
  type LoadProgressParams,
  type LoadedModelInfo,
  type LogParams,
  type WarmPromptParams,
  type WarmPromptResult,
} from '../common/protocol';

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

  loadModel(
    params: Omit<LoadModelParams, 'progressToken'>,
    onProgress: (progress: LoadProgressParams) => void,
    token?: CancellationToken,
  ): Promise<LoadedModelInfo> {
    return this.withLoadProgress('load', onProgress, (progressToken) =>
      this.connection.sendRequest(LoadModelRequest, { ...params, progressToken }, token),
    );
  }

  /** Downloads and converts a model without loading it; cancelling keeps what was downloaded. */
  prepareModel(
    params: Omit<PrepareModelParams, 'progressToken'>,
    onProgress: (progress: LoadProgressParams) => void,
    token?: CancellationToken,
  ): Promise<PreparedModel> {
    return this.withLoadProgress('prepare', onProgress, (progressToken) =>
      this.connection.sendRequest(PrepareModelRequest, { ...params, progressToken }, token),
    );
  }

  machineFacts(): Promise<MachineFacts> {
    return this.connection.sendRequest(MachineFactsRequest);
  }

  modelCatalogue(device: DeviceOption): Promise<CatalogueModel[]> {
    return this.connection.sendRequest(ModelCatalogueRequest, { device });
  }

  listStoredModels(): Promise<StoredModel[]> {
    return this.connection.sendRequest(ListStoredModelsRequest);
  }

  deleteStoredModel(path: string): Promise<void> {
    return this.connection.sendRequest(DeleteStoredModelRequest, { path });
  }

  gpuProviderStatus(dir: string): Promise<GpuProviderStatus> {
    return this.connection.sendRequest(GpuProviderStatusRequest, { dir });
  }

  installGpuProvider(dir: string, onProgress: (progress: LoadProgressParams) => void, token?: CancellationToken): Promise<GpuProviderStatus> {
    return this.withLoadProgress('gpu', onProgress, (progressToken) =>
      this.connection.sendRequest(InstallGpuProviderRequest, { dir, progressToken }, token),
    );
  }

  /** Routes `dlm/loadProgress` notifications of one call to `onProgress`. */
  private async withLoadProgress<T>(
    kind: string,
    onProgress: (progress: LoadProgressParams) => void,
    call: (progressToken: string) => Promise<T>,
  ): Promise<T> {
    const progressToken = newProgressToken(kind);
    this.loadListeners.set(progressToken, onProgress);
    try {
      return await call(progressToken);
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
    if (!onProgress) return await this.connection.sendRequest(InfillRequest, params, token);
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

  async unloadModel(modelId: string): Promise<void> {
    return await this.connection.sendRequest(UnloadModelRequest, { modelId });
  }

  async status(): Promise<EngineStatus> {
    return await this.connection.sendRequest(StatusRequest);
  }

  async shutdown(): Promise<void> {
    return await this.connection.sendRequest(ShutdownRequest);
  }
}

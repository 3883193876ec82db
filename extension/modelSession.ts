/**
 * Keeps the model named by `dlm.model` / `dlm.device` loaded in the running engine: loads it whenever an
 * engine (re)starts and again when either setting changes, showing the engine's load progress (download,
 * conversion, session creation) in a notification, and explaining a failure instead of failing silently.
 */
import * as vscode from 'vscode';
import type { ResponseError } from 'vscode-jsonrpc';
import { ErrorCodes, type LoadedModelInfo, type SetupErrorData } from '../common/protocol';
import type { EngineClient } from './engineClient';
import type { EngineState, EngineSupervisor } from './engineSupervisor';
import { LoadProgressReporter } from './loadProgress';
import type { OutputLog } from './outputLog';
import type { DlmSettings } from './settings';

export type ModelState =
  | { kind: 'waitingForEngine' }
  | { kind: 'loading'; model: string }
  | { kind: 'ready'; model: string; info: LoadedModelInfo; client: EngineClient }
  | { kind: 'failed'; model: string; message: string }
  | { kind: 'engineUnavailable'; message: string };

export interface ReadyModel {
  client: EngineClient;
  info: LoadedModelInfo;
}

export class ModelSession implements vscode.Disposable {
  private readonly stateEmitter = new vscode.EventEmitter<ModelState>();
  readonly onDidChangeState = this.stateEmitter.event;
  private current: ModelState = { kind: 'waitingForEngine' };
  /** Bumped by every load, so a slow load that was overtaken does not overwrite the newer state. */
  private generation = 0;
  /** The model loaded last, unloaded from its engine when a different one replaces it. */
  private loaded: ReadyModel | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly supervisor: EngineSupervisor,
    private readonly log: OutputLog,
    private readonly settings: () => DlmSettings,
    /** The Hugging Face token for gated models, if the user stored one. */
    private readonly huggingFaceToken: () => Thenable<string | undefined> = async () => undefined,
  ) {
    this.subscription = supervisor.onDidChangeState((state) => this.onEngineState(state));
  }

  get state(): ModelState {
    return this.current;
  }

  /**
   * Loads the model named by the settings again (after `dlm.model` or `dlm.device` changed), after `delayMs`
   * so that typing a path does not load every prefix of it. Meanwhile the session counts as loading, so
   * nothing uses the model the settings no longer name.
   */
  reload(delayMs = 0): void {
    const engine = this.supervisor.state;
    if (engine.kind !== 'running') return; // the next engine start loads the model the settings name
    this.generation++;
    clearTimeout(this.reloadTimer);
    this.setState({ kind: 'loading', model: this.settings().model });
    this.reloadTimer = setTimeout(() => {
      const now = this.supervisor.state;
      if (now.kind === 'running') void this.load(now.client);
    }, delayMs);
  }

  /** The loaded model, waiting while the engine starts or the model loads; rejects when it cannot be had. */
  ready(token?: vscode.CancellationToken): Promise<ReadyModel> {
    const settled = settledState(this.current);
    if (settled) return settled;
    return new Promise((resolve, reject) => {
      const subscriptions: vscode.Disposable[] = [];
      const finish = (outcome: Promise<ReadyModel>) => {
        subscriptions.forEach((s) => s.dispose());
        outcome.then(resolve, reject);
      };
      subscriptions.push(
        this.onDidChangeState((state) => {
          const next = settledState(state);
          if (next) finish(next);
        }),
      );
      if (token) {
        subscriptions.push(token.onCancellationRequested(() => finish(Promise.reject(new vscode.CancellationError()))));
      }
    });
  }

  dispose(): void {
    clearTimeout(this.reloadTimer);
    this.subscription.dispose();
    this.stateEmitter.dispose();
  }

  private setState(state: ModelState): void {
    this.current = state;
    this.stateEmitter.fire(state);
  }

  private onEngineState(state: EngineState): void {
    clearTimeout(this.reloadTimer);
    switch (state.kind) {
      case 'running':
        void this.load(state.client);
        break;
      case 'failed':
        this.generation++;
        this.setState({ kind: 'engineUnavailable', message: state.message });
        break;
      case 'stopped':
        this.generation++;
        this.setState({ kind: 'engineUnavailable', message: 'The DLM engine is stopped.' });
        break;
      case 'starting':
      case 'restarting':
        this.generation++;
        this.setState({ kind: 'waitingForEngine' });
        break;
    }
  }

  /**
   * Frees every model in the engine but `keep`: the one the setting named before, and any whose load was
   * overtaken by a newer one (the setting changed again while it loaded) and so was never used.
   */
  private async unloadOthers(client: EngineClient, keep: string): Promise<void> {
    try {
      const { models } = await client.status();
      for (const { modelId } of models) {
        if (modelId === keep || this.loaded?.info.modelId !== keep) continue;
        await client.unloadModel(modelId).catch((error: Error) => this.log.warn(`Unloading ${modelId}: ${error.message}`));
      }
    } catch (error) {
      this.log.warn(`Cannot list the engine's models to free the unused ones: ${(error as Error).message}`);
    }
  }

  private async load(client: EngineClient): Promise<void> {
    const generation = ++this.generation;
    const { model, device } = this.settings();
    this.setState({ kind: 'loading', model });
    this.log.info(`Loading model "${model}" on device "${device}"...`);
    const started = Date.now();
    try {
      const huggingFaceToken = await this.huggingFaceToken();
      const hubUrl = this.settings().huggingFaceEndpoint;
      const info = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `DLM: loading model ${model}`, cancellable: true },
        (progress, cancellation) => {
          const reporter = new LoadProgressReporter(progress, model);
          const params = { model, device, ...(huggingFaceToken ? { huggingFaceToken } : {}), ...(hubUrl ? { hubUrl } : {}) };
          return client.loadModel(
            params,
            (update) => {
              this.log.info(`Model load (${update.stage}): ${update.message}`);
              reporter.report(update);
            },
            cancellation,
          );
        },
      );
      if (generation !== this.generation) {
        // Overtaken: the model loaded for nothing, unless the newer load got the same one.
        const now = this.current;
        if (now.kind === 'ready' && now.client === client) void this.unloadOthers(client, now.info.modelId);
        return;
      }
      this.log.info(
        `Model ready in ${Date.now() - started} ms: ${info.name} (${info.family}) on ${info.device}` +
          `, at most ${info.maxCanvasTokens} tokens per canvas.`,
      );
      if (info.deviceFallbackReason) {
        this.log.warn(`Device "${device}" not used: ${info.deviceFallbackReason}`);
        void vscode.window.showWarningMessage(`DLM runs on ${info.device}: ${info.deviceFallbackReason}`);
      }
      this.loaded = { client, info };
      this.setState({ kind: 'ready', model, info, client });
      void this.unloadOthers(client, info.modelId);
    } catch (error) {
      if (generation !== this.generation) return;
      if (this.supervisor.state.kind !== 'running' || this.supervisor.state.client !== client) {
        return; // the engine went away while loading; it is restarted and the model loaded again
      }
      const message = error instanceof Error ? error.message : String(error);
      this.log.error(`Cannot load model "${model}": ${message}`);
      this.setState({ kind: 'failed', model, message });
      if ((error as ResponseError).code === ErrorCodes.RequestCancelled) {
        const retry = await vscode.window.showInformationMessage(`DLM: loading ${model} was cancelled. ${message}`, 'Load Again');
        if (retry) this.reload();
        return;
      }
      // A gated repository (HTTP 401/403) needs an access token: offer to store one.
      const gated = (error as ResponseError<SetupErrorData>).data?.reason === 'gated';
      const choice = await vscode.window.showErrorMessage(
        `DLM could not load the model: ${message}`,
        ...(gated ? ['Set Hugging Face Token'] : []),
        'Open Settings',
        'Show Logs',
      );
      if (choice === 'Set Hugging Face Token') void vscode.commands.executeCommand('dlm.setHuggingFaceToken');
      if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'dlm.model');
      if (choice === 'Show Logs') this.log.show();
    }
  }
}

function settledState(state: ModelState): Promise<ReadyModel> | undefined {
  switch (state.kind) {
    case 'ready':
      return Promise.resolve({ client: state.client, info: state.info });
    case 'failed':
      return Promise.reject(new Error(`The model "${state.model}" could not be loaded: ${state.message}`));
    case 'engineUnavailable':
      return Promise.reject(new Error(state.message));
    default:
      return undefined;
  }
}

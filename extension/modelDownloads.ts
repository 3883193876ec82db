/**
 * Getting a model onto the disk as visible, resumable work: the engine downloads and converts it
 * (`dlm/prepareModel`) while one progress notification shows bytes, rate and time left, then the conversion;
 * its Cancel keeps what arrived. The model being fetched is remembered in the editor's global state, so an
 * editor (or engine) that stops mid-way resumes it when it starts again. When the model is ready it becomes
 * `dlm.model`. A failure says what happened and offers what to do: a token for a gated model, the stored models
 * when the disk is full, a retry when the network failed.
 */
import * as vscode from 'vscode';
import { ErrorCodes as JsonRpcErrorCodes, ResponseError } from 'vscode-jsonrpc';
import { ErrorCodes, type DeviceOption, type SetupErrorData } from '../common/protocol';
import type { EngineClient } from './engineClient';
import type { EngineSupervisor } from './engineSupervisor';
import { LoadProgressReporter } from './loadProgress';
import type { OutputLog } from './outputLog';
import { updateSetting, type DlmSettings } from './settings';

const PENDING_KEY = 'dlm.pendingDownload';

export interface DownloadRequest {
  /** What `dlm.model` becomes: a Hugging Face id. */
  model: string;
  /** Shown to the user. */
  name: string;
  device: DeviceOption;
}

export type DownloadOutcome =
  | { kind: 'ready'; model: string; modelDir: string }
  | { kind: 'cancelled'; model: string }
  /** The engine went away mid-way; the download resumes when it is back. */
  | { kind: 'interrupted'; model: string }
  | { kind: 'failed'; model: string; message: string; reason: SetupErrorData['reason']; actions: string[] };

export const SET_TOKEN_ACTION = 'Set Hugging Face Token';
const MANAGE_ACTION = 'Manage Models';
const RETRY_ACTION = 'Retry';
const CHOOSE_ACTION = 'Choose Another Model';

interface Job {
  request: DownloadRequest;
  cancellation: vscode.CancellationTokenSource;
  done: Promise<DownloadOutcome>;
}

export class ModelDownloads implements vscode.Disposable {
  private job: Job | undefined;
  private readonly subscription: vscode.Disposable;
  private readonly finished = new vscode.EventEmitter<DownloadOutcome>();
  /** Fires when a download ends, however it ends. */
  readonly onDidFinish = this.finished.event;
  /** The progress notification's last message (for the log and the tests). */
  lastProgress = '';

  constructor(
    private readonly supervisor: EngineSupervisor,
    private readonly log: OutputLog,
    private readonly state: vscode.Memento,
    private readonly settings: () => DlmSettings,
    private readonly huggingFaceToken: () => Thenable<string | undefined>,
  ) {
    // A download the editor or the engine stopped resumes when an engine runs again.
    this.subscription = supervisor.onDidChangeState((engine) => {
      if (engine.kind === 'running') this.resumePending();
    });
  }

  /** The download remembered as unfinished (resumed at the next engine start). */
  get pending(): DownloadRequest | undefined {
    return this.state.get<DownloadRequest>(PENDING_KEY);
  }

  /** The download running now. */
  get running(): DownloadRequest | undefined {
    return this.job?.request;
  }

  /** Starts fetching `request` (or joins the same download already running); resolves when it ends. */
  start(request: DownloadRequest): Promise<DownloadOutcome> {
    if (this.job) {
      if (this.job.request.model === request.model) return this.job.done;
      void vscode.window.showWarningMessage(
        `DLM is downloading ${this.job.request.name}; cancel that download (in its notification) before starting ${request.name}.`,
      );
      return Promise.resolve({ kind: 'failed', model: request.model, message: 'another download is running', reason: 'busy', actions: [] });
    }
    const cancellation = new vscode.CancellationTokenSource();
    const job: Job = { request, cancellation, done: this.run(request, cancellation) };
    this.job = job;
    void job.done.then((outcome) => {
      if (this.job === job) this.job = undefined;
      cancellation.dispose();
      this.finished.fire(outcome);
    });
    return job.done;
  }

  /** What the notification's Cancel does. */
  cancel(): void {
    this.job?.cancellation.cancel();
  }

  dispose(): void {
    this.subscription.dispose();
    this.finished.dispose();
    // The engine stops with the editor; the pending download stays remembered for the next start.
  }

  private resumePending(): void {
    const pending = this.pending;
    if (!pending || this.job) return;
    this.log.info(`Resuming the download of ${pending.model}.`);
    void this.start(pending);
  }

  private async run(request: DownloadRequest, cancellation: vscode.CancellationTokenSource): Promise<DownloadOutcome> {
    const engine = this.supervisor.state;
    if (engine.kind !== 'running') {
      // Remembered: it starts as soon as the engine runs.
      await this.state.update(PENDING_KEY, request);
      return { kind: 'interrupted', model: request.model };
    }
    const client = engine.client;
    this.lastProgress = '';
    await this.state.update(PENDING_KEY, request);
    this.log.info(`Preparing ${request.model} for ${request.device}...`);
    try {
      const token = await this.huggingFaceToken();
      const hubUrl = this.settings().huggingFaceEndpoint;
      const prepared = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `DLM: ${request.name}`, cancellable: true },
        (progress, notificationToken) => {
          const cancelOnClick = notificationToken.onCancellationRequested(() => cancellation.cancel());
          const reporter = new LoadProgressReporter(progress, request.model);
          return client
            .prepareModel(
              { model: request.model, device: request.device, ...(token ? { huggingFaceToken: token } : {}), ...(hubUrl ? { hubUrl } : {}) },
              (update) => {
                reporter.report(update);
                this.lastProgress = reporter.lastMessage;
              },
              cancellation.token,
            )
            .finally(() => cancelOnClick.dispose());
        },
      );
      await this.state.update(PENDING_KEY, undefined);
      this.log.info(`${request.model} is ready in ${prepared.modelDir}; using it.`);
      await updateSetting('model', request.model);
      void vscode.window.showInformationMessage(`DLM: ${request.name} is downloaded and converted, and now in use.`);
      return { kind: 'ready', model: request.model, modelDir: prepared.modelDir };
    } catch (error) {
      return this.failed(request, client, error);
    }
  }

  private async failed(request: DownloadRequest, client: EngineClient, error: unknown): Promise<DownloadOutcome> {
    const now = this.supervisor.state;
    if (isConnectionLoss(error) || now.kind !== 'running' || now.client !== client) {
      // The engine stopped under the download: it resumes with the next engine.
      this.log.warn(`The download of ${request.model} stopped with the engine; it resumes when the engine is back.`);
      return { kind: 'interrupted', model: request.model };
    }
    await this.state.update(PENDING_KEY, undefined);
    const message = (error as Error).message;
    if (error instanceof ResponseError && error.code === ErrorCodes.RequestCancelled) {
      this.log.info(`Download of ${request.model} cancelled: ${message}`);
      void vscode.window.showInformationMessage(`DLM: the download of ${request.name} is paused; choose the model again to resume it.`);
      return { kind: 'cancelled', model: request.model };
    }
    const reason = ((error as ResponseError<SetupErrorData>).data?.reason ?? 'other') as SetupErrorData['reason'];
    const actions = ACTIONS[reason] ?? [];
    this.log.error(`Cannot prepare ${request.model}: ${message}`);
    void vscode.window.showErrorMessage(`DLM could not get ${request.name}: ${message}`, ...actions, 'Show Logs').then((choice) => {
      if (choice === SET_TOKEN_ACTION) {
        void vscode.commands.executeCommand('dlm.setHuggingFaceToken').then(() => this.start(request));
      } else if (choice === RETRY_ACTION) {
        void this.start(request);
      } else if (choice === MANAGE_ACTION) {
        void vscode.commands.executeCommand('dlm.manageModels');
      } else if (choice === CHOOSE_ACTION) {
        void vscode.commands.executeCommand('dlm.chooseModel');
      } else if (choice === 'Show Logs') {
        this.log.show();
      }
    });
    return { kind: 'failed', model: request.model, message, reason, actions };
  }
}

/** The engine process went away (vscode-jsonrpc rejects what was pending on its connection). */
function isConnectionLoss(error: unknown): boolean {
  const lost: number[] = [JsonRpcErrorCodes.PendingResponseRejected, JsonRpcErrorCodes.ConnectionInactive, JsonRpcErrorCodes.MessageWriteError];
  return !(error instanceof ResponseError) || lost.includes(error.code);
}

/** What a failure offers, by its reason. */
const ACTIONS: Partial<Record<SetupErrorData['reason'], string[]>> = {
  gated: [SET_TOKEN_ACTION],
  noDiskSpace: [MANAGE_ACTION],
  unreachable: [RETRY_ACTION],
  interrupted: [RETRY_ACTION],
  corrupt: [RETRY_ACTION],
  notFound: [CHOOSE_ACTION],
  busy: [RETRY_ACTION],
};

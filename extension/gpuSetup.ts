/**
 * DLM: Set Up GPU Acceleration. Where onnxruntime-node's install script would fetch a GPU provider (Linux x64
 * with an NVIDIA GPU: CUDA 12), the engine fetches it into the extension's storage with a cancellable progress
 * notification, and the engine restarts running onnxruntime from there (DLM_ORT_NATIVE_DIR), so `auto` can pick
 * CUDA. Elsewhere it explains what the platform uses instead (DirectML, Core ML, WebGPU). Either way it says which
 * system libraries are missing, and which device the model runs on afterwards.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ErrorCodes, GPU_PROVIDER_MARKER, type GpuProviderStatus } from '../common/protocol';
import type { EngineSupervisor } from './engineSupervisor';
import { LoadProgressReporter } from './loadProgress';
import type { ModelSession } from './modelSession';
import type { OutputLog } from './outputLog';
import { updateSetting } from './settings';


/** Where the provider is set up: the extension's global storage. */
export function gpuProviderDir(globalStorage: vscode.Uri): string {
  return path.join(globalStorage.fsPath, 'gpu-provider');
}

/** The engine's environment: run onnxruntime from the set-up folder once it holds a complete set-up. */
export function gpuProviderEnv(dir: string): Record<string, string> {
  return fs.existsSync(path.join(dir, GPU_PROVIDER_MARKER)) ? { DLM_ORT_NATIVE_DIR: dir } : {};
}

export class GpuSetup {
  /** The outcome of the last run, for the log and the tests. */
  lastStatus: GpuProviderStatus | undefined;

  constructor(
    private readonly supervisor: EngineSupervisor,
    private readonly session: ModelSession,
    private readonly dir: string,
    private readonly log: OutputLog,
  ) {}

  async run(): Promise<GpuProviderStatus | undefined> {
    const engine = this.supervisor.state;
    if (engine.kind !== 'running') {
      void vscode.window.showWarningMessage('DLM: the engine is not running yet; try again in a moment.');
      return undefined;
    }
    let status = await engine.client.gpuProviderStatus(this.dir);
    this.lastStatus = status;
    if (!status.applicable) {
      this.log.info(`GPU set-up: nothing to fetch. ${status.explanation}`);
      void vscode.window
        .showInformationMessage(`DLM: ${status.explanation}`, 'Use "auto"')
        .then((choice) => choice && updateSetting('device', 'auto'));
      return status;
    }
    if (!status.installed) {
      const go = await vscode.window.showInformationMessage(
        `DLM: ${status.explanation} Download it into the extension's storage now?`,
        { modal: true },
        'Download',
      );
      if (!go) return status;
      const installed = await this.install();
      if (!installed) return this.lastStatus;
      status = installed;
    }
    if (!status.active) {
      this.log.info(`GPU set-up: restarting the engine to run onnxruntime from ${this.dir}.`);
      await this.supervisor.restart();
    }
    await updateSetting('device', 'auto');
    this.report(status);
    return status;
  }

  private async install(): Promise<GpuProviderStatus | undefined> {
    const engine = this.supervisor.state;
    if (engine.kind !== 'running') return undefined;
    try {
      const status = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'DLM: GPU set-up', cancellable: true },
        (progress, token) => {
          const reporter = new LoadProgressReporter(progress, 'the CUDA provider');
          return engine.client.installGpuProvider(this.dir, (update) => reporter.report(update), token);
        },
      );
      this.lastStatus = status;
      this.log.info(`GPU set-up: ${status.source?.package} ${status.source?.version} installed in ${this.dir}.`);
      return status;
    } catch (error) {
      const message = (error as Error).message;
      const cancelled = (error as { code?: number }).code === ErrorCodes.RequestCancelled;
      this.log.warn(`GPU set-up ${cancelled ? 'cancelled' : 'failed'}: ${message}`);
      if (cancelled) void vscode.window.showInformationMessage(`DLM: ${message}`);
      else void vscode.window.showErrorMessage(`DLM: the GPU set-up failed: ${message}`);
      return undefined;
    }
  }

  /** Says what runs now, once the model is loaded again, and what the system still lacks. */
  private report(status: GpuProviderStatus): void {
    if (status.missingLibraries.length > 0) {
      void vscode.window.showWarningMessage(
        `DLM: the CUDA provider is set up, but this system lacks ${status.missingLibraries.join(', ')}: install CUDA 12 and cuDNN 9 ` +
          '(NVIDIA\'s packages for your distribution), then restart the engine.',
        'Restart Engine',
      ).then((choice) => choice && this.supervisor.restart());
      return;
    }
    void this.session.ready().then(
      ({ info }) =>
        void vscode.window.showInformationMessage(
          info.device === 'cuda'
            ? 'DLM: GPU acceleration is set up; the model runs on CUDA.'
            : `DLM: GPU acceleration is set up, but the model runs on ${info.device}: ${info.deviceFallbackReason ?? 'see the logs'}`,
        ),
      () => undefined,
    );
  }
}

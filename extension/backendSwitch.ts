/**
 * The backend in use, as `dlm.backend` says: the local engine or the team server. The providers, the block
 * infill and the status bar hold this one object; switching stops the backend that answered (the engine
 * process is ended, so a model no one asks does not hold memory) and starts the other, without a reload.
 */
import * as vscode from 'vscode';
import type { BackendStatus, CompletionBackend, ReadyBackend } from './completionBackend';
import type { LocalBackend } from './localBackend';
import type { RemoteBackend } from './remoteBackend';
import type { BackendKind } from './settings';

export class BackendSwitch implements CompletionBackend {
  private readonly statusEmitter = new vscode.EventEmitter<BackendStatus>();
  readonly onDidChangeStatus = this.statusEmitter.event;
  private selected: BackendKind | undefined;
  private readonly subscriptions: vscode.Disposable[];

  constructor(
    readonly local: LocalBackend,
    readonly remote: RemoteBackend,
  ) {
    const forward = (kind: BackendKind) => (status: BackendStatus) => {
      if (this.selected === kind) this.statusEmitter.fire(status);
    };
    this.subscriptions = [local.onDidChangeStatus(forward('local')), remote.onDidChangeStatus(forward('remote'))];
  }

  /** Which backend answers now. */
  get kind(): BackendKind | undefined {
    return this.selected;
  }

  private get current(): LocalBackend | RemoteBackend {
    return this.selected === 'remote' ? this.remote : this.local;
  }

  /** Makes `kind` the backend: stops the other one and starts this one (nothing when it already is). */
  async select(kind: BackendKind): Promise<void> {
    if (kind === this.selected) return;
    const previous = this.selected;
    this.selected = kind;
    if (kind === 'local') this.local.start();
    else this.remote.start();
    this.statusEmitter.fire(this.status);
    if (previous === 'local') await this.local.stop();
    if (previous === 'remote') this.remote.stop();
  }

  get status(): BackendStatus {
    return this.current.status;
  }

  get cacheModes(): boolean {
    return this.current.cacheModes;
  }

  get restartLabel(): string {
    return this.current.restartLabel;
  }

  ready(token?: vscode.CancellationToken): Promise<ReadyBackend> {
    return this.current.ready(token);
  }

  restart(): Promise<void> {
    return this.current.restart();
  }

  dispose(): void {
    this.subscriptions.forEach((s) => s.dispose());
    this.statusEmitter.dispose();
  }
}

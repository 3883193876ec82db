/**
 * One inline completion the backend is working on: where it belongs (document version and cursor offset),
 * what the ghost text should show now (the partial canvas, then the final fill), and its cancellation,
 * which reaches the engine as `$/cancelRequest` (or closes the server's HTTP request).
 */
import * as vscode from 'vscode';
import type { TextCanvas } from '../common/textCanvas';
import { FillCancelled, type FillProgress, type FillResult } from './completionBackend';
import { trimFill } from './fillTrimming';
import { fullyMasked, partialGhostText } from './ghostText';

export type CompletionState =
  | { kind: 'partial'; text: string; step: number; totalSteps: number }
  | { kind: 'final'; text: string; result: FillResult }
  | { kind: 'cancelled'; reason: string }
  | { kind: 'failed'; error: Error };

export type InfillCall = (
  token: vscode.CancellationToken,
  onProgress: ((progress: FillProgress) => void) | undefined,
) => Promise<FillResult>;

let nextId = 0;

export class InflightCompletion implements vscode.Disposable {
  readonly id = ++nextId;
  private readonly cancellation = new vscode.CancellationTokenSource();
  private readonly updates = new vscode.EventEmitter<CompletionState>();
  /** Fires on each progress step and once more when the completion ends. */
  readonly onDidUpdate = this.updates.event;
  private current: CompletionState;
  private cancelReason = 'cancelled';
  /** Settles with the end state (final, cancelled or failed); never rejects. */
  readonly done: Promise<CompletionState>;

  constructor(
    readonly uri: string,
    readonly version: number,
    readonly offset: number,
    readonly canvas: TextCanvas,
    /** Whether progress is reported (and shown) before the final fill. */
    readonly streaming: boolean,
    call: InfillCall,
  ) {
    this.current = { kind: 'partial', text: fullyMasked(canvas.length), step: 0, totalSteps: 0 };
    const onProgress = streaming ? (progress: FillProgress) => this.onProgress(progress) : undefined;
    this.done = call(this.cancellation.token, onProgress).then(
      (result) => this.settle({ kind: 'final', text: trimFill(result.text, canvas), result }),
      (error: unknown) => this.settle(endStateOf(error, this.cancellation.token)),
    );
  }

  get state(): CompletionState {
    return this.current;
  }

  get running(): boolean {
    return this.current.kind === 'partial';
  }

  /** True when this completion belongs to the cursor at `offset` of this version of the document. */
  isAt(document: vscode.TextDocument, offset: number): boolean {
    return document.uri.toString() === this.uri && document.version === this.version && offset === this.offset;
  }

  cancel(reason: string): void {
    if (!this.running) return;
    this.cancelReason = reason;
    this.cancellation.cancel();
  }

  dispose(): void {
    this.cancel('disposed');
    this.cancellation.dispose();
    this.updates.dispose();
  }

  private onProgress(progress: FillProgress): void {
    if (!this.running || this.cancellation.token.isCancellationRequested) return;
    this.current = {
      kind: 'partial',
      text: partialGhostText(progress, this.canvas.multiline),
      step: progress.step,
      totalSteps: progress.totalSteps,
    };
    this.updates.fire(this.current);
  }

  private settle(state: CompletionState): CompletionState {
    if (state.kind === 'cancelled') state = { kind: 'cancelled', reason: this.cancelReason };
    this.current = state;
    this.updates.fire(state);
    return state;
  }
}

function endStateOf(error: unknown, token: vscode.CancellationToken): CompletionState {
  if (token.isCancellationRequested || error instanceof FillCancelled) return { kind: 'cancelled', reason: 'cancelled' };
  return { kind: 'failed', error: error instanceof Error ? error : new Error(String(error)) };
}

/**
 * The engine's `dlm/loadProgress` in one VS Code progress notification: while downloading, bytes, rate and time
 * left; then the conversion's (or a GPU provider's installation's) own progress; then the session. The bar moves forward only: a download takes its
 * first three quarters and the conversion the rest (the whole bar when nothing is downloaded).
 */
import type * as vscode from 'vscode';
import type { LoadProgressParams } from '../common/protocol';
import { TransferRate } from './transferProgress';

const DOWNLOAD_SHARE = 0.75;

export class LoadProgressReporter {
  private readonly rate = new TransferRate();
  private sawDownload = false;
  /** The bar's position, 0..1. */
  private position = 0;
  /** The last message shown, for the log and the tests. */
  lastMessage = '';

  constructor(
    private readonly progress: vscode.Progress<{ message?: string; increment?: number }>,
    /** Names what is downloaded, e.g. the model id. */
    private readonly label: string,
    private readonly now: () => number = Date.now,
  ) {}

  report(update: Omit<LoadProgressParams, 'progressToken'>): void {
    let message = update.message;
    let target = this.position;
    if (update.stage === 'download') {
      this.sawDownload = true;
      if (update.receivedBytes !== undefined) {
        this.rate.add(update.receivedBytes, this.now());
        message = `Downloading ${this.label}: ${this.rate.describe(update.receivedBytes, update.totalBytes ?? 0)}`;
      }
      if (update.fraction !== undefined) target = update.fraction * DOWNLOAD_SHARE;
    } else if ((update.stage === 'convert' || update.stage === 'install') && update.fraction !== undefined) {
      const start = this.sawDownload ? DOWNLOAD_SHARE : 0;
      target = start + update.fraction * (1 - start);
    }
    const increment = Math.max(0, target - this.position);
    this.position = Math.max(this.position, target);
    this.lastMessage = message;
    this.progress.report({ message, increment: increment * 100 });
  }
}

/**
 * Re-shows the inline suggestion while a completion denoises, so the ghost text follows the canvas.
 *
 * VS Code asks a provider again at the same cursor and document version only when the suggestion shown
 * there came from an automatic request: the first refresh after typing is a plain trigger, every later one
 * must hide the suggestion first, and the ghost text is blank until the provider's answer is back (one round
 * trip to the extension host). So refreshes are throttled to a rate where that gap is a small share of the
 * time (eight round trips apart, at most ten a second, at least three), and skipped when the text shown
 * would not change.
 */
import * as vscode from 'vscode';

const TRIGGER = 'editor.action.inlineSuggest.trigger';
const HIDE_THEN_TRIGGER = ['editor.action.inlineSuggest.hide', TRIGGER];
const MIN_INTERVAL_MS = 100;
const MAX_INTERVAL_MS = 300;
const INTERVALS_PER_ROUND_TRIP = 8;
/** A refresh not answered within this time was dropped by VS Code (e.g. the editor lost focus). */
const ISSUED_EXPIRY_MS = 2000;

export interface RefreshTarget {
  /** Which completion the refresh is for. */
  id: number;
  /** The text the ghost text should show now. */
  text(): string;
  /** False once the suggestion is no longer at the cursor (refreshing would start something else). */
  stillShown(): boolean;
}

export class GhostTextRefresh implements vscode.Disposable {
  private timer: NodeJS.Timeout | undefined;
  private lastRefresh = 0;
  private issuedAt: number | undefined;
  /** Smoothed time from issuing a refresh to the provider being asked (ms). */
  private roundTripMs = 10;
  private served: { id: number; text: string; automatic: boolean } | undefined;

  /**
   * True when the provider is probably being asked because of a refresh of ours (consumed by the call): if the
   * user typed meanwhile, that call is for the new text and should wait out the debounce like typing does.
   */
  takeIssued(): boolean {
    const issued = this.issuedAt !== undefined && Date.now() - this.issuedAt < ISSUED_EXPIRY_MS;
    if (this.issuedAt !== undefined) this.roundTripMs = 0.7 * this.roundTripMs + 0.3 * (Date.now() - this.issuedAt);
    this.issuedAt = undefined;
    return issued;
  }

  /** The provider answered for completion `id` with `text`. */
  noteServed(id: number, text: string, triggerKind: vscode.InlineCompletionTriggerKind): void {
    this.served = { id, text, automatic: triggerKind === vscode.InlineCompletionTriggerKind.Automatic };
  }

  /** Asks for the ghost text of `target` to be brought up to date, soon but not too often. */
  request(target: RefreshTarget): void {
    if (this.timer) return;
    const interval = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, INTERVALS_PER_ROUND_TRIP * this.roundTripMs));
    const wait = Math.max(0, this.lastRefresh + interval - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!target.stillShown()) return;
      const served = this.served?.id === target.id ? this.served : undefined;
      if (served && served.text === target.text()) return;
      this.lastRefresh = Date.now();
      this.issuedAt = this.lastRefresh;
      if (served?.automatic) void vscode.commands.executeCommand(TRIGGER);
      else void vscode.commands.executeCommand('runCommands', { commands: HIDE_THEN_TRIGGER });
    }, wait);
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  dispose(): void {
    this.cancel();
  }
}

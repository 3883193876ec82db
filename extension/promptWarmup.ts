/**
 * Warms the engine's prompt cache before the keystroke. When a document is shown in an editor, when the cursor
 * settles on another line (a pause after moving there without typing), and after a completion is accepted, it
 * asks the engine (`dlm/warmPrompt`) to compute the prompt keys/values of the context an inline completion at the
 * cursor would send, so that the first request after a pause finds them ready. The engine runs a warm-up at the
 * lowest priority and stops it for any completion request, so a warm-up never delays one; a newer warm-up
 * cancels the one still running. Typing sends none: its completion requests keep the cache current themselves.
 */
import * as vscode from 'vscode';
import { ResponseError } from 'vscode-jsonrpc';
import { ErrorCodes, type WarmPromptResult } from '../common/protocol';
import { buildTextCanvas } from '../common/textCanvas';
import { textAroundCursor } from './cursorText';
import type { ModelSession } from './modelSession';
import type { OutputLog } from './outputLog';
import { isEnabledForLanguage, promptReuseParams, type DlmSettings } from './settings';

/** How long the cursor stays on a line (or after an accept) before its context is warmed. */
export const SETTLE_MS = 400;

export type WarmupReason = 'shown' | 'cursor' | 'accepted';

export interface WarmupDependencies {
  session: ModelSession;
  log: OutputLog;
  settings: () => DlmSettings;
  isPaused: () => boolean;
}

/** A warm-up sent to the engine, and how it ended once it has. */
export interface SentWarmup {
  uri: string;
  line: number;
  reason: WarmupReason;
  outcome?: { kind: 'done'; result: WarmPromptResult | null } | { kind: 'stopped' } | { kind: 'failed'; message: string };
}

export class PromptWarmup implements vscode.Disposable {
  /** Warm-ups sent, oldest first (the last few), for the logs and tests. */
  readonly sent: SentWarmup[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: vscode.CancellationTokenSource | undefined;
  /** Per document: the version seen at its last selection change, to tell typing from moving the cursor. */
  private readonly versions = new Map<string, number>();
  /** Per document: the line the cursor was last warmed (or typed) on. */
  private readonly lines = new Map<string, number>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly deps: WarmupDependencies) {
    this.disposables.push(
      vscode.window.onDidChangeActiveTextEditor((editor) => editor && this.schedule(editor, 'shown', 0)),
      vscode.window.onDidChangeTextEditorSelection((event) => this.onSelection(event)),
      vscode.workspace.onDidChangeTextDocument((event) => {
        // Typing: the completion requests take over; a pending warm-up would only describe an older context.
        if (event.contentChanges.length > 0 && event.document === vscode.window.activeTextEditor?.document) this.cancelPending();
      }),
      deps.session.onDidChangeState((state) => {
        const editor = vscode.window.activeTextEditor;
        if (state.kind === 'ready' && editor) this.schedule(editor, 'shown', 0);
      }),
    );
  }

  /** After a completion was accepted: warm the context behind it once the cursor rests there. */
  completionAccepted(): void {
    const editor = vscode.window.activeTextEditor;
    if (editor) this.schedule(editor, 'accepted', SETTLE_MS);
  }

  dispose(): void {
    this.cancelPending();
    this.running?.cancel();
    this.disposables.forEach((d) => d.dispose());
  }

  private onSelection(event: vscode.TextEditorSelectionChangeEvent): void {
    const document = event.textEditor.document;
    const uri = document.uri.toString();
    const typed = this.versions.get(uri) !== undefined && this.versions.get(uri) !== document.version;
    this.versions.set(uri, document.version);
    const line = event.selections[0]?.active.line;
    if (typed) {
      this.lines.set(uri, line);
      return;
    }
    if (line === undefined || line === this.lines.get(uri) || event.textEditor !== vscode.window.activeTextEditor) return;
    this.schedule(event.textEditor, 'cursor', SETTLE_MS);
  }

  private schedule(editor: vscode.TextEditor, reason: WarmupReason, delayMs: number): void {
    this.cancelPending();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (editor === vscode.window.activeTextEditor) void this.warm(editor, reason);
    }, delayMs);
  }

  private cancelPending(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async warm(editor: vscode.TextEditor, reason: WarmupReason): Promise<void> {
    const settings = this.deps.settings();
    const document = editor.document;
    const state = this.deps.session.state;
    if (state.kind !== 'ready' || settings.promptReuse === 'off' || this.deps.isPaused()) return;
    if (!isEnabledForLanguage(settings, document.languageId) || !editor.selection.isEmpty) return;
    const position = editor.selection.active;
    const uri = document.uri.toString();
    this.lines.set(uri, position.line);
    this.versions.set(uri, document.version);
    const { before, after } = textAroundCursor(document, position, settings.contextBytes);
    const canvas = buildTextCanvas(before, after, settings);
    const { reuseMode } = promptReuseParams(settings.promptReuse);

    this.running?.cancel();
    const source = (this.running = new vscode.CancellationTokenSource());
    const sent: SentWarmup = { uri, line: position.line, reason };
    this.sent.push(sent);
    if (this.sent.length > 20) this.sent.shift();
    const where = `${vscode.workspace.asRelativePath(document.uri)}:${position.line + 1}`;
    try {
      const result = await state.client.warmPrompt(
        {
          modelId: state.info.modelId,
          documentId: uri,
          prefix: canvas.prefix,
          suffix: canvas.suffix,
          length: canvas.length,
          options: settings.decoding,
          // Cut as the completion there will be (inlineCompletionProvider.ts): a prefix that starts elsewhere shares no rows.
          fitToModel: true,
          coldBudgetMs: settings.coldRequestBudgetMs,
          reuseMode,
        },
        source.token,
      );
      sent.outcome = { kind: 'done', result };
      this.deps.log.debug(
        result
          ? `Warm-up at ${where} (${reason}): ${result.rowsComputed} rows computed, ${result.storedTokens} of ${result.promptTokens} prompt tokens already stored, ${Math.round(result.ms)} ms.`
          : `Warm-up at ${where} (${reason}): nothing to warm (the decoding settings ask for exact decoding, or ${reuseMode} reuse is not available).`,
      );
    } catch (error) {
      const stopped = error instanceof ResponseError && error.code === ErrorCodes.RequestCancelled;
      sent.outcome = stopped ? { kind: 'stopped' } : { kind: 'failed', message: (error as Error).message };
      this.deps.log.debug(`Warm-up at ${where} (${reason}) ${stopped ? 'gave way to a completion' : `failed: ${(error as Error).message}`}.`);
    } finally {
      if (this.running === source) this.running = undefined;
      source.dispose();
    }
  }
}

/**
 * Block infill: the selection (or a hole at the cursor) is replaced by a canvas of masks of a chosen length
 * that denoises in place, still-masked tokens drawn faint, until the user accepts (Tab) or discards (Escape)
 * it. Every edit of one fill goes into a single undo element, so a single undo brings back the original code
 * after accepting, and discarding is that undo. "Denoise Again" re-masks only the selected tokens of an
 * earlier fill and denoises them with the rest of the file as context.
 */
import * as vscode from 'vscode';
import { holeAllowsMultiline } from '../common/holeShape';
import { progressText } from '../common/protocol';
import { contextAround } from '../common/textCanvas';
import { FillCancelled, type CompletionBackend, type FillProgress, type FillResult } from './completionBackend';
import type { FillHistory } from './fillHistory';
import { fullyMasked } from './ghostText';
import { documentLength, type InfillDecorations } from './infillDecorations';
import type { OutputLog } from './outputLog';
import type { DlmSettings } from './settings';

export const PENDING_CONTEXT_KEY = 'dlm.blockFillPending';

export interface BlockInfillDependencies {
  backend: CompletionBackend;
  log: OutputLog;
  settings: () => DlmSettings;
  decorations: InfillDecorations;
  history: FillHistory;
  onResult: (result: FillResult) => void;
}

interface UndoStops {
  undoStopBefore: boolean;
  undoStopAfter: boolean;
}

/** One fill on screen: denoising, then waiting for accept or discard. */
interface FillSession {
  editor: vscode.TextEditor;
  /** Document offset where the fill starts. */
  start: number;
  original: string;
  /** The fill text now in the document (placeholders while denoising). */
  shown: string;
  phase: 'denoising' | 'ready';
  cancellation: vscode.CancellationTokenSource;
  /** The final fill's tokens, for the fill history. */
  tokens?: string[];
  /** Where the tokens go in the history when accepted (a re-denoise), else a new record. */
  onAccept: (tokens: string[]) => void;
  /** Settles when the edits of ours queued so far are applied. */
  edits: Promise<void>;
  /** Edits of ours in progress: the document change events they cause are not the user's. */
  ownEdits: number;
  rendering: boolean;
  /** The newest text waiting to be shown, with the undo stops its edit needs. */
  waiting?: { text: string; stops: UndoStops };
  subscriptions: vscode.Disposable[];
}

export class BlockInfill implements vscode.Disposable {
  private session: FillSession | undefined;

  constructor(private readonly deps: BlockInfillDependencies) {}

  /** True while a fill is on screen in this document (inline completions stay out of its way). */
  isActiveIn(uri: vscode.Uri): boolean {
    return this.session?.editor.document.uri.toString() === uri.toString();
  }

  /**
   * Command "DLM: Fill Selection": fills the selection or the hole at the cursor with `length` tokens (asked
   * for when not given, e.g. from the palette; a keybinding may pass it). Resolves once the fill is on screen.
   */
  async fillSelection(options?: { length?: number }): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return;
    await this.finishPrevious();
    const settings = this.deps.settings();
    const selection = editor.selection;
    const selected = editor.document.getText(selection);
    const ready = await this.readyModel();
    if (!ready) return;
    const limit = ready.maxFillTokens;
    // A selection suggests its own size: code runs at about three bytes per token in BPE vocabularies.
    const suggested = selected ? Math.round(Buffer.byteLength(selected) / 3) : settings.fillLength;
    const answer =
      options?.length !== undefined
        ? String(options.length)
        : await vscode.window.showInputBox({
            title: 'DLM: fill length',
            prompt: `How many tokens to fill ${selected ? 'in place of the selection' : 'at the cursor'} (1 to ${limit})`,
            value: String(Math.min(Math.max(1, suggested), limit)),
            validateInput: (value) => (parseLength(value, limit) === undefined ? `Enter a whole number from 1 to ${limit}.` : undefined),
          });
    if (answer === undefined) return; // the input was dismissed
    const length = parseLength(answer, limit);
    if (length === undefined) {
      void vscode.window.showErrorMessage(`DLM: the fill length must be a whole number from 1 to ${limit}, not ${answer}.`);
      return;
    }
    const start = editor.document.offsetAt(selection.start);
    await this.run(editor, start, editor.document.offsetAt(selection.end), length, (tokens) =>
      this.deps.history.record(editor.document, start, tokens),
    );
  }

  /** Command "DLM: Denoise Selection Again": re-masks the selected tokens of an earlier fill. */
  async redenoiseSelection(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return;
    await this.finishPrevious();
    const span = this.deps.history.span(editor.document, editor.selection);
    if (!span) {
      void vscode.window.showInformationMessage(
        'DLM: select part of a block fill made in this file (DLM: Fill Selection) to denoise it again.',
      );
      return;
    }
    await this.run(editor, span.start, span.end, span.count, (tokens) => span.replaceTokens(tokens));
  }

  /** Keeps the fill on screen (Tab). */
  async accept(): Promise<void> {
    const session = this.session;
    if (!session) return;
    if (session.phase === 'denoising') {
      void vscode.window.setStatusBarMessage('DLM: still denoising; Escape discards the fill.', 3000);
      return;
    }
    await session.edits;
    this.end(session);
    if (session.tokens) session.onAccept(session.tokens);
    this.deps.log.info('Block fill accepted.');
  }

  /** Puts the original code back (Escape), cancelling the request if it still runs. */
  async discard(): Promise<void> {
    const session = this.session;
    if (!session) return;
    session.cancellation.cancel();
    await session.edits;
    this.end(session);
    await restoreOriginal(session);
    this.deps.log.info('Block fill discarded.');
  }

  dispose(): void {
    if (this.session) void this.discard();
  }

  private async finishPrevious(): Promise<void> {
    if (this.session?.phase === 'ready') await this.accept();
    else if (this.session) await this.discard();
  }

  private async readyModel() {
    try {
      return await this.deps.backend.ready();
    } catch (error) {
      void vscode.window.showErrorMessage(`DLM cannot fill: ${(error as Error).message}`);
      return undefined;
    }
  }

  private async run(
    editor: vscode.TextEditor,
    start: number,
    end: number,
    length: number,
    onAccept: (tokens: string[]) => void,
  ): Promise<void> {
    const ready = await this.readyModel();
    if (!ready) return;
    const settings = this.deps.settings();
    const document = editor.document;
    const text = document.getText();
    const budget = settings.contextBytes;
    const { prefix, suffix } = contextAround(
      text.slice(Math.max(0, start - budget), start),
      text.slice(end, end + budget),
      budget,
    );
    const original = text.slice(start, end);
    // A selection inside one line, with code after it on that line, is filled with the rest of a line only.
    const multiline = original.includes('\n') || holeAllowsMultiline(text.slice(end));
    const masked = fullyMasked(length);
    const session: FillSession = {
      editor,
      start,
      original,
      shown: original,
      phase: 'denoising',
      cancellation: new vscode.CancellationTokenSource(),
      onAccept,
      edits: Promise.resolve(),
      ownEdits: 0,
      rendering: false,
      subscriptions: [],
    };
    this.session = session;
    session.subscriptions.push(
      this.deps.history.ignoreChanges(document),
      vscode.workspace.onDidChangeTextDocument((event) => this.onDocumentChange(session, event)),
    );
    void vscode.commands.executeCommand('setContext', PENDING_CONTEXT_KEY, true);
    this.deps.log.info(`Block fill: ${length} tokens at offset ${start} (replacing ${original.length} characters).`);

    // The first edit opens the undo element that all later edits of this fill join.
    this.render(session, masked, { undoStopBefore: true, undoStopAfter: false });
    let lastPieces: (string | null)[] | undefined;
    let result: FillResult;
    try {
      result = await ready.infill(
        {
          documentId: `${document.uri.toString()}#block-fill`,
          prefix,
          suffix,
          length,
          multiline,
          languageId: document.languageId,
          options: settings.decoding,
        },
        (progress: FillProgress) => {
          if (this.session !== session || session.phase !== 'denoising') return;
          lastPieces = progress.pieces;
          this.render(session, progressText(progress.pieces));
        },
        session.cancellation.token,
      );
    } catch (error) {
      if (this.session !== session || session.cancellation.token.isCancellationRequested || error instanceof FillCancelled) return; // discarded
      this.deps.log.error(`Block fill failed: ${(error as Error).message}`);
      void vscode.window.showErrorMessage(`DLM could not fill: ${(error as Error).message}`);
      await this.discard();
      return;
    }
    if (this.session !== session) return;
    this.deps.onResult(result);
    this.deps.log.info(`Block fill ready: ${result.stats.summary}. Tab accepts, Escape discards.`);
    session.tokens = tokensOf(result.text, lastPieces);
    session.phase = 'ready';
    // The last edit closes the undo element: one undo takes the whole fill back.
    this.render(session, result.text, { undoStopBefore: false, undoStopAfter: true });
    await session.edits;
  }

  /**
   * Shows `text` in place of what the fill shows now. Edits run one at a time; progress that arrives while
   * one runs only replaces the text waiting to be shown, so the document never lags behind the denoiser.
   */
  private render(session: FillSession, text: string, stops: UndoStops = { undoStopBefore: false, undoStopAfter: false }): void {
    const waiting = session.waiting;
    session.waiting = {
      text,
      stops: { undoStopBefore: stops.undoStopBefore || !!waiting?.stops.undoStopBefore, undoStopAfter: stops.undoStopAfter },
    };
    if (!session.rendering) session.edits = this.applyWaiting(session);
  }

  private async applyWaiting(session: FillSession): Promise<void> {
    session.rendering = true;
    try {
      while (session.waiting && this.session === session) {
        const { text, stops } = session.waiting;
        session.waiting = undefined;
        const document = session.editor.document;
        const from = document.positionAt(session.start);
        const to = document.positionAt(session.start + documentLength(session.shown, document.eol));
        session.ownEdits++;
        try {
          if (await session.editor.edit((edit) => edit.replace(new vscode.Range(from, to), text), stops)) session.shown = text;
        } finally {
          session.ownEdits--;
        }
        if (this.session === session) this.deps.decorations.show(session.editor, from, session.shown);
      }
    } finally {
      session.rendering = false;
    }
  }

  /** An edit that is not ours: while denoising it cancels the fill; once ready it counts as accepting it. */
  private onDocumentChange(session: FillSession, event: vscode.TextDocumentChangeEvent): void {
    if (event.document !== session.editor.document || session.ownEdits > 0 || event.contentChanges.length === 0) return;
    if (session.phase === 'ready') {
      void this.accept();
    } else {
      this.deps.log.info('Block fill cancelled: the document was edited while it denoised.');
      void this.discard();
    }
  }

  private end(session: FillSession): void {
    if (this.session !== session) return;
    this.session = undefined;
    session.subscriptions.forEach((s) => s.dispose());
    this.deps.decorations.clear(session.editor);
    void vscode.commands.executeCommand('setContext', PENDING_CONTEXT_KEY, false);
  }
}

/**
 * Brings the original code back. The fill's edits form one undo element, so undo is the clean way (it leaves
 * no element behind); should undo not have taken the fill back (the user did something in between), the
 * fill text is replaced by the original directly.
 */
async function restoreOriginal(session: FillSession): Promise<void> {
  const { editor, start, original, shown } = session;
  if (shown === original) return;
  const document = editor.document;
  const rangeOf = (text: string) =>
    new vscode.Range(document.positionAt(start), document.positionAt(start + documentLength(text, document.eol)));
  const visible = await vscode.window.showTextDocument(document, editor.viewColumn);
  await vscode.commands.executeCommand('undo');
  if (document.getText(rangeOf(shown)) !== shown) return;
  await visible.edit((edit) => edit.replace(rangeOf(shown), original));
}

/** The fill's tokens: the last progress pieces, cut to the final text (which ends at the first end token). */
function tokensOf(text: string, pieces: (string | null)[] | undefined): string[] {
  if (!pieces || pieces.some((piece) => piece === null)) return [text];
  const tokens: string[] = [];
  let used = 0;
  for (const piece of pieces as string[]) {
    if (used >= text.length) break;
    const take = piece.slice(0, text.length - used);
    if (text.slice(used, used + take.length) !== take) return [text];
    tokens.push(take);
    used += take.length;
  }
  return used === text.length ? tokens : [text];
}

function parseLength(value: string, limit: number): number | undefined {
  const n = Number(value.trim());
  return Number.isInteger(n) && n >= 1 && n <= limit ? n : undefined;
}

/**
 * Inline completions from the diffusion model, shown as they denoise.
 *
 * The first call at a place (after the debounce) starts a request to the backend (completionBackend.ts) and at
 * once returns the fully masked canvas; each progress step (a denoising step, or text a server streamed)
 * re-triggers inline suggestions (throttled, see ghostTextRefresh.ts), and the provider answers with the newest
 * partial canvas, masked tokens drawn as a placeholder, until the final fill replaces it.
 *
 * Accepting never inserts a placeholder: while a partial canvas is shown, Tab (and accept word / line) are
 * bound to `dlm.acceptInlineSuggestion`, which waits for the final fill and inserts that. Should a partial
 * item be accepted some other way (e.g. the mouse), the inserted draft is replaced by the final fill as soon
 * as it exists.
 *
 * Typing, moving the cursor or a request elsewhere cancels the running request (`$/cancelRequest` reaches the
 * engine, and the engine also lets the newest request of a document supersede older ones; a team server's HTTP
 * request is closed); finished fills are cached so that typing through a suggestion never recomputes it.
 */
import * as vscode from 'vscode';
import { buildTextCanvas } from '../common/textCanvas';
import { FillRefused, type CompletionBackend, type FillResult } from './completionBackend';
import { CompletionCache } from './completionCache';
import { hasPlaceholder, PLACEHOLDER } from './ghostText';
import { GhostTextRefresh } from './ghostTextRefresh';
import { InflightCompletion, type CompletionState } from './inflightCompletion';
import type { OutputLog } from './outputLog';
import { textAroundCursor } from './cursorText';
import { isEnabledForLanguage, promptReuseParams, type DlmSettings } from './settings';
import { normalizeLineBreaks } from './lineBreaks';

/** Context key true while the shown DLM suggestion is still a partial canvas (package.json keybindings). */
export const PARTIAL_CONTEXT_KEY = 'dlm.inlineSuggestionPartial';
export const ACCEPT_COMMAND = 'dlm.acceptInlineSuggestion';
/** Run by VS Code after it inserted a final suggestion (the item's command); the prompt after it is warmed up. */
export const ACCEPTED_COMMAND = 'dlm.inlineSuggestionAccepted';

export type AcceptKind = 'all' | 'word' | 'line';
const NATIVE_ACCEPT: Record<AcceptKind, string> = {
  all: 'editor.action.inlineSuggest.commit',
  word: 'editor.action.inlineSuggest.acceptNextWord',
  line: 'editor.action.inlineSuggest.acceptNextLine',
};

export interface ProviderDependencies {
  backend: CompletionBackend;
  log: OutputLog;
  settings: () => DlmSettings;
  isPaused: () => boolean;
  /** A block fill is on screen in this document: inline completions keep out of its way. */
  blockFillActiveIn: (uri: vscode.Uri) => boolean;
  /** Each finished completion, for the status bar. */
  onResult: (result: FillResult) => void;
}

/** A partial canvas (or its start) the user accepted by a path that bypassed `dlm.acceptInlineSuggestion`. */
interface AcceptedDraft {
  uri: string;
  offset: number;
  /** What was inserted. */
  text: string;
  /** The whole partial canvas shown at the time. */
  shown: string;
}

export class DlmInlineCompletionProvider implements vscode.InlineCompletionItemProvider, vscode.Disposable {
  private inflight: InflightCompletion | undefined;
  private readonly cache = new CompletionCache();
  private readonly refresh = new GhostTextRefresh();
  private partialShown = false;
  /**
   * The texts handed to VS Code for the current completion: its ghost text shows one of them (the newest, or
   * one before it while a refresh is on its way), and an accept VS Code performs inserts that one.
   */
  private served: { id: number; texts: Set<string> } | undefined;
  private acceptedDraft: AcceptedDraft | undefined;
  /** Refusals already shown to the user. */
  private readonly explained = new Set<string>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly deps: ProviderDependencies) {
    this.disposables.push(
      vscode.workspace.onDidChangeTextDocument((event) => this.onDocumentChange(event)),
      vscode.window.onDidChangeTextEditorSelection((event) => this.onSelectionChange(event)),
      vscode.window.onDidChangeActiveTextEditor(() => this.cancelInflight('another editor became active')),
    );
  }

  /** The completion the engine is working on or finished last at the cursor, if any. */
  get current(): InflightCompletion | undefined {
    return this.inflight;
  }

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const settings = this.deps.settings();
    if (this.deps.isPaused() || !isEnabledForLanguage(settings, document.languageId)) return undefined;
    if (this.deps.blockFillActiveIn(document.uri)) return undefined;
    // An accepted draft waits for its final fill: a new request would supersede the one that brings it.
    if (this.acceptedDraft?.uri === document.uri.toString()) return undefined;
    // With an IntelliSense item selected the suggest widget has the stage; a fill would have to extend it.
    if (context.selectedCompletionInfo) return undefined;

    const offset = document.offsetAt(position);
    const version = document.version;
    const refreshing = this.refresh.takeIssued();
    if (this.inflight?.isAt(document, offset)) return this.itemsFor(this.inflight, context, position);

    const { before, after } = textAroundCursor(document, position, settings.contextBytes);
    const cached = this.cache.lookup(before, after);
    if (cached) {
      this.deps.log.debug(`Completion from the cache (${cached.typed} characters typed through).`);
      return this.items(cached.text, false, position);
    }

    this.cancelInflight('a newer request');
    // A refresh of ours that lands after the user typed asks like an explicit trigger: debounce it like typing.
    const typing = context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic || refreshing;
    if (typing && settings.debounceMs > 0) {
      if (!(await sleep(settings.debounceMs, token))) return undefined;
    }
    let ready;
    try {
      ready = await this.deps.backend.ready(token);
    } catch (error) {
      if (!token.isCancellationRequested) this.deps.log.debug(`No completion: ${(error as Error).message}`);
      return undefined;
    }
    if (token.isCancellationRequested || document.version !== version) return undefined;

    const canvas = buildTextCanvas(before, after, settings);
    const inflight = new InflightCompletion(
      document.uri.toString(),
      document.version,
      offset,
      canvas,
      settings.streaming,
      (backendToken, onProgress) =>
        ready.infill(
          {
            documentId: document.uri.toString(),
            prefix: canvas.prefix,
            suffix: canvas.suffix,
            length: canvas.length,
            multiline: canvas.multiline,
            languageId: document.languageId,
            options: settings.decoding,
            coldBudgetMs: settings.coldRequestBudgetMs,
            reuse: promptReuseParams(settings.promptReuse),
          },
          onProgress,
          backendToken,
        ),
    );
    this.inflight = inflight;
    this.deps.log.debug(
      `Completion #${inflight.id}: ${canvas.length} masks (${canvas.multiline ? 'multi-line' : 'single line'}), ` +
        `${canvas.prefix.length} + ${canvas.suffix.length} characters of context.`,
    );
    inflight.onDidUpdate((state) => this.onInflightUpdate(inflight, state));

    if (!settings.streaming) {
      // Without streaming the one answer is the final fill; the request lives as long as this call.
      const cancel = token.onCancellationRequested(() => inflight.cancel('the editor withdrew the request'));
      await inflight.done;
      cancel.dispose();
    }
    return this.itemsFor(inflight, context, position);
  }

  /** Tab / accept word / accept line: while the canvas is partial, wait for the final fill and insert it. */
  async accept(kind: AcceptKind): Promise<void> {
    const inflight = this.inflight;
    const editor = vscode.window.activeTextEditor;
    if (!inflight || !editor || !inflight.running || !this.isShownAt(inflight, editor)) {
      await vscode.commands.executeCommand(NATIVE_ACCEPT[kind]);
      return;
    }
    this.deps.log.info(`Completion #${inflight.id} accepted while denoising: inserting the final fill when it is ready.`);
    const end = await inflight.done;
    if (end.kind !== 'final' || end.text === '' || !this.isShownAt(inflight, editor)) return;
    const text = kind === 'all' ? end.text : kind === 'word' ? nextWord(end.text) : nextLine(end.text);
    const start = editor.document.positionAt(inflight.offset);
    const inserted = await editor.edit((edit) => edit.insert(start, text));
    if (!inserted) return;
    const stop = endOfInsertion(start, text);
    editor.selection = new vscode.Selection(stop, stop);
    if (kind === 'all') {
      await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
      await vscode.commands.executeCommand(ACCEPTED_COMMAND);
    }
  }

  dispose(): void {
    this.cancelInflight('the extension stopped');
    this.refresh.dispose();
    this.disposables.forEach((d) => d.dispose());
  }

  private itemsFor(
    inflight: InflightCompletion,
    context: vscode.InlineCompletionContext,
    position: vscode.Position,
  ): Promise<vscode.InlineCompletionItem[]> {
    const state = inflight.state;
    const text = shownText(state);
    if (this.served?.id !== inflight.id) this.served = { id: inflight.id, texts: new Set() };
    this.served.texts.add(text);
    this.refresh.noteServed(inflight.id, text, context.triggerKind);
    return this.items(text, state.kind === 'partial', position);
  }

  /**
   * The items for `text`. The context key that routes Tab to `dlm.acceptInlineSuggestion` is set before the
   * items are returned, so it is in place by the time a partial canvas can be seen (and accepted).
   */
  private async items(text: string, partial: boolean, position: vscode.Position): Promise<vscode.InlineCompletionItem[]> {
    await this.setPartialShown(partial && text !== '');
    if (text === '') return [];
    const accepted = partial ? undefined : { command: ACCEPTED_COMMAND, title: 'Completion accepted' };
    return [new vscode.InlineCompletionItem(text, new vscode.Range(position, position), accepted)];
  }

  private onInflightUpdate(inflight: InflightCompletion, state: CompletionState): void {
    if (state.kind === 'final') {
      this.deps.log.info(`Completion #${inflight.id}: ${state.text.length} characters; ${state.result.stats.summary}.`);
      this.deps.onResult(state.result);
      const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === inflight.uri);
      if (document && state.text !== '') this.rememberFinal(document, inflight, state.text);
      void this.resolveAcceptedDraft(inflight, state.text);
    } else if (state.kind === 'cancelled') {
      this.deps.log.info(`Completion #${inflight.id} cancelled: ${state.reason}.`);
      void this.resolveAcceptedDraft(inflight, undefined);
    } else if (state.kind === 'failed') {
      this.deps.log.error(`Completion #${inflight.id} failed: ${state.error.message}`);
      this.explainRejection(state.error);
      void this.resolveAcceptedDraft(inflight, undefined);
    }
    // Without streaming the call that started the request answers with the final fill itself.
    if (inflight === this.inflight && inflight.streaming) {
      const editor = vscode.window.activeTextEditor;
      this.refresh.request({
        id: inflight.id,
        text: () => shownText(inflight.state),
        stillShown: () => inflight === this.inflight && !!editor && editor === vscode.window.activeTextEditor && this.isShownAt(inflight, editor),
      });
    }
  }

  /** A request the backend refuses (bad decoding settings, a canvas too long) would fail on every keystroke: say so once. */
  private explainRejection(error: Error): void {
    if (!(error instanceof FillRefused) || this.explained.has(error.message)) return;
    this.explained.add(error.message);
    void vscode.window
      .showWarningMessage(`DLM: ${error.message}`, 'Open Settings')
      .then((choice) => choice && vscode.commands.executeCommand('workbench.action.openSettings', 'dlm'));
  }

  private rememberFinal(document: vscode.TextDocument, inflight: InflightCompletion, text: string): void {
    if (document.version !== inflight.version) return;
    const window = this.deps.settings().contextBytes;
    const before = document.getText().slice(Math.max(0, inflight.offset - window), inflight.offset);
    const after = document.getText().slice(inflight.offset, inflight.offset + window);
    this.cache.store(before, after, text);
  }

  private isShownAt(inflight: InflightCompletion, editor: vscode.TextEditor): boolean {
    const selection = editor.selection;
    return (
      selection.isEmpty &&
      editor.document.uri.toString() === inflight.uri &&
      editor.document.version === inflight.version &&
      editor.document.offsetAt(selection.active) === inflight.offset
    );
  }

  private cancelInflight(reason: string): void {
    const inflight = this.inflight;
    if (!inflight) return;
    this.inflight = undefined;
    this.refresh.cancel();
    void this.setPartialShown(false);
    inflight.cancel(reason);
  }

  private onDocumentChange(event: vscode.TextDocumentChangeEvent): void {
    const inflight = this.inflight;
    if (!inflight || event.contentChanges.length === 0 || event.document.uri.toString() !== inflight.uri) return;
    const draft = inflight.running ? this.draftAccepted(inflight, event) : undefined;
    if (draft) {
      // The partial canvas was accepted past our keybindings: keep denoising, then put the final fill in its place.
      this.acceptedDraft = draft;
      this.inflight = undefined;
      void this.setPartialShown(false);
      this.deps.log.warn(`Completion #${inflight.id}: a partial canvas was accepted; it is replaced by the final fill when ready.`);
      return;
    }
    this.cancelInflight('the document changed');
  }

  /** The change, when it inserts the partial canvas shown (or a start of it with a placeholder in it). */
  private draftAccepted(inflight: InflightCompletion, event: vscode.TextDocumentChangeEvent): AcceptedDraft | undefined {
    const [change] = event.contentChanges;
    const text = normalizeLineBreaks(change.text);
    if (event.contentChanges.length !== 1 || change.rangeLength !== 0 || change.rangeOffset !== inflight.offset) return undefined;
    if (!hasPlaceholder(text) || this.served?.id !== inflight.id) return undefined;
    const shown = this.served.texts.has(text) ? text : [...this.served.texts].find((served) => served.startsWith(text));
    return shown === undefined ? undefined : { uri: inflight.uri, offset: inflight.offset, text, shown };
  }

  /**
   * Puts the final fill in place of an accepted draft, or, when the completion ended without one, takes the
   * placeholders out of the draft so that none stays in the document.
   */
  private async resolveAcceptedDraft(inflight: InflightCompletion, finalText: string | undefined): Promise<void> {
    const draft = this.acceptedDraft;
    if (!draft || draft.uri !== inflight.uri || draft.offset !== inflight.offset) return;
    this.acceptedDraft = undefined;
    const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === draft.uri);
    if (!document) return;
    const start = document.positionAt(draft.offset);
    const range = new vscode.Range(start, endOfInsertion(start, draft.text));
    if (normalizeLineBreaks(document.getText(range)) !== draft.text) {
      this.deps.log.warn('The accepted partial canvas was edited meanwhile; it is left as it is.');
      return;
    }
    const replacement = finalText === undefined ? draft.text.replaceAll(PLACEHOLDER, '') : replacementForDraft(draft, finalText);
    const edit = new vscode.WorkspaceEdit();
    edit.replace(document.uri, range, replacement);
    await vscode.workspace.applyEdit(edit);
  }

  private onSelectionChange(event: vscode.TextEditorSelectionChangeEvent): void {
    const inflight = this.inflight;
    if (!inflight || event.textEditor.document.uri.toString() !== inflight.uri) return;
    // Edits move the cursor too; those are handled (and the document version compared) on the change itself.
    if (event.textEditor.document.version !== inflight.version) return;
    if (!this.isShownAt(inflight, event.textEditor)) this.cancelInflight('the cursor moved');
  }

  private async setPartialShown(shown: boolean): Promise<void> {
    if (shown === this.partialShown) return;
    this.partialShown = shown;
    await vscode.commands.executeCommand('setContext', PARTIAL_CONTEXT_KEY, shown);
  }
}

/** What the ghost text shows for a completion in this state ('' for none). */
function shownText(state: CompletionState): string {
  return state.kind === 'partial' || state.kind === 'final' ? state.text : '';
}

function sleep(ms: number, token: vscode.CancellationToken): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      subscription.dispose();
      resolve(!token.isCancellationRequested);
    }, ms);
    const subscription = token.onCancellationRequested(() => {
      clearTimeout(timer);
      subscription.dispose();
      resolve(false);
    });
  });
}

/** The position after `text` inserted at `start` (line breaks counted, whatever the document's EOL). */
function endOfInsertion(start: vscode.Position, text: string): vscode.Position {
  const lines = normalizeLineBreaks(text).split('\n');
  const last = lines[lines.length - 1];
  return lines.length === 1 ? start.translate(0, last.length) : new vscode.Position(start.line + lines.length - 1, last.length);
}

/** What replaces an accepted draft: the final fill, or as much of it as the accepted part of the draft covered. */
function replacementForDraft(draft: AcceptedDraft, finalText: string): string {
  if (draft.text === draft.shown) return finalText;
  const lineBreaks = draft.text.split('\n').length - 1;
  if (lineBreaks === 0) return nextWord(finalText);
  return finalText.split('\n').slice(0, lineBreaks + 1).join('\n');
}

/** What "accept next word" takes of a fill: leading whitespace and one word or run of punctuation. */
function nextWord(text: string): string {
  return /^\s*(?:[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]+)/u.exec(text)?.[0] ?? text;
}

/** What "accept next line" takes of a fill: a leading line break and the rest of that line. */
function nextLine(text: string): string {
  return /^\r?\n?[^\n]*/.exec(text)?.[0] ?? text;
}

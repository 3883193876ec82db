/**
 * The block fills made in each document, token by token, kept in place as the document changes, so that a
 * part of a fill can be selected and denoised again with exactly as many masks as it has tokens.
 */
import * as vscode from 'vscode';
import { documentLength } from './infillDecorations';

interface FillRecord {
  /** Document offset of the first token. */
  start: number;
  /** The fill's tokens' text (line breaks as `\n`), in order. */
  tokens: string[];
}

/** The tokens of a recorded fill that a selection covers. */
export interface TokenSpan {
  /** Document offsets of the first covered token's start and the last one's end. */
  start: number;
  end: number;
  /** How many tokens. */
  count: number;
  /** Puts new tokens in place of the covered ones, once the re-denoised text is accepted. */
  replaceTokens(tokens: string[]): void;
}

export class FillHistory implements vscode.Disposable {
  private readonly records = new Map<string, FillRecord[]>();
  private readonly ignored = new Set<string>();
  private readonly subscription = vscode.workspace.onDidChangeTextDocument((event) => this.onChange(event));

  /** Remembers a fill of `tokens` starting at `start`; fills it overlaps are forgotten. */
  record(document: vscode.TextDocument, start: number, tokens: string[]): void {
    const key = document.uri.toString();
    const end = start + documentLength(tokens.join(''), document.eol);
    const kept = (this.records.get(key) ?? []).filter((r) => this.endOf(document, r) <= start || r.start >= end);
    this.records.set(key, [...kept, { start, tokens }]);
  }

  /** The tokens of a recorded fill covered by `selection` (the token under the cursor when it is empty). */
  span(document: vscode.TextDocument, selection: vscode.Range): TokenSpan | undefined {
    const from = document.offsetAt(selection.start);
    const to = document.offsetAt(selection.end);
    for (const record of this.records.get(document.uri.toString()) ?? []) {
      if (from < record.start || to > this.endOf(document, record)) continue;
      let offset = record.start;
      let first = -1;
      let last = -1;
      let spanStart = 0;
      let spanEnd = 0;
      record.tokens.forEach((token, index) => {
        const tokenEnd = offset + documentLength(token, document.eol);
        const covered = from === to ? from >= offset && from < tokenEnd : tokenEnd > from && offset < to;
        if (covered && token !== '') {
          if (first === -1) {
            first = index;
            spanStart = offset;
          }
          last = index;
          spanEnd = tokenEnd;
        }
        offset = tokenEnd;
      });
      if (first === -1) continue;
      return {
        start: spanStart,
        end: spanEnd,
        count: last - first + 1,
        replaceTokens: (tokens) => {
          record.tokens = [...record.tokens.slice(0, first), ...tokens, ...record.tokens.slice(last + 1)];
        },
      };
    }
    return undefined;
  }

  /** While the returned disposable lives, changes to this document are the caller's and do not move fills. */
  ignoreChanges(document: vscode.TextDocument): vscode.Disposable {
    const key = document.uri.toString();
    this.ignored.add(key);
    return new vscode.Disposable(() => this.ignored.delete(key));
  }

  dispose(): void {
    this.subscription.dispose();
    this.records.clear();
  }

  private endOf(document: vscode.TextDocument, record: FillRecord): number {
    return record.start + documentLength(record.tokens.join(''), document.eol);
  }

  /** Fills after an edit move with it; a fill the edit touches is forgotten (its tokens no longer match). */
  private onChange(event: vscode.TextDocumentChangeEvent): void {
    const key = event.document.uri.toString();
    const records = this.records.get(key);
    if (!records || this.ignored.has(key)) return;
    const kept: FillRecord[] = [];
    for (const record of records) {
      const end = this.endOf(event.document, record);
      let start = record.start;
      let touched = false;
      // Content changes are reported in the coordinates of the document before the event, last change first.
      for (const change of event.contentChanges) {
        const changeEnd = change.rangeOffset + change.rangeLength;
        if (changeEnd <= record.start) start += change.text.length - change.rangeLength;
        else if (change.rangeOffset < end) touched = true;
      }
      if (!touched) kept.push({ ...record, start });
    }
    this.records.set(key, kept);
  }
}

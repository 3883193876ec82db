/**
 * How a block fill looks while it denoises in the editor: the fill region tinted like inserted text, and
 * every still-masked token (a placeholder glyph in the document) drawn faint, in the ghost-text colour.
 */
import * as vscode from 'vscode';
import { PLACEHOLDER } from './ghostText';
import { normalizeLineBreaks } from './lineBreaks';

export class InfillDecorations implements vscode.Disposable {
  private readonly region = vscode.window.createTextEditorDecorationType({
    backgroundColor: new vscode.ThemeColor('diffEditor.insertedTextBackground'),
    borderRadius: '2px',
  });
  private readonly masked = vscode.window.createTextEditorDecorationType({
    color: new vscode.ThemeColor('editorGhostText.foreground'),
    opacity: '0.6',
  });

  /** Decorates the fill `text` that starts at `start` in `editor`. */
  show(editor: vscode.TextEditor, start: vscode.Position, text: string): void {
    const document = editor.document;
    const startOffset = document.offsetAt(start);
    const endOffset = startOffset + documentLength(text, document.eol);
    editor.setDecorations(this.region, [new vscode.Range(start, document.positionAt(endOffset))]);

    const maskedRanges: vscode.Range[] = [];
    const runs = new RegExp(`${PLACEHOLDER}+`, 'g');
    for (const run of text.matchAll(runs)) {
      const from = startOffset + documentLength(text.slice(0, run.index), document.eol);
      maskedRanges.push(new vscode.Range(document.positionAt(from), document.positionAt(from + run[0].length)));
    }
    editor.setDecorations(this.masked, maskedRanges);
  }

  clear(editor: vscode.TextEditor): void {
    editor.setDecorations(this.region, []);
    editor.setDecorations(this.masked, []);
  }

  dispose(): void {
    this.region.dispose();
    this.masked.dispose();
  }
}

/** Length of `text` once in a document whose line ends are `eol` (VS Code converts inserted `\n`). */
export function documentLength(text: string, eol: vscode.EndOfLine): number {
  const normalized = normalizeLineBreaks(text);
  const lineBreaks = normalized.split('\n').length - 1;
  return normalized.length + (eol === vscode.EndOfLine.CRLF ? lineBreaks : 0);
}

/**
 * The walkthrough's example: a new, unsaved Python document made from the packaged example (so nothing on disk
 * changes), cut inside the loop with the cursor on an indented empty line, where an inline completion follows a
 * pause in typing.
 */
import * as fs from 'node:fs';
import * as vscode from 'vscode';

export const OPEN_EXAMPLE_COMMAND = 'dlm.openExample';

/** Lines of media/examples/fizzbuzz.py kept above the cursor: the function up to the first `if` in the loop. */
const LINES_KEPT = 5;

export async function openExample(extensionUri: vscode.Uri): Promise<vscode.TextEditor> {
  const source = fs.readFileSync(vscode.Uri.joinPath(extensionUri, 'media', 'examples', 'fizzbuzz.py').fsPath, 'utf8');
  const lines = source.split('\n');
  const indent = /^\s*/.exec(lines[LINES_KEPT])?.[0] ?? '';
  const content = `${lines.slice(0, LINES_KEPT).join('\n')}\n${indent}`;
  const document = await vscode.workspace.openTextDocument({ language: 'python', content });
  const editor = await vscode.window.showTextDocument(document);
  const end = document.positionAt(content.length);
  editor.selection = new vscode.Selection(end, end);
  return editor;
}

/**
 * The text either side of the cursor that an inline completion's canvas is cut from: up to `contextBytes`
 * characters each way (a character is at least one byte, so that many characters always suffice for the byte
 * budget canvas.ts applies).
 */
import * as vscode from 'vscode';

export function textAroundCursor(document: vscode.TextDocument, position: vscode.Position, contextBytes: number): { before: string; after: string } {
  const offset = document.offsetAt(position);
  const before = document.getText(new vscode.Range(document.positionAt(Math.max(0, offset - contextBytes)), position));
  const after = document.getText(new vscode.Range(position, document.positionAt(offset + contextBytes)));
  return { before, after };
}

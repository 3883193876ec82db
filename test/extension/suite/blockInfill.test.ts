import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { DlmExtensionApi } from '../../../extension/extension';
import { hasPlaceholder } from '../../../extension/ghostText';
import { closeEditors, dlmApi, openEditor, SAMPLE_PYTHON, whileDenoisingLong } from './helpers';

/** Selects the body of `_munge_whitespace` (its four lines after the `def`). */
function selectMungeBody(editor: vscode.TextEditor): vscode.Selection {
  const text = editor.document.getText();
  const start = text.indexOf('        if self.expand_tabs:');
  const end = text.indexOf('        return text') + '        return text'.length;
  const selection = new vscode.Selection(editor.document.positionAt(start), editor.document.positionAt(end));
  editor.selection = selection;
  return selection;
}

describe('block infill (real engine, tiny synthetic model)', () => {
  let api: DlmExtensionApi;
  before(async () => {
    api = await dlmApi();
    await api.session.ready();
  });
  afterEach(async () => {
    await vscode.commands.executeCommand('dlm.discardFill');
    await closeEditors();
  });

  it('denoises in place, and after accepting one undo brings the selection back', () =>
    whileDenoisingLong(async () => {
      const editor = await openEditor(SAMPLE_PYTHON, '.py', 0);
      const original = editor.document.getText();
      const selection = selectMungeBody(editor);
      const start = editor.document.offsetAt(selection.start);
      const after = original.slice(editor.document.offsetAt(selection.end));
      const shown: string[] = [];
      const watch = vscode.workspace.onDidChangeTextDocument((event) => {
        if (event.document === editor.document) shown.push(event.document.getText());
      });
      await vscode.commands.executeCommand('dlm.fillSelection', { length: 64 });
      watch.dispose();

      const filled = editor.document.getText();
      assert.notEqual(filled, original);
      assert.ok(!hasPlaceholder(filled), 'the final fill has no placeholder');
      assert.ok(filled.startsWith(original.slice(0, start)), 'the code before the selection is untouched');
      assert.ok(filled.endsWith(after), 'the code after the selection is untouched');
      const partial = new Set(shown.filter(hasPlaceholder));
      assert.ok(partial.size >= 2, `the fill was shown denoising in the document (${partial.size} partial states)`);
      assert.equal(api.lastStats()?.genTokens, 64);

      await vscode.commands.executeCommand('dlm.acceptFill');
      assert.equal(editor.document.getText(), filled, 'accepting keeps the fill');
      await vscode.commands.executeCommand('undo');
      assert.equal(editor.document.getText(), original, 'one undo step restores the selection');
    }));

  it('discarding puts the original code back', async () => {
    const editor = await openEditor(SAMPLE_PYTHON, '.py', 0);
    const original = editor.document.getText();
    selectMungeBody(editor);
    await vscode.commands.executeCommand('dlm.fillSelection', { length: 16 });
    assert.notEqual(editor.document.getText(), original);
    await vscode.commands.executeCommand('dlm.discardFill');
    assert.equal(editor.document.getText(), original);
  });

  it('fills a hole at the cursor when nothing is selected', async () => {
    const cursor = SAMPLE_PYTHON.indexOf('    def wrap');
    const editor = await openEditor(SAMPLE_PYTHON, '.py', cursor);
    await vscode.commands.executeCommand('dlm.fillSelection', { length: 12 });
    await vscode.commands.executeCommand('dlm.acceptFill');
    const text = editor.document.getText();
    assert.ok(text.startsWith(SAMPLE_PYTHON.slice(0, cursor)));
    assert.ok(text.endsWith(SAMPLE_PYTHON.slice(cursor)));
    assert.ok(text.length > SAMPLE_PYTHON.length);
  });

  it('denoises again only the selected tokens of a previous fill', async () => {
    const editor = await openEditor(SAMPLE_PYTHON, '.py', 0);
    const selection = selectMungeBody(editor);
    const start = editor.document.offsetAt(selection.start);
    await vscode.commands.executeCommand('dlm.fillSelection', { length: 32 });
    await vscode.commands.executeCommand('dlm.acceptFill');
    const filled = editor.document.getText();

    // Select a few characters inside the fill: whole tokens around them are re-masked.
    const fill = api.fillHistory.span(editor.document, new vscode.Range(editor.document.positionAt(start), editor.document.positionAt(start)));
    assert.ok(fill, 'the fill is in the history');
    editor.selection = new vscode.Selection(editor.document.positionAt(start + 6), editor.document.positionAt(start + 12));
    const span = api.fillHistory.span(editor.document, editor.selection)!;
    assert.ok(span.start <= start + 6 && span.end >= start + 12 && span.count >= 1);

    await vscode.commands.executeCommand('dlm.redenoiseSelection');
    assert.equal(api.lastStats()?.genTokens, span.count, 'as many masks as the selected tokens');
    await vscode.commands.executeCommand('dlm.acceptFill');
    const redone = editor.document.getText();
    assert.ok(redone.startsWith(filled.slice(0, span.start)), 'the fill before the selected tokens is kept');
    assert.ok(redone.endsWith(filled.slice(span.end)), 'the fill after the selected tokens is kept');
    await vscode.commands.executeCommand('undo');
    assert.equal(editor.document.getText(), filled, 'one undo restores the previous fill');
  });
});

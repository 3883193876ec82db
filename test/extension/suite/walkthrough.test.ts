import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { closeEditors, dlmApi, EXTENSION_ID, inlineText } from './helpers';

interface WalkthroughStep {
  id: string;
  description: string;
  media: { markdown: string };
  completionEvents: string[];
}

describe('walkthrough', () => {
  afterEach(closeEditors);

  it('every step links a command the extension registers, and its page is in the package', async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID)!;
    const [walkthrough] = extension.packageJSON.contributes.walkthroughs as { steps: WalkthroughStep[] }[];
    assert.deepEqual(walkthrough.steps.map((s) => s.id), ['about', 'chooseModel', 'inlineCompletion', 'blockInfill', 'cacheModes', 'gpu']);
    const commands = new Set(await vscode.commands.getCommands(true));
    for (const step of walkthrough.steps) {
      const linked = [...step.description.matchAll(/\(command:([\w.]+)\)/g)].map((m) => m[1]);
      assert.equal(linked.length, 1, step.id);
      assert.ok(commands.has(linked[0]), `${step.id}: ${linked[0]} is not registered`);
      assert.ok(fs.existsSync(path.join(extension.extensionPath, step.media.markdown)), step.media.markdown);
      for (const event of step.completionEvents.filter((e) => e.startsWith('onCommand:'))) assert.ok(commands.has(event.slice(10)), event);
    }
  });

  it("the example opens unsaved, the cursor in the loop, and the model completes there", async () => {
    const api = await dlmApi();
    await api.session.ready();
    await vscode.commands.executeCommand('dlm.openExample');
    const editor = vscode.window.activeTextEditor!;
    assert.equal(editor.document.isUntitled, true);
    assert.equal(editor.document.languageId, 'python');
    assert.match(editor.document.getText(), /for i in range\(1, n \+ 1\):\n        if i % 15 == 0:\n            $/);
    assert.deepEqual(editor.selection.active, editor.document.positionAt(editor.document.getText().length));
    await inlineText(api, editor);
    const end = await api.provider.current!.done;
    assert.equal(end.kind, 'final');
  });
});

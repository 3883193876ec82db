import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ResponseError } from 'vscode-jsonrpc';
import { ErrorCodes, type InfillProgressParams } from '../../../common/protocol';
import type { DlmExtensionApi } from '../../../extension/extension';
import { hasPlaceholder, PLACEHOLDER } from '../../../extension/ghostText';
import type { CompletionState } from '../../../extension/inflightCompletion';
import { closeEditors, dlmApi, editorAtNewPlace, inlineText, SAMPLE_PYTHON, waitFor, whileDenoisingLong } from './helpers';

describe('inline completions (real engine, tiny synthetic model)', () => {
  let api: DlmExtensionApi;
  before(async () => {
    api = await dlmApi();
    await api.session.ready();
  });
  afterEach(closeEditors);

  // A long fill without a cache: with the prompt warmed when the editor opened, a short one can end before
  // this test has subscribed to its reports.
  it('shows the canvas denoising: all masks first, then partial canvases, then the final fill', () =>
    whileDenoisingLong(async () => {
      const editor = await editorAtNewPlace();
      const length = api.settings().fillLength;
      assert.equal(await inlineText(api, editor), PLACEHOLDER.repeat(length), 'before the first step every token is masked');

      const completion = api.provider.current!;
      const states: CompletionState[] = [];
      completion.onDidUpdate((state) => states.push(state));
      const end = await completion.done;

      assert.equal(end.kind, 'final');
      const partial = states.filter((s): s is Extract<CompletionState, { kind: 'partial' }> => s.kind === 'partial');
      // Reports before this test subscribed are not seen; the rest arrive one per step, in order.
      assert.ok(new Set(partial.map((s) => s.text)).size >= 2, `the partial canvas changes as it denoises (${partial.length} reports)`);
      assert.ok(hasPlaceholder(partial[0].text), 'early canvases still have masked tokens');
      const steps = partial.map((s) => s.step);
      assert.ok(steps.every((step, i) => i === 0 || step > steps[i - 1]), `steps arrive in order: ${steps}`);
      assert.ok(steps.every((step, i) => step <= partial[i].totalSteps));
      if (end.kind !== 'final') return;
      assert.ok(!hasPlaceholder(end.text));
      assert.equal(await inlineText(api, editor), end.text, 'the provider now offers the final fill');
      // One step per token is planned; the loop stops sooner when the fill's end-of-text is decided early
      // (engine/denoiser/denoiser.ts), which this document's changing text sometimes makes the tiny model do.
      const planned = Math.min(length, 256);
      assert.equal(partial[0].totalSteps, planned, 'the engine planned one step per token');
      const taken = api.lastStats()!.steps;
      assert.ok(taken >= 1 && taken <= planned, `${taken} steps of ${planned}`);
    }));

  it('accepting while denoising inserts the final fill, never a placeholder', () =>
    whileDenoisingLong(async () => {
      const editor = await editorAtNewPlace();
      await inlineText(api, editor);
      const completion = api.provider.current!;
      assert.equal(completion.running, true);
      await vscode.commands.executeCommand('dlm.acceptInlineSuggestion', 'all');
      const end = await completion.done;
      assert.equal(end.kind, 'final');
      if (end.kind !== 'final') return;
      const before = completion.offset;
      const text = editor.document.getText();
      assert.equal(text.slice(before, before + end.text.length), end.text);
      assert.equal(text.length, before + end.text.length);
      assert.ok(!hasPlaceholder(text));
      assert.ok(editor.selection.active.isEqual(editor.document.positionAt(text.length)), 'the cursor ends after the fill');
    }));

  it('accepting the next word while denoising inserts the first word of the final fill', () =>
    whileDenoisingLong(async () => {
      const editor = await editorAtNewPlace();
      await inlineText(api, editor);
      const completion = api.provider.current!;
      await vscode.commands.executeCommand('dlm.acceptInlineSuggestion', 'word');
      const end = await completion.done;
      if (end.kind !== 'final') return assert.fail(`the completion ended ${end.kind}`);
      const inserted = editor.document.getText().slice(completion.offset);
      assert.ok(inserted.length > 0 && end.text.startsWith(inserted), `a start of the final fill: ${JSON.stringify(inserted)}`);
      assert.ok(!hasPlaceholder(inserted));
    }));

  it('a partial canvas accepted some other way (the mouse) is replaced by the final fill', () =>
    whileDenoisingLong(async () => {
      const editor = await editorAtNewPlace();
      await inlineText(api, editor);
      const completion = api.provider.current!;
      // What VS Code's own accept does: insert the text of the item it shows (the provider's latest answer).
      const shown = await inlineText(api, editor);
      assert.ok(hasPlaceholder(shown));
      await editor.edit((edit) => edit.insert(editor.selection.active, shown));
      const end = await completion.done;
      if (end.kind !== 'final') return assert.fail(`the completion ended ${end.kind}`);
      await waitFor('the final fill in place of the draft', () => !hasPlaceholder(editor.document.getText()));
      assert.equal(editor.document.getText().slice(completion.offset), end.text);
    }));

  it('without streaming the one answer is the final fill', async () => {
    const config = vscode.workspace.getConfiguration('dlm');
    const previous = config.inspect('streaming')?.globalValue;
    try {
      await config.update('streaming', false, vscode.ConfigurationTarget.Global);
      const editor = await editorAtNewPlace();
      const text = await inlineText(api, editor);
      const end = api.provider.current!.state;
      assert.equal(end.kind, 'final');
      assert.equal(text, end.kind === 'final' ? end.text : undefined);
      assert.ok(!hasPlaceholder(text));
    } finally {
      await config.update('streaming', previous, vscode.ConfigurationTarget.Global);
    }
  });

  it('typing cancels the running request in the engine', () =>
    whileDenoisingLong(async () => {
      const editor = await editorAtNewPlace();
      const statsBefore = api.lastStats();
      await inlineText(api, editor);
      const completion = api.provider.current!;
      await waitFor('the first denoising step', () => completion.state.kind === 'partial' && completion.state.step >= 1);
      await editor.edit((edit) => edit.insert(editor.selection.active, 'x'));
      const end = await completion.done;
      assert.deepEqual(end, { kind: 'cancelled', reason: 'the document changed' });
      const { client } = await api.session.ready();
      await waitFor('the engine to be idle', async () => (await client.status()).busy === 0);
      assert.equal(api.lastStats(), statsBefore, 'no fill was finished');
    }));

  it('cancelling a request sends $/cancelRequest, and the engine stops between steps', async () => {
    const { client, info } = await api.session.ready();
    const source = new vscode.CancellationTokenSource();
    const seen: InfillProgressParams[] = [];
    const request = client.infill(
      { modelId: info.modelId, prefix: SAMPLE_PYTHON, suffix: '\n', length: 32, options: { cache: 'none' } },
      (progress) => {
        seen.push(progress);
        if (seen.length === 2) source.cancel();
      },
      source.token,
    );
    const error = await request.then(
      () => assert.fail('the request should have been cancelled'),
      (e: unknown) => e,
    );
    // The client's ResponseError class lives in the extension's bundle: compare the code, not the class.
    assert.equal((error as ResponseError<unknown>).code, ErrorCodes.RequestCancelled);
    assert.ok(seen.length < 32, `stopped after ${seen.length} of 32 steps`);
  });

  it('typing through a suggestion is served from the cache, without the engine', async () => {
    const editor = await editorAtNewPlace();
    await inlineText(api, editor);
    const end = await api.provider.current!.done;
    assert.equal(end.kind, 'final');
    if (end.kind !== 'final' || end.text.length < 2) return;
    const stats = api.lastStats();
    await editor.edit((edit) => edit.insert(editor.selection.active, end.text[0]));
    assert.equal(await inlineText(api, editor), end.text.slice(1));
    assert.equal(api.provider.current, undefined, 'no request was started');
    assert.equal(api.lastStats(), stats);
  });

  it('offers nothing in a language it is disabled for', async () => {
    const config = vscode.workspace.getConfiguration('dlm');
    const previous = config.inspect('enable')?.globalValue;
    try {
      await config.update('enable', { '*': true, python: false }, vscode.ConfigurationTarget.Global);
      const editor = await editorAtNewPlace();
      assert.equal(await inlineText(api, editor), '');
      assert.equal(api.provider.current, undefined);
    } finally {
      await config.update('enable', previous, vscode.ConfigurationTarget.Global);
    }
  });
});

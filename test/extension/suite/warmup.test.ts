/**
 * The prompt warm-up in a real extension host with a real engine: the context at the cursor is warmed when a
 * document is shown and when the cursor settles on another line, not while typing, and after a completion is
 * accepted; a completion after a warm-up reuses the prompt it computed; `dlm.promptReuse: off` sends none.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { DlmExtensionApi } from '../../../extension/extension';
import { SETTLE_MS, type SentWarmup } from '../../../extension/promptWarmup';
import { closeEditors, dlmApi, editorAtNewPlace, inlineText, waitFor, whileDenoisingLong, withSetting } from './helpers';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('prompt warm-up (real engine, tiny synthetic model)', () => {
  let api: DlmExtensionApi;
  before(async () => {
    api = await dlmApi();
    await api.session.ready();
  });
  afterEach(closeEditors);

  /** The warm-ups sent so far (the list keeps only the last few, so a later one is told by identity, not index). */
  const sentSoFar = () => new Set(api.warmup.sent);
  /** The first warm-up of `editor`'s document at `line` that has ended, not among `before`. */
  const warmedAt = (editor: vscode.TextEditor, line: number, before = new Set<SentWarmup>()) =>
    waitFor(`a warm-up at line ${line + 1}`, () =>
      api.warmup.sent.find((w): w is Required<SentWarmup> => !before.has(w) && w.uri === editor.document.uri.toString() && w.line === line && w.outcome !== undefined),
    );

  it('warms the context when a document is shown; its first completion reuses that prompt', async () => {
    const editor = await editorAtNewPlace();
    const warmed = await warmedAt(editor, editor.selection.active.line);
    assert.ok(warmed.reason === 'shown' || warmed.reason === 'cursor', warmed.reason);
    assert.equal(warmed.outcome.kind, 'done');
    if (warmed.outcome.kind !== 'done') return;
    assert.equal(warmed.outcome.result?.reuseMode, 'full-depth');
    assert.ok(warmed.outcome.result!.rowsComputed > 0);

    await inlineText(api, editor);
    const end = await api.provider.current!.done;
    assert.equal(end.kind, 'final');
    const stats = api.lastStats()!;
    assert.ok(stats.reusedPrefixTokens! > 0 && stats.reusedSuffixTokens! >= 0, `the completion reused ${stats.reusedPrefixTokens} prefix tokens`);
  });

  it('warms again when the cursor settles on another line, and not while typing', async () => {
    const editor = await editorAtNewPlace();
    await warmedAt(editor, editor.selection.active.line);
    const sent = sentSoFar();
    const line = 3;
    editor.selection = new vscode.Selection(line, 4, line, 4);
    const moved = await warmedAt(editor, line, sent);
    assert.equal(moved.reason, 'cursor');

    // Typing, Enter included, moves the cursor with every key: its completion requests keep the cache current.
    const typing = sentSoFar();
    for (const key of ['x', '\n', 'y']) {
      await editor.edit((edit) => edit.insert(editor.selection.active, key));
      await pause(SETTLE_MS / 4);
    }
    await pause(3 * SETTLE_MS);
    assert.deepEqual(api.warmup.sent.filter((w) => !typing.has(w)).map((w) => w.reason), [], 'no warm-up while typing');
  });

  it('warms the context after an accepted completion', () =>
    whileDenoisingLong(async () => {
      const editor = await editorAtNewPlace();
      await inlineText(api, editor);
      const completion = api.provider.current!;
      const sent = sentSoFar();
      await vscode.commands.executeCommand('dlm.acceptInlineSuggestion', 'all');
      const end = await completion.done;
      assert.equal(end.kind, 'final');
      const accepted = await waitFor('the warm-up after the accept', () => api.warmup.sent.find((w) => !sent.has(w) && w.reason === 'accepted' && w.outcome));
      assert.equal(accepted.line, editor.selection.active.line, 'at the cursor after the inserted fill');
      // Without a cache (cacheMode none) the engine has nothing to warm: exact decoding reuses nothing.
      assert.deepEqual(accepted.outcome, { kind: 'done', result: null });
    }));

  it('sends no warm-up with dlm.promptReuse off, and completions reuse nothing', () =>
    withSetting('promptReuse', 'off', async () => {
      const sent = sentSoFar();
      const editor = await editorAtNewPlace();
      await pause(3 * SETTLE_MS);
      assert.deepEqual(api.warmup.sent.filter((w) => !sent.has(w)), []);
      await inlineText(api, editor);
      assert.equal((await api.provider.current!.done).kind, 'final');
      assert.equal(api.lastStats()!.reusedPrefixTokens, undefined);
    }));
});

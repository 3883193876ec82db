import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSyntheticModel } from '../../../engine/model/synthetic';
import type { DlmExtensionApi } from '../../../extension/extension';
import { closeEditors, dlmApi, editorAtNewPlace, inlineText, waitFor, withSetting } from './helpers';

async function completeOnce(api: DlmExtensionApi) {
  const editor = await editorAtNewPlace();
  await inlineText(api, editor);
  const end = await api.provider.current!.done;
  assert.equal(end.kind, 'final', `the completion ended ${end.kind}`);
  return api.lastStats()!;
}

describe('settings reach the engine without a reload', () => {
  let api: DlmExtensionApi;
  before(async () => {
    api = await dlmApi();
    await api.session.ready();
  });
  afterEach(closeEditors);

  it('switching the cache mode changes the mode the engine reports, in the same engine and model', async () => {
    const { client, info } = await api.session.ready();
    for (const mode of ['greedy', 'decode', 'prefill', 'none'] as const) {
      const stats = await withSetting('cacheMode', mode, () => completeOnce(api));
      assert.equal(stats.cache, mode);
      assert.equal((await client.status()).lastStats?.cache, mode, 'the engine\'s own status agrees');
    }
    const after = await api.session.ready();
    assert.equal(after.client.pid, client.pid, 'no engine restart');
    assert.equal(after.info.modelId, info.modelId, 'no model reload');
  });

  it('replaces a bad value by a safe fallback and keeps completing', async () => {
    await withSetting('steps', 0, async () => {
      assert.equal(api.settings().decoding.steps, undefined, 'an invalid step count is not sent');
      await withSetting('cacheMode', 'warp-speed', async () => {
        assert.equal(api.settings().decoding.cache, undefined, 'an unknown cache mode is not sent');
        const stats = await completeOnce(api);
        assert.equal(stats.cache, (await api.session.ready()).info.defaults.cache, "the model's default applies");
      });
    });
    await withSetting('debounceMs', 'soon', async () => {
      assert.equal(api.settings().debounceMs, 200, 'the documented default');
    });
  });

  it('sends the decoding settings the user set with each request', async () => {
    await withSetting('steps', 8, async () => {
      const stats = await completeOnce(api);
      assert.equal(stats.steps, 8);
    });
  });

  it('a model change loads the new model in the running engine and unloads the old one', async function () {
    this.timeout(180_000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-test-llada-'));
    await writeSyntheticModel(dir, { preset: 'tiny-llada', seed: 3, name: 'test-tiny-llada' });
    const before = await api.session.ready();
    await withSetting('model', dir, async () => {
      await waitFor('the new model', () => api.session.state.kind === 'ready' && api.session.state.info.name === 'test-tiny-llada');
      const { client, info } = await api.session.ready();
      assert.equal(info.family, 'llada');
      assert.equal(client.pid, before.client.pid, 'the same engine process');
      await waitFor('the old model unloaded', async () => {
        const models = (await client.status()).models.map((m) => m.modelId);
        return models.length === 1 && models[0] === info.modelId;
      });
      await completeOnce(api);
    });
    await waitFor('the configured model again', () => api.session.state.kind === 'ready' && api.session.state.info.name === before.info.name);
  });
});

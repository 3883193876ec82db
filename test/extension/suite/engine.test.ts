import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { DlmExtensionApi } from '../../../extension/extension';
import { TEST_MODEL_NAME } from '../testModel';
import { closeEditors, dlmApi, editorAtNewPlace, inlineText, waitFor } from './helpers';

/** The running engine's pid once the supervisor runs one other than `not`. */
function runningPid(api: DlmExtensionApi, not?: number): number | undefined {
  const state = api.supervisor.state;
  return state.kind === 'running' && state.client.pid !== not ? state.client.pid : undefined;
}

async function modelReadyIn(api: DlmExtensionApi, pid: number): Promise<void> {
  await waitFor(`the model loaded in engine ${pid}`, () => {
    const state = api.session.state;
    return state.kind === 'ready' && state.client.pid === pid;
  });
}

describe('engine supervision (real engine process, tiny synthetic model)', () => {
  let api: DlmExtensionApi;
  before(async () => {
    api = await dlmApi();
  });
  afterEach(closeEditors);

  it('runs the engine with the editor\'s own Node and loads the configured model', async () => {
    const ready = await api.session.ready();
    assert.equal(ready.info.name, TEST_MODEL_NAME);
    assert.equal(ready.info.device, 'cpu');
    const status = await ready.client.status();
    assert.equal(status.pid, ready.client.pid, 'the engine answers from the process the supervisor spawned');
    assert.deepEqual(
      status.models.map((m) => m.modelId),
      [ready.info.modelId],
    );
  });

  it('restarts a killed engine, loads the model again, and completes again', async () => {
    const killed = (await api.session.ready()).client.pid;
    process.kill(killed, 'SIGKILL');
    const restarted = await waitFor('a new engine process', () => runningPid(api, killed));
    await modelReadyIn(api, restarted);

    const editor = await editorAtNewPlace();
    await inlineText(api, editor);
    const end = await api.provider.current!.done;
    assert.equal(end.kind, 'final', 'a completion from the restarted engine');
  });

  it('stops restarting after more than 5 crashes within the window and starts again on Retry', async function () {
    this.timeout(180_000);
    await api.supervisor.restart(); // a fresh crash budget
    let pid = await waitFor('the engine', () => runningPid(api));
    for (let crash = 1; crash <= 6; crash++) {
      process.kill(pid, 'SIGKILL');
      if (crash < 6) pid = await waitFor(`restart after crash ${crash}`, () => runningPid(api, pid), 30_000);
    }
    const failed = await waitFor('the failed state', () => (api.supervisor.state.kind === 'failed' ? api.supervisor.state : undefined));
    assert.match(failed.message, /crashed 6 times within 180 s, so it is not restarted again/);
    assert.equal(api.session.state.kind, 'engineUnavailable');
    await assert.rejects(api.session.ready(), /not restarted again/);

    api.supervisor.start(); // what the notification's Retry does
    const retried = await waitFor('the engine after Retry', () => runningPid(api, pid));
    await modelReadyIn(api, retried);
  });

  it('loads the model shipped with the extension for the default setting, builtin', async () => {
    const config = vscode.workspace.getConfiguration('dlm');
    const configured = config.inspect<string>('model')?.globalValue;
    try {
      await config.update('model', 'builtin', vscode.ConfigurationTarget.Global);
      const ready = await waitFor('the built-in model', () => (api.session.state.kind === 'ready' && api.session.state.model === 'builtin' ? api.session.state : undefined));
      assert.notEqual(ready.info.name, TEST_MODEL_NAME);
    } finally {
      await config.update('model', configured, vscode.ConfigurationTarget.Global);
    }
    const ready = await api.session.ready();
    assert.equal(ready.info.name, TEST_MODEL_NAME);
  });

  it('explains a model folder that does not exist, then recovers when the setting is fixed', async () => {
    const config = vscode.workspace.getConfiguration('dlm');
    const configured = config.inspect<string>('model')?.globalValue;
    try {
      await config.update('model', '/nonexistent/dlm-model', vscode.ConfigurationTarget.Global);
      const failed = await waitFor('the load failure', () => (api.session.state.kind === 'failed' ? api.session.state : undefined));
      assert.match(failed.message, /\/nonexistent\/dlm-model does not exist/);
      await assert.rejects(api.session.ready(), /could not be loaded/);
    } finally {
      await config.update('model', configured, vscode.ConfigurationTarget.Global);
    }
    const ready = await api.session.ready();
    assert.equal(ready.info.name, TEST_MODEL_NAME);
  });
});

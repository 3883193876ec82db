import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { DlmExtensionApi } from '../../../extension/extension';
import type { CompletionState } from '../../../extension/inflightCompletion';
import { InferenceTestServer } from '../../common/inferenceTestServer';
import { closeEditors, dlmApi, editorAtNewPlace, inlineText, openEditor, SAMPLE_PYTHON, waitFor } from './helpers';

const KEY = 'suite-server-key';
const ANSWER = 'self.text = text\n        return self.text';

async function setting(key: string, value: unknown): Promise<void> {
  await vscode.workspace.getConfiguration('dlm').update(key, value, vscode.ConfigurationTarget.Global);
}

describe('remote backend (stand-in SGLang/vLLM server on 127.0.0.1, real VS Code)', function () {
  this.timeout(120_000);
  let api: DlmExtensionApi;
  let server: InferenceTestServer;

  const status = () => api.backend.status;
  const readyStatus = () => waitFor('the server backend ready', () => (status().kind === 'ready' ? status() : undefined));

  /** Completes at a new place; resolves with the partial texts seen and the end state. */
  async function complete(): Promise<{ partial: string[]; end: CompletionState }> {
    const editor = await editorAtNewPlace();
    await inlineText(api, editor);
    const completion = api.provider.current!;
    const partial: string[] = [];
    completion.onDidUpdate((state) => state.kind === 'partial' && partial.push(state.text));
    return { partial, end: await completion.done };
  }

  before(async () => {
    api = await dlmApi();
    await api.session.ready();
    server = new InferenceTestServer({ apiKey: KEY });
    server.answer = () => ANSWER;
    // Spaced so that a busy extension host still sees the ghost text grow event by event.
    server.eventDelayMs = 80;
    await server.start();
    await api.serverApiKey.store(KEY);
    await setting('server.url', server.baseUrl);
    await setting('backend', 'remote');
    await readyStatus();
  });

  afterEach(closeEditors);

  after(async () => {
    await setting('backend', undefined);
    await setting('server.url', undefined);
    await api.serverApiKey.clear();
    await server.stop();
    await waitFor('the local engine again', () => api.session.state.kind === 'ready', 60_000);
  });

  it('stops the local engine and shows the server, its model and latency', async () => {
    const ready = await readyStatus();
    if (ready.kind !== 'ready') return;
    assert.equal(ready.model, 'LLaDA2.0-mini');
    assert.equal(ready.where, `127.0.0.1:${server.port}`);
    assert.ok(ready.latencyMs !== undefined && ready.latencyMs >= 0);
    assert.equal(api.backend.cacheModes, false, 'a server has no dlm.cacheMode');
    await waitFor('the engine stopped', () => api.supervisor.state.kind === 'stopped');
  });

  it("streams the server's answer into the ghost text, asked in the model family's prompt with the key", async () => {
    const { partial, end } = await complete();
    assert.equal(end.kind, 'final');
    if (end.kind !== 'final') return;
    assert.equal(end.text, ANSWER);
    const texts = partial.filter((text) => !text.includes('\u2591'));
    assert.ok(new Set(texts).size >= 2, `the ghost text grew as events arrived: ${JSON.stringify(texts)}`);
    for (const text of texts) assert.ok(ANSWER.startsWith(text), 'each partial text is a start of the answer');
    const request = server.completions[server.completions.length - 1];
    assert.equal(request.authorization, `Bearer ${KEY}`);
    assert.ok(request.prompt.startsWith('<role>SYSTEM</role>'), 'the LLaDA 2.x template');
    assert.ok(request.prompt.includes('<FILL_HERE>') && request.prompt.includes('in this python file'));
    assert.equal(request.body.max_tokens, api.settings().fillLength);
    assert.match(api.lastFill()?.summary ?? '', /tokens in \d+ ms .* from inclusionAI\/LLaDA2\.0-mini on 127\.0\.0\.1:\d+/);
    assert.equal(api.lastStats(), undefined, 'no engine stats for a server fill');
  });

  it('typing cancels the request: the server sees the connection closed', async () => {
    server.answer = () => `${ANSWER}\n${'        pass\n'.repeat(30)}`;
    try {
      const editor = await editorAtNewPlace();
      await inlineText(api, editor);
      const completion = api.provider.current!;
      await waitFor('some text from the server', () => completion.state.kind === 'partial' && completion.state.text.startsWith('self'));
      const request = server.completions[server.completions.length - 1];
      await editor.edit((edit) => edit.insert(editor.selection.active, 'x'));
      const end = await completion.done;
      assert.equal(end.kind, 'cancelled');
      await request.over;
      assert.equal(request.closedByClient, true);
    } finally {
      server.answer = () => ANSWER;
    }
  });

  it('marks the status bar after a failing request, and the next fill clears it', async () => {
    server.faults.push({ status: 500, body: { object: 'error', message: 'CUDA out of memory', type: 'InternalServerError', code: 500 } });
    const failed = await complete();
    assert.equal(failed.end.kind, 'failed');
    const marked = status();
    assert.ok(marked.kind === 'ready' && /HTTP 500: CUDA out of memory/.test(marked.warning ?? ''), JSON.stringify(marked));
    const next = await complete();
    assert.equal(next.end.kind, 'final');
    const cleared = status();
    assert.ok(cleared.kind === 'ready' && cleared.warning === undefined);
  });

  it('explains a refused key and completes again once the right key is set', async () => {
    await api.serverApiKey.store('an-old-key');
    const failed = await waitFor('the refusal', () => (status().kind === 'failed' ? status() : undefined));
    assert.ok(failed.kind === 'failed' && /HTTP 401: Unauthorized.*DLM: Set Server API Key/.test(failed.message), JSON.stringify(failed));
    await assert.rejects(api.backend.ready(), /HTTP 401/);
    await api.serverApiKey.store(KEY);
    await readyStatus();
    assert.equal((await complete()).end.kind, 'final');
  });

  it('refuses plain HTTP to another machine, saying why, without connecting', async () => {
    const routes = server.routes.length;
    await setting('server.url', 'http://192.0.2.10:8000');
    try {
      const failed = await waitFor('the refusal', () => (status().kind === 'failed' ? status() : undefined));
      assert.ok(failed.kind === 'failed' && /Refusing plain HTTP to 192\.0\.2\.10:8000: your code and the API key would cross the network unencrypted/.test(failed.message));
    } finally {
      await setting('server.url', server.baseUrl);
    }
    await readyStatus();
    assert.ok(server.routes.slice(routes).every((route) => route === 'GET /v1/models'), 'only the reconnection reached the stand-in');
  });

  it('fills a selection through the server with the block infill', async () => {
    const editor = await openEditor(SAMPLE_PYTHON, '.py', 0);
    const text = editor.document.getText();
    const start = text.indexOf('        if self.expand_tabs:');
    const end = text.indexOf('        return text') + '        return text'.length;
    editor.selection = new vscode.Selection(editor.document.positionAt(start), editor.document.positionAt(end));
    server.answer = () => '```python\n        text = text.strip()\n        return text\n```';
    try {
      await vscode.commands.executeCommand('dlm.fillSelection', { length: 24 });
      await vscode.commands.executeCommand('dlm.acceptFill');
    } finally {
      server.answer = () => ANSWER;
    }
    assert.equal(editor.document.getText(), `${text.slice(0, start)}        text = text.strip()\n        return text${text.slice(end)}`);
    assert.equal(server.completions[server.completions.length - 1].body.max_tokens, 24);
  });
});

/**
 * End to end with a team server, as a user sets it up: code-server in headless Chromium with `dlm.backend:
 * remote` pointing at the stand-in SGLang/vLLM server on 127.0.0.1 (test/common/inferenceTestServer.ts), the API
 * key typed into DLM: Set Server API Key, then the server's streamed answer shown as ghost text and inserted with
 * Tab, the status bar naming the server and its latency. No local engine runs.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { hasPlaceholder } from '../../extension/ghostText';
import { InferenceTestServer } from '../common/inferenceTestServer';
import { SAMPLE_PYTHON } from '../extension/samplePython';
import { codeServerMissing, openWorkbench, REPO_ROOT, startCodeServer, type OpenWorkbench, type RunningCodeServer } from './codeServer';
import { ExtensionLog, fromScreen, ghostFrames, recordGhostText, runCommand } from './workbench';

const KEY = 'e2e-team-key';
/** What the stand-in's model answers: the body of the method being written, streamed in small events. */
const ANSWER = 'width = self.width\n        return width * self.height';

describe('DLM Complete end to end with a team server (code-server, stand-in SGLang/vLLM server)', function () {
  this.timeout(600_000);
  let server: InferenceTestServer;
  let codeServer: RunningCodeServer;
  let workbench: OpenWorkbench;
  let page: Page;
  let log: ExtensionLog;
  const sampleFile = () => path.join(codeServer.workspace, 'sample.py');

  before(async function () {
    const missing = codeServerMissing();
    if (missing) throw new Error(`Cannot run the end-to-end tests: ${missing}`);
    server = new InferenceTestServer({ apiKey: KEY });
    server.answer = () => ANSWER;
    server.eventChars = 5;
    server.eventDelayMs = 150;
    await server.start();
    codeServer = await startCodeServer({
      settings: { 'dlm.backend': 'remote', 'dlm.server.url': server.baseUrl, 'dlm.debounceMs': 150, 'editor.fontSize': 16 },
      files: { 'sample.py': SAMPLE_PYTHON },
      extensions: { 'dlm-complete.dlm-complete-0.1.0': process.env.DLM_E2E_EXTENSION_DIR ?? REPO_ROOT },
    });
    log = new ExtensionLog(() => codeServer.findLogFile('DLM Complete.log'));
    workbench = await openWorkbench(codeServer.url, { width: 1400, height: 720 });
    page = workbench.page;
  });

  afterEach(async function () {
    if (this.currentTest?.state !== 'failed') return;
    console.log(`\nThe extension's log:\n${log.tail()}\n`);
    const shot = path.join(REPO_ROOT, '.cache/e2e', `failed-${this.currentTest.title.replace(/\W+/g, '-')}.png`);
    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot }).then(() => console.log(`Screenshot: ${shot}`), () => undefined);
  });

  after(async () => {
    await workbench?.close();
    await codeServer?.stop();
    await server?.stop();
  });

  async function saved(): Promise<string> {
    await page.keyboard.press('Control+S');
    const before = fs.statSync(sampleFile()).mtimeMs;
    for (let i = 0; i < 50 && fs.statSync(sampleFile()).mtimeMs === before; i++) await page.waitForTimeout(100);
    return fs.readFileSync(sampleFile(), 'utf8');
  }

  it('says the server wants a key, and connects once DLM: Set Server API Key stores it', async () => {
    await log.waitFor(/Inference server: The server refused the list of models \(\/v1\/models\) \(HTTP 401: Unauthorized\)/);
    const toast = page.locator('.notification-toast', { hasText: 'HTTP 401' });
    await toast.waitFor({ timeout: 30_000 });
    assert.match(await toast.innerText(), /Set Server API Key/);

    const mark = log.mark();
    await runCommand(page, 'DLM: Set Server API Key');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    assert.equal(await input.getAttribute('type'), 'password', 'the key is typed into a password box');
    await input.fill(KEY);
    await page.keyboard.press('Enter');
    await log.waitFor(new RegExp(`Connected to http://127\\.0\\.0\\.1:${server.port} in \\d+ ms: model inclusionAI/LLaDA2\\.0-mini, prompt template llada2`), mark);
    assert.ok(!log.text().includes('Engine started'), 'no local engine was started');
    assert.ok(!fs.readFileSync(codeServer.settingsFile, 'utf8').includes(KEY), 'the key is not in the settings file');
  });

  it("shows the server's streamed answer as ghost text, Tab inserts it, the status bar shows the server and its latency", async () => {
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'sample.py' }).dblclick();
    await page.locator('.monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('\n    def area(self):', { delay: 20 });
    const mark = log.mark();
    await recordGhostText(page);
    await page.keyboard.press('Enter'); // Python's on-enter rule indents the body: the cursor ends an empty line

    const [, characters] = await log.waitFor(new RegExp(`Completion #\\d+: (\\d+) characters; .* from inclusionAI/LLaDA2\\.0-mini on 127\\.0\\.0\\.1:${server.port}`), mark);
    await page.waitForTimeout(1000); // the last refresh
    // Frames with text (the first ones show the placeholders of the fill's length, blank ones come between refreshes).
    const shown = (await ghostFrames(page)).map((f) => fromScreen(f.text)).filter((text) => text.trim() !== '' && !hasPlaceholder(text));
    // The screen splits the ghost text into pieces (joined with line breaks when read) and pads it with spaces:
    // compared without white space. A painted frame may catch the lines below the cursor's line drawn before the
    // piece on it, so a partial state is a part of the answer, not always its start.
    const squash = (text: string) => text.replace(/\s+/g, '');
    const final = shown[shown.length - 1];
    assert.equal(squash(final), squash(ANSWER), 'the final ghost text is the answer');
    const partial = new Set(shown.slice(0, -1).map(squash));
    assert.ok(partial.size >= 2, `the ghost text grew as the server streamed: ${JSON.stringify([...partial])}`);
    for (const text of partial) assert.ok(squash(ANSWER).includes(text), `part of the answer: ${JSON.stringify(text)}`);

    // The request behind the ghost text, taken before Tab: accepting it may ask the server again at the new place.
    const request = server.completions[server.completions.length - 1];
    const before = await saved();
    await page.keyboard.press('Tab');
    const after = await saved();
    assert.equal(after.slice(before.length), ANSWER);
    assert.equal(ANSWER.length, Number(characters));

    assert.equal(request.authorization, `Bearer ${KEY}`);
    assert.ok(request.prompt.includes('    def area(self):\n        <FILL_HERE>'), 'the code around the cursor, the hole marked');
    const status = page.locator('.statusbar-item', { hasText: 'DLM' }).first();
    assert.match(await status.innerText(), new RegExp(`LLaDA2\\.0-mini · 127\\.0\\.0\\.1:${server.port} · \\d+ ms latency · \\d+ tok/s \\d+ ms`));
  });

  it('typing while the server streams cancels the request: the server sees the connection closed', async () => {
    server.answer = () => `${ANSWER}\n${'        pass\n'.repeat(40)}`;
    const count = server.completions.length;
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    const request = await waitForRequest(count);
    await page.waitForTimeout(400); // some events are on their way
    const mark = log.mark();
    await page.keyboard.type('z');
    await log.waitFor(/Completion #\d+ cancelled: the document changed\./, mark);
    await request.over;
    assert.equal(request.closedByClient, true);
    assert.ok(request.eventsSent < 40, `the server stopped streaming (${request.eventsSent} events sent)`);
  });

  async function waitForRequest(count: number) {
    for (let i = 0; i < 300; i++) {
      if (server.completions.length > count) return server.completions[server.completions.length - 1];
      await page.waitForTimeout(50);
    }
    throw new Error('no completion request reached the server');
  }
});

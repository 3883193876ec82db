/**
 * End to end, as a user sees it: code-server (VS Code's workbench and extension host) in headless Chromium,
 * the packaged extension layout linked in, the real engine process, the tiny synthetic model. Nothing is
 * mocked. The tests run in order against one window, as one session of use.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { hasPlaceholder, PLACEHOLDER } from '../../extension/ghostText';
import { SAMPLE_PYTHON } from '../extension/samplePython';
import { writeTestModel } from '../extension/testModel';
import { codeServerMissing, openWorkbench, REPO_ROOT, startCodeServer, type OpenWorkbench, type RunningCodeServer } from './codeServer';
import { changeSetting, ExtensionLog, fromScreen, ghostFrames, ghostTextNow, recordGhostText, runCommand } from './workbench';

/** Where the screenshot of the ghost text mid-denoising goes: media/ when refreshing the README's picture. */
const SCREENSHOT_DIR = process.env.DLM_UPDATE_SCREENSHOTS ? path.join(REPO_ROOT, 'media') : path.join(REPO_ROOT, '.cache/e2e');

const COMPLETION_FINAL = /Completion #(\d+): (\d+) characters; .* cache (\w+) on (\w+)\./;

/** The editor area down to the status bar: what the README's picture shows. */
async function editorAndStatusBar(page: Page): Promise<{ x: number; y: number; width: number; height: number }> {
  const editor = (await page.locator('.part.editor').boundingBox())!;
  const statusBar = (await page.locator('.part.statusbar').boundingBox())!;
  return { x: editor.x, y: editor.y, width: editor.width, height: statusBar.y + statusBar.height - editor.y };
}

describe('DLM Complete end to end (code-server, Chromium, real engine)', function () {
  this.timeout(600_000);
  let codeServer: RunningCodeServer;
  let workbench: OpenWorkbench;
  let page: Page;
  let log: ExtensionLog;
  let settings: Record<string, string | number>;
  const sampleFile = () => path.join(codeServer.workspace, 'sample.py');

  before(async function () {
    const missing = codeServerMissing();
    if (missing) throw new Error(`Cannot run the end-to-end tests: ${missing}`);
    const model = await writeTestModel();
    settings = {
      'dlm.model': model,
      'dlm.device': 'cpu',
      'dlm.cacheMode': 'decode',
      'dlm.debounceMs': 150,
      'editor.fontSize': 16,
    };
    codeServer = await startCodeServer({
      settings,
      files: { 'sample.py': SAMPLE_PYTHON },
      // The working tree by default; DLM_E2E_EXTENSION_DIR runs the same tests on an unpacked .vsix.
      extensions: { 'dlm-complete.dlm-complete-0.1.0': process.env.DLM_E2E_EXTENSION_DIR ?? REPO_ROOT },
    });
    log = new ExtensionLog(() => codeServer.findLogFile('DLM Complete.log'));
    workbench = await openWorkbench(codeServer.url, { width: 1100, height: 640 });
    page = workbench.page;
    await log.waitFor(/Model ready/);
    await focusSample();
    // A marker that a reload of the window would lose.
    await page.evaluate('window.__dlmSession = "before any settings change"');
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
  });

  /** Saves the editor and returns the file as VS Code wrote it. */
  async function saved(): Promise<string> {
    await page.keyboard.press('Control+S');
    const before = fs.statSync(sampleFile()).mtimeMs;
    for (let i = 0; i < 50 && fs.statSync(sampleFile()).mtimeMs === before; i++) await page.waitForTimeout(100);
    return fs.readFileSync(sampleFile(), 'utf8');
  }

  /** Brings sample.py to the front with the keyboard focus in it. */
  async function focusSample(): Promise<void> {
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'sample.py' }).dblclick();
    await page.locator('.monaco-editor .view-lines').first().click();
  }

  /** Puts the cursor on a new, indented line at the end of the file: a multi-line completion spot. */
  async function newLineAtEnd(): Promise<void> {
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
  }

  it('shows the ghost text denoising with placeholders, and Tab inserts the final text', async () => {
    await page.keyboard.press('Control+End');
    await page.keyboard.type('\n    def fill(self, text):', { delay: 20 });
    const mark = log.mark();
    await recordGhostText(page);
    await page.keyboard.press('Enter'); // Python's on-enter rule indents the body: the cursor ends an empty line

    // Take the screenshot while the canvas is partly denoised: some tokens decoded, some still masked.
    let screenshot = '';
    for (let i = 0; i < 600 && !screenshot; i++) {
      const ghost = await ghostTextNow(page);
      const decoded = ghost.replaceAll(PLACEHOLDER, '').trim().length;
      if (hasPlaceholder(ghost) && decoded >= 4) {
        fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
        screenshot = path.join(SCREENSHOT_DIR, 'ghost-text-denoising.png');
        await page.screenshot({ path: screenshot, clip: await editorAndStatusBar(page) });
      }
      await page.waitForTimeout(10);
    }
    assert.ok(screenshot, 'a partly denoised canvas was on screen');

    const [, , characters] = await log.waitFor(COMPLETION_FINAL, mark);
    await page.waitForTimeout(1000); // the last refresh
    const frames = (await ghostFrames(page)).filter((f) => f.text !== '');
    const final = frames[frames.length - 1].text;
    assert.ok(!hasPlaceholder(final), `the final ghost text has no placeholder: ${JSON.stringify(final)}`);
    const partial = frames.slice(0, -1).map((f) => f.text);
    assert.ok(partial.length >= 2 && new Set(partial).size >= 2, `at least two partial states before the final one: ${JSON.stringify(partial)}`);
    assert.ok(hasPlaceholder(partial[0]) && hasPlaceholder(partial[1]), 'the early states show masked tokens as placeholders');

    const beforeAccept = await saved();
    await page.keyboard.press('Tab');
    const afterAccept = await saved();
    assert.ok(afterAccept.startsWith(beforeAccept), 'the completion is inserted at the cursor, at the end of the file');
    const inserted = afterAccept.slice(beforeAccept.length);
    assert.ok(!hasPlaceholder(inserted), 'no placeholder was inserted');
    assert.equal(inserted.length, Number(characters), 'the final fill, all of it');
    assert.equal(inserted.replace(/\n/g, ''), fromScreen(final).replace(/\n/g, ''), 'what was shown is what was inserted');
  });

  it('typing while it denoises cancels the request in the engine', async () => {
    await newLineAtEnd();
    const mark = log.mark();
    await page.keyboard.type('x');
    for (let i = 0; i < 500 && !hasPlaceholder(await ghostTextNow(page)); i++) await page.waitForTimeout(10);
    assert.ok(hasPlaceholder(await ghostTextNow(page)), 'denoising was under way');
    await page.keyboard.type('y');
    const [line] = await log.waitFor(/\[engine\] infill \d+ \(document [^)]*sample\.py\) cancelled after step \d+ of \d+/, mark);
    assert.ok(line);
    await log.waitFor(/Completion #\d+ cancelled: the document changed\./, mark);

    await runCommand(page, 'DLM: Show Logs');
    const output = page.locator('.part.panel .monaco-editor .view-lines');
    await output.waitFor();
    // The output view wraps long lines: read its visible lines as one text.
    await page.waitForFunction(
      `/cancelled\\s*after\\s*step/.test(Array.from(document.querySelectorAll('.part.panel .monaco-editor .view-line')).map((l) => l.textContent).join(''))`,
      undefined,
      { timeout: 10_000 },
    );
    await runCommand(page, 'View: Hide Panel');
    await focusSample();
  });

  it('block infill replaces a selection in place, and one undo restores it', async () => {
    await page.keyboard.press('Escape');
    const original = await saved();
    const lineNumber = SAMPLE_PYTHON.split('\n').findIndex((l) => l.includes('if self.expand_tabs:')) + 1;
    await page.keyboard.press('Control+G');
    await page.keyboard.type(String(lineNumber));
    await page.keyboard.press('Enter');
    await page.keyboard.press('Home');
    await page.keyboard.press('Home'); // column 1, before the indentation
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('Shift+ArrowDown');

    const mark = log.mark();
    await runCommand(page, 'DLM: Fill Selection (or Hole at Cursor)');
    const lengthInput = page.locator('.quick-input-widget input');
    await lengthInput.waitFor({ state: 'visible' });
    await lengthInput.fill('24');
    await page.keyboard.press('Enter');

    let sawPlaceholders = false;
    for (let i = 0; i < 1000 && !log.linesSince(mark).some((l) => l.includes('Block fill ready')); i++) {
      const lines = await page.locator('.monaco-editor .view-lines').first().innerText();
      sawPlaceholders ||= hasPlaceholder(lines);
      await page.waitForTimeout(10);
    }
    await log.waitFor(/Block fill ready: 24 tokens/, mark);
    assert.ok(sawPlaceholders, 'the fill denoised in place: placeholders were on screen');
    await page.keyboard.press('Tab');
    await log.waitFor(/Block fill accepted/, mark);

    const filled = await saved();
    assert.notEqual(filled, original);
    assert.ok(!hasPlaceholder(filled));
    const lines = original.split('\n');
    const head = lines.slice(0, lineNumber - 1).join('\n');
    const tail = lines.slice(lineNumber + 1).join('\n');
    assert.ok(filled.startsWith(head) && filled.endsWith(tail), 'only the two selected lines were replaced');

    await page.keyboard.press('Control+Z');
    assert.equal(await saved(), original, 'one undo step restores the selection');
  });

  it('switching the cache mode from Decode to Greedy in the settings reaches the engine without a reload', async () => {
    const status = page.locator('.statusbar-item', { hasText: 'DLM' }).first();
    await status.waitFor();
    assert.match(await status.innerText(), /decode/);
    const enginesBefore = log.text().match(/Engine started/g)!.length;
    const modelLoadsBefore = log.text().match(/Model ready/g)!.length;

    const mark = log.mark();
    await changeSetting(page, 'dlm.cacheMode', 'greedy');
    await log.waitFor(/Settings changed: .*"cache":"greedy"/, mark);
    await page.waitForFunction(
      `Array.from(document.querySelectorAll('.statusbar-item')).some((e) => /DLM/.test(e.textContent) && /greedy/.test(e.textContent))`,
    );

    await focusSample();
    await newLineAtEnd();
    const [, , , cache] = await log.waitFor(COMPLETION_FINAL, mark);
    assert.equal(cache, 'greedy', 'the engine reports the greedy cache for the next completion');
    assert.match(await status.innerText(), /greedy .* tok\/s \d+ ms/);
    assert.equal(log.text().match(/Engine started/g)!.length, enginesBefore, 'the engine was not restarted');
    assert.equal(log.text().match(/Model ready/g)!.length, modelLoadsBefore, 'the model was not reloaded');
    assert.equal(await page.evaluate('window.__dlmSession'), 'before any settings change', 'the window was not reloaded');
  });

  it('survives the engine being killed: it restarts and completes again', async () => {
    const pids = [...log.text().matchAll(/Engine started \(pid (\d+)\)/g)].map((m) => Number(m[1]));
    const pid = pids[pids.length - 1];
    const mark = log.mark();
    process.kill(pid, 'SIGKILL');
    await log.waitFor(new RegExp(`Engine \\(pid ${pid}\\) was killed by SIGKILL`), mark);
    const [, restarted] = await log.waitFor(/Engine started \(pid (\d+)\)/, mark);
    assert.notEqual(Number(restarted), pid);
    await log.waitFor(/Model ready/, mark);

    const afterRestart = log.mark();
    await focusSample();
    await newLineAtEnd();
    await log.waitFor(COMPLETION_FINAL, afterRestart);
  });

  it('a model path that does not exist gives a clear error notification', async () => {
    const mark = log.mark();
    const configured = settings['dlm.model'] as string;
    await changeSetting(page, 'dlm.model', '/nonexistent/dlm-model');
    const toast = page.locator('.notification-toast', { hasText: 'could not load the model' });
    await toast.waitFor({ timeout: 60_000 });
    const message = await toast.innerText();
    assert.match(message, /DLM could not load the model/);
    assert.match(message, /\/nonexistent\/dlm-model does not exist/);
    assert.match(message, /Open Settings/);
    fs.mkdirSync(path.join(REPO_ROOT, '.cache/e2e'), { recursive: true });
    await page.waitForTimeout(1000);
    await page.screenshot({ path: path.join(REPO_ROOT, '.cache/e2e/model-not-found.png') });
    assert.equal(await page.locator('.notification-toast', { hasText: 'loading model' }).count(), 0, 'no load progress is left behind');

    await changeSetting(page, 'dlm.model', configured);
    await log.waitFor(/Model ready/, mark);
  });
});

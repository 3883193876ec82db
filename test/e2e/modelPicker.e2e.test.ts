/**
 * End to end, as a user gets a real model: in code-server (headless Chromium, real engine), the user opens
 * DLM: Choose Model, reads each model's verdict for this machine, picks Open-dCoder 0.5B, watches the download's
 * progress notification (bytes, rate, time left), and gets ghost text from the new model. The model comes from a
 * Hugging Face stand-in on 127.0.0.1 (dlm.huggingFaceEndpoint), which serves the built-in model's checkpoint
 * (20 MB, the project's trained weights) under Open-dCoder's id, slowly enough that the progress can be watched:
 * the real Open-dCoder is a 1 GB download.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { SAMPLE_PYTHON } from '../extension/samplePython';
import { writeTestModel } from '../extension/testModel';
import { HubTestServer } from '../engine/hubTestServer';
import { codeServerMissing, openWorkbench, REPO_ROOT, startCodeServer, type OpenWorkbench, type RunningCodeServer } from './codeServer';
import { ExtensionLog, ghostTextNow, runCommand } from './workbench';

const OPEN_DCODER = 'fredzzp/open-dcoder-0.5B';
const BUILTIN_CHECKPOINT = path.join(REPO_ROOT, 'engine/models/builtin');
const SHOTS = path.join(REPO_ROOT, '.cache/e2e');

/** Records every distinct text of the notification toasts, once per painted frame, into `window.__toasts`. */
async function recordNotifications(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    window.__toasts = [];
    const frame = () => {
      for (const toast of document.querySelectorAll('.notifications-toasts .notification-list-item')) {
        const text = toast.textContent.replace(/\\s+/g, ' ').trim();
        if (text && !window.__toasts.includes(text)) window.__toasts.push(text);
      }
      requestAnimationFrame(frame);
    };
    frame();
  })()`);
}

describe('choosing a model end to end (code-server, local Hugging Face stand-in)', function () {
  this.timeout(600_000);
  let hub: HubTestServer;
  let codeServer: RunningCodeServer;
  let workbench: OpenWorkbench;
  let page: Page;
  let log: ExtensionLog;

  before(async function () {
    const missing = codeServerMissing();
    if (missing) throw new Error(`Cannot run the end-to-end tests: ${missing}`);
    hub = new HubTestServer();
    const files = Object.fromEntries(
      ['config.json', 'model.safetensors', 'tokenizer.json'].map((name) => [name, fs.readFileSync(path.join(BUILTIN_CHECKPOINT, name))]),
    );
    hub.addRepo(OPEN_DCODER, files, ['model.safetensors']);
    // About 8 s for the weights: long enough to watch, and to see the rate and the time left.
    hub.faults.set('model.safetensors', { bytesPerSecond: Math.ceil(files['model.safetensors'].length / 8) });
    await hub.start();
    codeServer = await startCodeServer({
      settings: {
        'dlm.model': await writeTestModel(),
        'dlm.device': 'cpu',
        'dlm.debounceMs': 150,
        'dlm.huggingFaceEndpoint': hub.baseUrl,
        'editor.fontSize': 16,
      },
      files: { 'sample.py': SAMPLE_PYTHON },
      extensions: { 'dlm-complete.dlm-complete-0.1.0': process.env.DLM_E2E_EXTENSION_DIR ?? REPO_ROOT },
    });
    log = new ExtensionLog(() => codeServer.findLogFile('DLM Complete.log'));
    workbench = await openWorkbench(codeServer.url, { width: 1400, height: 800 });
    page = workbench.page;
    await log.waitFor(/Model ready/);
  });

  afterEach(async function () {
    if (this.currentTest?.state !== 'failed') return;
    console.log(`\nThe extension's log:\n${log.tail()}\n`);
    fs.mkdirSync(SHOTS, { recursive: true });
    const shot = path.join(SHOTS, `failed-${this.currentTest.title.replace(/\W+/g, '-')}.png`);
    await page.screenshot({ path: shot }).then(() => console.log(`Screenshot: ${shot}`), () => undefined);
  });

  after(async () => {
    await workbench?.close();
    await codeServer?.stop();
    await hub?.stop();
  });

  it('picks a model with its verdict, watches it download, and completes with it', async () => {
    await runCommand(page, 'DLM: Choose Model');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Open-dCoder 0.5B' });
    await row.waitFor({ timeout: 60_000 });
    const shown = (await row.textContent()) ?? '';
    assert.match(shown, /988 MB download/, 'the real download size');
    assert.match(shown, /fits in RAM on the CPU|fits on the GPU|too large/, `a verdict for this machine: ${shown}`);
    assert.match(shown, /Apache-2\.0/);
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'model-picker.png') });

    await recordNotifications(page);
    const mark = log.mark();
    await row.click();
    await log.waitFor(new RegExp(`${OPEN_DCODER.replace(/[./]/g, '\\$&')} is ready in`), mark, 180_000);
    const toasts = (await page.evaluate('window.__toasts')) as string[];
    const progress = toasts.filter((t) => t.includes('Downloading fredzzp/open-dcoder-0.5B'));
    assert.ok(
      progress.some((t) => /Downloading fredzzp\/open-dcoder-0\.5B: [\d.]+ MB of 20\.\d MB · [\d.]+ (kB|MB)\/s · \d+ s left/.test(t)),
      `a notification with bytes, rate and time left; saw: ${toasts.join(' | ')}`,
    );
    assert.ok(toasts.some((t) => t.includes('DLM: Open-dCoder 0.5B')), 'titled with the model');

    // The new model loads in place of the old one, and completes.
    await log.waitFor(/Model ready in \d+ ms: fredzzp\/open-dcoder-0\.5B/, mark, 120_000);
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'sample.py' }).dblclick();
    await page.locator('.monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+End');
    const completions = log.mark();
    await page.keyboard.press('Enter');
    await log.waitFor(/Completion #\d+: \d+ characters; .* on cpu\./, completions, 120_000);
    let ghost = '';
    for (let i = 0; i < 100 && ghost.trim() === ''; i++) {
      ghost = await ghostTextNow(page);
      await page.waitForTimeout(100);
    }
    assert.notEqual(ghost.trim(), '', 'ghost text from the new model');
    await page.screenshot({ path: path.join(SHOTS, 'new-model-ghost-text.png') });
    assert.ok(hub.requests((r) => r.path.startsWith(`/${OPEN_DCODER}/resolve/`)).length > 0, 'it came from the stand-in hub');
  });
});

/**
 * Driving the VS Code workbench in Chromium for the end-to-end tests: the editor, the command palette, the
 * ghost text as drawn on screen, and the extension's log (the "DLM Complete" output channel's file).
 */
import * as fs from 'node:fs';
import type { Page } from 'playwright-core';

/** The ghost text on the cursor's line: pieces of the first line of the completion. */
const INLINE_GHOST_SELECTOR = '.ghost-text-decoration, .ghost-text-decoration-preview';
/** The lines of the completion below the cursor's line (a view zone). */
const LINES_BELOW_SELECTOR = '.ghost-text';

/**
 * Page-side expression reading the ghost text in reading order: the pieces on the cursor's line sorted by where
 * they are drawn (their DOM order varies), then the lines below in DOM order, which is their order. Those
 * cannot be sorted by position: below the last visible line they are not laid out (every rectangle is 0).
 */
const READ_GHOST_TEXT = `[
  ...Array.from(document.querySelectorAll(${JSON.stringify(INLINE_GHOST_SELECTOR)}))
    .map((e) => ({ r: e.getBoundingClientRect(), text: e.textContent }))
    .sort((a, b) => a.r.top - b.r.top || a.r.left - b.r.left)
    .map((e) => e.text),
  ...Array.from(document.querySelectorAll(${JSON.stringify(LINES_BELOW_SELECTOR)})).map((e) => e.textContent),
].join('\\n')`;

/**
 * Starts recording the ghost text once per painted frame (what the user can see), with a timestamp, into
 * `window.__ghostFrames`. Plain JavaScript: it runs in the page.
 */
export async function recordGhostText(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    const read = () => ${READ_GHOST_TEXT};
    window.__ghostFrames = [];
    let last = null;
    const frame = () => {
      const text = read();
      if (text !== last) { last = text; window.__ghostFrames.push({ t: Date.now(), text }); }
      window.__ghostRecorder = requestAnimationFrame(frame);
    };
    if (window.__ghostRecorder) cancelAnimationFrame(window.__ghostRecorder);
    frame();
  })()`);
}

export interface GhostFrame {
  t: number;
  text: string;
}

export async function ghostFrames(page: Page): Promise<GhostFrame[]> {
  return (await page.evaluate('window.__ghostFrames')) as GhostFrame[];
}

/**
 * Waits until a frame painted at or after `since` (a Date.now() time; recording started by `recordGhostText`)
 * shows ghost text that satisfies `accept`.
 */
export async function waitForGhost(
  page: Page,
  since: number,
  accept: (text: string) => boolean,
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const frame = (await ghostFrames(page)).find((f) => f.t >= since && accept(f.text));
    if (frame) return frame.text;
    if (Date.now() > deadline) throw new Error(`No ghost text as expected within ${timeoutMs} ms: ${JSON.stringify(await ghostFrames(page))}`);
    await page.waitForTimeout(10);
  }
}

export async function ghostTextNow(page: Page): Promise<string> {
  return page.evaluate(READ_GHOST_TEXT) as Promise<string>;
}

/**
 * Document text as the editor draws it turned back into text: non-breaking spaces are spaces, and control
 * characters (drawn as the Unicode control pictures U+2400..U+241F, U+2421) are themselves.
 */
export function fromScreen(text: string): string {
  return text
    .replace(/\u00a0/g, ' ')
    .replace(/[\u2400-\u241f]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0x2400))
    .replace(/\u2421/g, '\u007f');
}

/** Runs a command from the command palette by its title. */
export async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${title}`);
  // Click the entry with exactly this title (Enter would take the best fuzzy match, maybe another command).
  await page
    .locator('.quick-input-list .monaco-list-row')
    .filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }) })
    .first()
    .click();
}

/**
 * Changes a setting the way a user does, in the Settings editor (a select for enums, a text box otherwise),
 * then closes the Settings editor.
 */
export async function changeSetting(page: Page, key: string, value: string): Promise<void> {
  await runCommand(page, 'Preferences: Open Settings (UI)');
  await page.locator('.settings-editor .search-container').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.type(key);
  const item = page.locator(`.setting-item-contents[data-key="${key}"]`);
  await item.waitFor();
  const select = item.locator('select');
  if ((await select.count()) > 0) await select.selectOption(value);
  else await item.locator('input').first().fill(value);
  await runCommand(page, 'View: Close Editor');
}

/** The output channel's log file, which the extension host writes as the channel fills. */
export class ExtensionLog {
  constructor(private readonly find: () => string | undefined) {}

  text(): string {
    const file = this.find();
    return file ? fs.readFileSync(file, 'utf8') : '';
  }

  /** Lines so far: a mark to look for new lines after. */
  mark(): number {
    return this.text().split('\n').length - 1;
  }

  linesSince(mark: number): string[] {
    return this.text().split('\n').slice(mark);
  }

  /** Waits for a line after `mark` matching `pattern`; returns its match. */
  async waitFor(pattern: RegExp, mark = 0, timeoutMs = 90_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const line of this.linesSince(mark)) {
        const match = line.match(pattern);
        if (match) return match;
      }
      if (Date.now() > deadline) {
        throw new Error(`No log line matching ${pattern} within ${timeoutMs} ms. Log:\n${this.linesSince(mark).slice(-30).join('\n')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  tail(lines = 40): string {
    return this.text().trimEnd().split('\n').slice(-lines).join('\n');
  }
}

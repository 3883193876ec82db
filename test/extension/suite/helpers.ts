/** What the in-host tests share: the extension's API, documents in editors, waiting for conditions. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { DlmExtensionApi } from '../../../extension/extension';
import { SAMPLE_PYTHON } from '../samplePython';

export { SAMPLE_PYTHON };

export const EXTENSION_ID = 'dlm-complete.dlm-complete';

export async function dlmApi(): Promise<DlmExtensionApi> {
  const extension = vscode.extensions.getExtension<DlmExtensionApi>(EXTENSION_ID);
  if (!extension) throw new Error(`${EXTENSION_ID} is not installed in this VS Code`);
  return extension.isActive ? extension.exports : extension.activate();
}

/** Polls `condition` until it returns something truthy; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, condition: () => T | Promise<T>, timeoutMs = 60_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let files = 0;
const filesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-suite-files-'));

/**
 * A new file holding `text` in the active editor, the cursor at `cursor` (default: the end). Files, not
 * untitled documents: those are dirty from the start (closing them asks to save) and reuse their names.
 */
export async function openEditor(text: string, extension = '.py', cursor?: number): Promise<vscode.TextEditor> {
  const file = path.join(filesDir, `file${Date.now()}-${++files}${extension}`);
  fs.writeFileSync(file, text);
  const document = await vscode.workspace.openTextDocument(file);
  const editor = await vscode.window.showTextDocument(document);
  const position = document.positionAt(cursor ?? text.length);
  editor.selection = new vscode.Selection(position, position);
  return editor;
}

/** Closes every editor, dropping unsaved changes (no save prompt). */
export async function closeEditors(): Promise<void> {
  for (let i = 0; i < 50 && vscode.window.visibleTextEditors.length > 0; i++) {
    await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
  }
}

export const INVOKE: vscode.InlineCompletionContext = {
  triggerKind: vscode.InlineCompletionTriggerKind.Invoke,
  selectedCompletionInfo: undefined,
};

/** The text of the first inline completion item the extension's provider offers at the cursor ('' for none). */
export async function inlineText(api: DlmExtensionApi, editor: vscode.TextEditor): Promise<string> {
  const source = new vscode.CancellationTokenSource();
  const items = await api.provider.provideInlineCompletionItems(editor.document, editor.selection.active, INVOKE, source.token);
  source.dispose();
  const insert = items?.[0]?.insertText;
  return typeof insert === 'string' ? insert : (insert?.value ?? '');
}

let places = 0;

/**
 * An editor with the cursor at the end of an indented line of SAMPLE_PYTHON (a multi-line completion),
 * with a line of its own just above so that no earlier completion is served from the cache.
 */
export async function editorAtNewPlace(): Promise<vscode.TextEditor> {
  return openEditor(`${SAMPLE_PYTHON}        # place ${Date.now()}.${++places}\n        `);
}

/**
 * Runs `body` with a long fill computed without a cache (96 masks, every step a full pass), so that a test
 * can act while a completion is still denoising, however fast the machine.
 */
export async function whileDenoisingLong<T>(body: () => Promise<T>): Promise<T> {
  const config = vscode.workspace.getConfiguration('dlm');
  const previous = { fillLength: config.inspect('fillLength')?.globalValue, cacheMode: config.inspect('cacheMode')?.globalValue };
  await config.update('fillLength', 96, vscode.ConfigurationTarget.Global);
  await config.update('cacheMode', 'none', vscode.ConfigurationTarget.Global);
  try {
    return await body();
  } finally {
    await config.update('fillLength', previous.fillLength, vscode.ConfigurationTarget.Global);
    await config.update('cacheMode', previous.cacheMode, vscode.ConfigurationTarget.Global);
  }
}

/** Sets `dlm.<key>` in the user settings for the duration of `body`, then puts the previous value back. */
export async function withSetting<T>(key: string, value: unknown, body: () => Promise<T>): Promise<T> {
  const config = vscode.workspace.getConfiguration('dlm');
  const previous = config.inspect(key)?.globalValue;
  await config.update(key, value, vscode.ConfigurationTarget.Global);
  try {
    return await body();
  } finally {
    await vscode.workspace.getConfiguration('dlm').update(key, previous, vscode.ConfigurationTarget.Global);
  }
}

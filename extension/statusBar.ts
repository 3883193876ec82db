/**
 * The status bar item (model, where it runs, cache mode or server latency, speed of the last fill) and the menu
 * its click opens: switch the cache mode, pause or resume completions, show the logs, restart the backend. It
 * shows whichever backend answers (completionBackend.ts) without knowing which it is.
 */
import * as vscode from 'vscode';
import { CACHE_MODES, DECODING_OPTION_SCHEMA, type CacheMode } from '../common/decodingOptions';
import type { BackendStatus, FillStats } from './completionBackend';
import { SECTION, updateSetting, type DlmSettings } from './settings';

const CACHE_SETTING = DECODING_OPTION_SCHEMA.cache.setting;

export const MENU_COMMAND = 'dlm.showMenu';

export interface StatusInputs {
  backend: BackendStatus;
  /** Whether the backend has cache modes the user can switch (the local engine). */
  cacheModes: boolean;
  settings: DlmSettings;
  paused: boolean;
  lastFill: FillStats | undefined;
}

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('dlm.status', vscode.StatusBarAlignment.Right, 100);

  constructor() {
    this.item.name = 'DLM Complete';
    this.item.command = MENU_COMMAND;
    this.item.show();
  }

  /** The cache mode requests use, for backends with cache modes: the setting when set, else the model's default. */
  static cacheMode(inputs: Pick<StatusInputs, 'backend' | 'settings' | 'cacheModes'>): CacheMode | undefined {
    const { backend } = inputs;
    if (!inputs.cacheModes) return undefined;
    return inputs.settings.decoding.cache ?? (backend.kind === 'ready' ? backend.defaultCache : undefined);
  }

  update(inputs: StatusInputs): void {
    const { backend, paused, lastFill } = inputs;
    const cache = StatusBar.cacheMode(inputs);
    this.item.backgroundColor = undefined;
    if (backend.kind === 'failed') {
      this.item.text = '$(error) DLM';
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    } else if (backend.kind === 'busy') {
      this.item.text = `$(loading~spin) DLM: ${backend.text}`;
    } else {
      const parts = [backend.model, backend.where];
      if (inputs.cacheModes) parts.push(cache ?? 'default cache');
      if (backend.latencyMs !== undefined) parts.push(`${Math.round(backend.latencyMs)} ms latency`);
      if (lastFill) parts.push(`${Math.round(lastFill.tokensPerSecond)} tok/s ${Math.round(lastFill.ms)} ms`);
      const icon = backend.warning ? '$(warning)' : paused ? '$(debug-pause)' : '$(sparkle)';
      this.item.text = `${icon} DLM ${parts.join(' · ')}`;
      if (backend.warning) this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
    }
    this.item.tooltip = tooltip(inputs, cache);
  }

  /** The click menu. */
  async showMenu(actions: {
    inputs: StatusInputs;
    restartLabel: string;
    togglePause: () => void;
    showLogs: () => void;
    restart: () => Promise<void>;
  }): Promise<void> {
    const { inputs } = actions;
    const cache = StatusBar.cacheMode(inputs);
    const items: (vscode.QuickPickItem & { run: () => unknown })[] = [
      {
        label: '$(library) Choose model',
        description: inputs.backend.kind === 'ready' && inputs.cacheModes ? `now ${inputs.backend.model}` : undefined,
        run: () => vscode.commands.executeCommand('dlm.chooseModel'),
      },
      { label: '$(database) Manage models', run: () => vscode.commands.executeCommand('dlm.manageModels') },
      {
        label: '$(chip) Set up GPU acceleration',
        description: inputs.backend.kind === 'ready' && inputs.cacheModes ? `runs on ${inputs.backend.where}` : undefined,
        run: () => vscode.commands.executeCommand('dlm.setUpGpu'),
      },
      ...(inputs.cacheModes ? [{ label: '$(settings-gear) Switch cache mode', description: `now ${cache ?? 'the model default'}`, run: () => selectCacheMode() }] : []),
      inputs.paused
        ? { label: '$(play) Resume completions', run: actions.togglePause }
        : { label: '$(debug-pause) Pause completions', run: actions.togglePause },
      { label: '$(output) Show logs', run: actions.showLogs },
      { label: `$(debug-restart) ${actions.restartLabel}`, run: actions.restart },
    ];
    const choice = await vscode.window.showQuickPick(items, { title: 'DLM Complete', placeHolder: 'Choose an action' });
    await choice?.run();
  }

  dispose(): void {
    this.item.dispose();
  }
}

function tooltip(inputs: StatusInputs, cache: CacheMode | undefined): vscode.MarkdownString {
  const { backend, paused, lastFill } = inputs;
  const lines: string[] = ['**DLM Complete**', '', ...backend.tooltip];
  if (backend.kind === 'ready' && backend.warning) lines.push(`Last request failed: ${backend.warning}`);
  if (inputs.cacheModes) lines.push(`Cache mode: ${cache ?? 'the model default'}`);
  if (lastFill) {
    const engine = lastFill.engine;
    lines.push(`Last fill: ${lastFill.summary}${engine ? `, ${engine.graphCalls} graph calls over ${engine.rowsComputed} rows` : ''}`);
    if (engine?.canvasTokenLimit !== undefined && engine.msPerCall !== undefined && engine.msPerRow !== undefined) {
      lines.push(
        `Context sized to this device: at most ${engine.canvasTokenLimit} tokens with the fill, so a completion ` +
          `computed from scratch takes about ${(inputs.settings.coldRequestBudgetMs / 1000).toFixed(1)} s at most ` +
          `(measured: ${Math.round(engine.msPerCall)} ms a step plus ${engine.msPerRow} ms a row` +
          `${engine.msPerContextRow ? ` and ${engine.msPerContextRow} ms a cached row` : ''}; ` +
          `\`dlm.coldRequestBudgetMs\`)`,
      );
    }
  }
  if (paused) lines.push('Completions are paused.');
  lines.push('', 'Click for actions.');
  return new vscode.MarkdownString(lines.join('  \n'));
}

/** Quick pick of the cache modes; writes `dlm.cacheMode` where it is set (else in the user settings). */
export async function selectCacheMode(): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const now = config.get<string>(CACHE_SETTING);
  const choice = await vscode.window.showQuickPick(
    CACHE_MODES.map((mode, i) => ({ label: mode, detail: DECODING_OPTION_SCHEMA.cache.valueDescriptions[i], picked: mode === now })),
    { title: 'DLM: cache mode', placeHolder: `Now ${now}` },
  );
  if (!choice) return;
  await updateSetting(CACHE_SETTING, choice.label);
}

/**
 * The status bar item (model, device, cache mode, speed of the last fill) and the menu its click opens:
 * switch the cache mode, pause or resume completions, show the logs, restart the engine.
 */
import * as vscode from 'vscode';
import { CACHE_MODES, type CacheMode, type InfillStats } from '../engine/protocol';
import type { EngineState } from './engineSupervisor';
import type { ModelState } from './modelSession';
import { SECTION, updateSetting, type DlmSettings } from './settings';

export const MENU_COMMAND = 'dlm.showMenu';

export interface StatusInputs {
  engine: EngineState;
  model: ModelState;
  settings: DlmSettings;
  paused: boolean;
  lastStats: InfillStats | undefined;
}

const CACHE_MODE_DESCRIPTIONS: Record<CacheMode, string> = {
  none: 'recompute the whole canvas every step',
  decode: "dKV-Cache-Decode: reuse decoded tokens' keys/values, refresh every N steps",
  greedy: 'dKV-Cache-Greedy: reuse everything, recompute a window around the next tokens',
  prefill: 'compute the code around the hole once per request',
  'block-prefix': 'Fast-dLLM PrefixCache: per block, cache the code left of it, recompute the block and the rest',
  'block-dual': 'Fast-dLLM DualCache: per block, cache everything else, recompute only the block',
};

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('dlm.status', vscode.StatusBarAlignment.Right, 100);

  constructor() {
    this.item.name = 'DLM Complete';
    this.item.command = MENU_COMMAND;
    this.item.show();
  }

  /** The cache mode requests use: the setting when set, else the model's default. */
  static cacheMode(inputs: Pick<StatusInputs, 'model' | 'settings'>): CacheMode | undefined {
    return inputs.settings.decoding.cache ?? (inputs.model.kind === 'ready' ? inputs.model.info.defaults.cache : undefined);
  }

  update(inputs: StatusInputs): void {
    const { engine, model, paused, lastStats } = inputs;
    const cache = StatusBar.cacheMode(inputs);
    this.item.backgroundColor = undefined;
    if (engine.kind === 'failed' || model.kind === 'failed') {
      this.item.text = '$(error) DLM';
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    } else if (engine.kind === 'restarting') {
      this.item.text = '$(sync~spin) DLM: restarting engine';
    } else if (model.kind !== 'ready') {
      this.item.text = '$(loading~spin) DLM: loading';
    } else {
      // A device `auto` did not get (or one asked for and unusable) is flagged; the tooltip says why.
      const device = model.info.deviceFallbackReason ? `${model.info.device} $(info)` : model.info.device;
      const parts = [model.info.name, device, cache ?? 'default cache'];
      if (lastStats) parts.push(`${Math.round(lastStats.tokensPerSecond)} tok/s ${Math.round(lastStats.ms)} ms`);
      this.item.text = `${paused ? '$(debug-pause)' : '$(sparkle)'} DLM ${parts.join(' · ')}`;
    }
    this.item.tooltip = tooltip(inputs, cache);
  }

  /** The click menu. */
  async showMenu(actions: {
    inputs: StatusInputs;
    togglePause: () => void;
    showLogs: () => void;
    restartEngine: () => Promise<void>;
  }): Promise<void> {
    const { inputs } = actions;
    const items: (vscode.QuickPickItem & { run: () => unknown })[] = [
      {
        label: '$(library) Choose model',
        description: inputs.model.kind === 'ready' ? `now ${inputs.model.info.name}` : undefined,
        run: () => vscode.commands.executeCommand('dlm.chooseModel'),
      },
      { label: '$(database) Manage models', run: () => vscode.commands.executeCommand('dlm.manageModels') },
      {
        label: '$(chip) Set up GPU acceleration',
        description: inputs.model.kind === 'ready' ? `runs on ${inputs.model.info.device}` : undefined,
        run: () => vscode.commands.executeCommand('dlm.setUpGpu'),
      },
      {
        label: '$(settings-gear) Switch cache mode',
        description: `now ${StatusBar.cacheMode(inputs) ?? 'the model default'}`,
        run: () => selectCacheMode(),
      },
      inputs.paused
        ? { label: '$(play) Resume completions', run: actions.togglePause }
        : { label: '$(debug-pause) Pause completions', run: actions.togglePause },
      { label: '$(output) Show logs', run: actions.showLogs },
      { label: '$(debug-restart) Restart engine', run: actions.restartEngine },
    ];
    const choice = await vscode.window.showQuickPick(items, { title: 'DLM Complete', placeHolder: 'Choose an action' });
    await choice?.run();
  }

  dispose(): void {
    this.item.dispose();
  }
}

function tooltip(inputs: StatusInputs, cache: CacheMode | undefined): vscode.MarkdownString {
  const { engine, model, paused, lastStats } = inputs;
  const lines: string[] = ['**DLM Complete**', ''];
  if (engine.kind === 'failed') lines.push(`Engine stopped: ${engine.message}`);
  else if (engine.kind === 'restarting') lines.push(`Engine crashed ${engine.crashes} time(s); restarting.`);
  if (model.kind === 'ready') {
    lines.push(`Model: ${model.info.name} (${model.info.family})`);
    lines.push(`Device: ${model.info.device}`);
    // The engine joins one reason per device tried ("cuda: ...; webgpu: ...").
    for (const reason of model.info.deviceFallbackReason?.split(/; (?=\w+: )/) ?? []) lines.push(`Not used: ${reason}`);
  } else if (model.kind === 'loading') {
    lines.push(`Loading model ${model.model}...`);
  } else if (model.kind === 'failed') {
    lines.push(`Model ${model.model} could not be loaded: ${model.message}`);
  }
  lines.push(`Cache mode: ${cache ?? 'the model default'}`);
  if (lastStats) {
    lines.push(
      `Last fill: ${lastStats.genTokens} tokens in ${lastStats.steps} steps, ${Math.round(lastStats.ms)} ms ` +
        `(${Math.round(lastStats.tokensPerSecond)} tokens/s), cache ${lastStats.cache} on ${lastStats.device}, ` +
        `${lastStats.graphCalls} graph calls over ${lastStats.rowsComputed} rows`,
    );
  }
  if (paused) lines.push('Completions are paused.');
  lines.push('', 'Click for actions.');
  return new vscode.MarkdownString(lines.join('  \n'));
}

/** Quick pick of the cache modes; writes `dlm.cacheMode` where it is set (else in the user settings). */
export async function selectCacheMode(): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const now = config.get<string>('cacheMode');
  const choice = await vscode.window.showQuickPick(
    CACHE_MODES.map((mode) => ({ label: mode, description: CACHE_MODE_DESCRIPTIONS[mode], picked: mode === now })),
    { title: 'DLM: cache mode', placeHolder: `Now ${now}` },
  );
  if (!choice) return;
  await updateSetting('cacheMode', choice.label);
}

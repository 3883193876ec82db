/**
 * Activation: wires the engine supervisor, the model session, inline completions, block infill, the status
 * bar and the settings together, and registers the commands. The returned object is the extension's API,
 * used by its tests running in the extension host.
 */
import * as vscode from 'vscode';
import type { InfillStats } from '../engine/protocol';
import { BlockInfill } from './blockInfill';
import { EngineSupervisor } from './engineSupervisor';
import { FillHistory } from './fillHistory';
import { HuggingFaceToken } from './huggingFaceToken';
import { InfillDecorations } from './infillDecorations';
import { ACCEPT_COMMAND, ACCEPTED_COMMAND, DlmInlineCompletionProvider, type AcceptKind } from './inlineCompletionProvider';
import { ModelSession } from './modelSession';
import { OutputLog } from './outputLog';
import { PromptWarmup } from './promptWarmup';
import { affectsModel, readSettings, SECTION, type DlmSettings, type SettingProblem } from './settings';
import { MENU_COMMAND, selectCacheMode, StatusBar } from './statusBar';

const PAUSED_KEY = 'dlm.paused';
/** A model or device change loads the model after this pause, so typing a path does not load every prefix of it. */
const MODEL_RELOAD_DELAY_MS = 500;

export interface DlmExtensionApi {
  readonly supervisor: EngineSupervisor;
  readonly session: ModelSession;
  readonly provider: DlmInlineCompletionProvider;
  readonly warmup: PromptWarmup;
  readonly blockInfill: BlockInfill;
  readonly fillHistory: FillHistory;
  settings(): DlmSettings;
  lastStats(): InfillStats | undefined;
}

let supervisor: EngineSupervisor | undefined;

export function activate(context: vscode.ExtensionContext): DlmExtensionApi {
  const log = new OutputLog();
  let { settings, problems } = readSettings();
  let reportedProblems = reportProblems(problems, new Set(), log);
  let paused = context.globalState.get<boolean>(PAUSED_KEY, false);
  let lastStats: InfillStats | undefined;

  supervisor = new EngineSupervisor({
    enginePath: context.asAbsolutePath('dist/engine/main.js'),
    // stderr carries warnings and crash traces; the full log arrives as `dlm/log` notifications.
    args: ['serve', '--log-level', 'warn', '--cache-dir', vscode.Uri.joinPath(context.globalStorageUri, 'models').fsPath],
    cwd: context.extensionPath,
    log,
  });
  const engine = supervisor;
  const huggingFaceToken = new HuggingFaceToken(context.secrets);
  const session = new ModelSession(engine, log, () => settings, () => huggingFaceToken.get());
  const statusBar = new StatusBar();
  const refreshStatus = () => statusBar.update({ engine: engine.state, model: session.state, settings, paused, lastStats });
  const onResult = (result: { stats: InfillStats }) => {
    lastStats = result.stats;
    refreshStatus();
  };

  const decorations = new InfillDecorations();
  const history = new FillHistory();
  const blockInfill = new BlockInfill({ session, log, settings: () => settings, decorations, history, onResult });
  const provider = new DlmInlineCompletionProvider({
    session,
    log,
    settings: () => settings,
    isPaused: () => paused,
    blockFillActiveIn: (uri) => blockInfill.isActiveIn(uri),
    onResult,
  });
  const warmup = new PromptWarmup({ session, log, settings: () => settings, isPaused: () => paused });

  const togglePause = () => {
    paused = !paused;
    void context.globalState.update(PAUSED_KEY, paused);
    log.info(paused ? 'Completions paused.' : 'Completions resumed.');
    refreshStatus();
  };
  const restartEngine = async () => {
    log.info('Restarting the engine (requested).');
    await engine.restart();
  };

  context.subscriptions.push(
    log,
    engine,
    session,
    statusBar,
    decorations,
    history,
    blockInfill,
    provider,
    warmup,
    vscode.languages.registerInlineCompletionItemProvider({ pattern: '**' }, provider),
    engine.onDidChangeState(refreshStatus),
    session.onDidChangeState(refreshStatus),
    vscode.commands.registerCommand(ACCEPT_COMMAND, (kind: AcceptKind = 'all') => provider.accept(kind)),
    vscode.commands.registerCommand(ACCEPTED_COMMAND, () => warmup.completionAccepted()),
    vscode.commands.registerCommand('dlm.fillSelection', (options?: { length?: number }) => blockInfill.fillSelection(options)),
    vscode.commands.registerCommand('dlm.redenoiseSelection', () => blockInfill.redenoiseSelection()),
    vscode.commands.registerCommand('dlm.acceptFill', () => blockInfill.accept()),
    vscode.commands.registerCommand('dlm.discardFill', () => blockInfill.discard()),
    vscode.commands.registerCommand('dlm.selectCacheMode', selectCacheMode),
    vscode.commands.registerCommand('dlm.togglePause', togglePause),
    vscode.commands.registerCommand('dlm.showLogs', () => log.show()),
    vscode.commands.registerCommand('dlm.restartEngine', restartEngine),
    vscode.commands.registerCommand('dlm.setHuggingFaceToken', async () => {
      if (!(await huggingFaceToken.ask())) return;
      log.info('Hugging Face token stored; loading the model again.');
      session.reload();
    }),
    vscode.commands.registerCommand('dlm.clearHuggingFaceToken', async () => {
      await huggingFaceToken.clear();
      log.info('Hugging Face token removed.');
    }),
    vscode.commands.registerCommand(MENU_COMMAND, () =>
      statusBar.showMenu({
        inputs: { engine: engine.state, model: session.state, settings, paused, lastStats },
        togglePause,
        showLogs: () => log.show(),
        restartEngine,
      }),
    ),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration(SECTION)) return;
      ({ settings, problems } = readSettings());
      reportedProblems = reportProblems(problems, reportedProblems, log);
      log.info(`Settings changed: model ${settings.model} on ${settings.device}, decoding ${JSON.stringify(settings.decoding)}.`);
      if (affectsModel(event)) session.reload(MODEL_RELOAD_DELAY_MS);
      refreshStatus();
    }),
  );

  refreshStatus();
  engine.start();
  return {
    supervisor: engine,
    session,
    provider,
    warmup,
    blockInfill,
    fillHistory: history,
    settings: () => settings,
    lastStats: () => lastStats,
  };
}

export async function deactivate(): Promise<void> {
  await supervisor?.stop();
  supervisor = undefined;
}

/**
 * Shows each settings problem once (until it is fixed and comes back), with a way to the settings.
 * Returns the problems now reported.
 */
function reportProblems(problems: SettingProblem[], alreadyReported: Set<string>, log: OutputLog): Set<string> {
  const now = new Set(problems.map((p) => `${p.key}: ${p.message}`));
  const fresh = [...now].filter((p) => !alreadyReported.has(p));
  for (const problem of fresh) log.warn(`Setting ${problem}`);
  if (fresh.length > 0) {
    void vscode.window
      .showWarningMessage(`DLM settings: ${fresh.join(' ')}`, 'Open Settings')
      .then((choice) => choice && vscode.commands.executeCommand('workbench.action.openSettings', SECTION));
  }
  return now;
}

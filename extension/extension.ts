/**
 * Activation: wires the backends (the supervised engine with its model session, and the team server), the
 * switch between them, inline completions, block infill, the status bar and the settings together, and
 * registers the commands. The returned object is the extension's API, used by its tests running in the
 * extension host.
 */
import * as vscode from 'vscode';
import type { InfillStats } from '../common/protocol';
import { BackendSwitch } from './backendSwitch';
import { BlockInfill } from './blockInfill';
import type { FillResult, FillStats } from './completionBackend';
import { EngineSupervisor } from './engineSupervisor';
import { FillHistory } from './fillHistory';
import { GpuSetup, gpuProviderDir, gpuProviderEnv } from './gpuSetup';
import { HuggingFaceToken } from './huggingFaceToken';
import { InfillDecorations } from './infillDecorations';
import { ACCEPT_COMMAND, ACCEPTED_COMMAND, DlmInlineCompletionProvider, type AcceptKind } from './inlineCompletionProvider';
import { LocalBackend } from './localBackend';
import { ManageModels } from './manageModels';
import { ModelDownloads } from './modelDownloads';
import { CHOOSE_MODEL_COMMAND, ModelPicker, type ChooseModelOptions } from './modelPicker';
import { ModelSession } from './modelSession';
import { visibleQuickPick } from './quickPicks';
import { OPEN_EXAMPLE_COMMAND, openExample } from './walkthroughExample';
import { OutputLog } from './outputLog';
import { RemoteBackend } from './remoteBackend';
import { PromptWarmup } from './promptWarmup';
import { ServerApiKey } from './serverApiKey';
import { affectsModel, affectsServer, readSettings, SECTION, type DlmSettings, type SettingProblem } from './settings';
import { MENU_COMMAND, selectCacheMode, StatusBar } from './statusBar';

const PAUSED_KEY = 'dlm.paused';
/** A model, device or server change takes effect after this pause, so typing a path or address does not try every prefix of it. */
const MODEL_RELOAD_DELAY_MS = 500;

export interface DlmExtensionApi {
  readonly supervisor: EngineSupervisor;
  readonly session: ModelSession;
  /** The backend that answers (dlm.backend), as the providers see it. */
  readonly backend: BackendSwitch;
  readonly serverApiKey: ServerApiKey;
  readonly provider: DlmInlineCompletionProvider;
  readonly warmup: PromptWarmup;
  readonly blockInfill: BlockInfill;
  readonly fillHistory: FillHistory;
  readonly downloads: ModelDownloads;
  readonly gpuSetup: GpuSetup;
  /** The extension's quick pick on screen (model picker, model manager), for tests to read and accept. */
  visibleQuickPick: typeof visibleQuickPick;
  settings(): DlmSettings;
  /** The last fill's stats, whichever backend made it. */
  lastFill(): FillStats | undefined;
  /** The local engine's own stats of the last fill, when the engine made it. */
  lastStats(): InfillStats | undefined;
}

let supervisor: EngineSupervisor | undefined;

export function activate(context: vscode.ExtensionContext): DlmExtensionApi {
  const log = new OutputLog();
  let { settings, problems } = readSettings();
  let reportedProblems = reportProblems(problems, new Set(), log);
  let paused = context.globalState.get<boolean>(PAUSED_KEY, false);
  let lastFill: FillStats | undefined;

  const gpuDir = gpuProviderDir(context.globalStorageUri);
  supervisor = new EngineSupervisor({
    enginePath: context.asAbsolutePath('dist/engine/main.js'),
    env: () => gpuProviderEnv(gpuDir),
    // stderr carries warnings and crash traces; the full log arrives as `dlm/log` notifications.
    args: ['serve', '--log-level', 'warn', '--cache-dir', vscode.Uri.joinPath(context.globalStorageUri, 'models').fsPath],
    cwd: context.extensionPath,
    log,
  });
  const engine = supervisor;
  const huggingFaceToken = new HuggingFaceToken(context.secrets);
  const serverApiKey = new ServerApiKey(context.secrets);
  const session = new ModelSession(engine, log, () => settings, () => huggingFaceToken.get());
  const backend = new BackendSwitch(new LocalBackend(engine, session), new RemoteBackend({ log, settings: () => settings, apiKey: serverApiKey }));
  const downloads = new ModelDownloads(engine, log, context.globalState, () => settings, () => huggingFaceToken.get());
  const picker = new ModelPicker(engine, downloads, () => settings, log);
  const manager = new ManageModels(engine, downloads, () => settings, log);
  const gpuSetup = new GpuSetup(engine, session, gpuDir, log);
  const statusBar = new StatusBar();
  const statusInputs = () => ({ backend: backend.status, cacheModes: backend.cacheModes, settings, paused, lastFill });
  const refreshStatus = () => statusBar.update(statusInputs());
  const onResult = (result: FillResult) => {
    lastFill = result.stats;
    refreshStatus();
  };

  const decorations = new InfillDecorations();
  const history = new FillHistory();
  const blockInfill = new BlockInfill({ backend, log, settings: () => settings, decorations, history, onResult });
  const provider = new DlmInlineCompletionProvider({
    backend,
    log,
    settings: () => settings,
    isPaused: () => paused,
    blockFillActiveIn: (uri) => blockInfill.isActiveIn(uri),
    onResult,
  });
  const warmup = new PromptWarmup({ session, log, settings: () => settings, isPaused: () => paused || backend.kind !== 'local' });

  const togglePause = () => {
    paused = !paused;
    void context.globalState.update(PAUSED_KEY, paused);
    log.info(paused ? 'Completions paused.' : 'Completions resumed.');
    refreshStatus();
  };
  const restart = async () => {
    log.info(`${backend.restartLabel} (requested).`);
    await backend.restart();
  };

  context.subscriptions.push(
    log,
    engine,
    session,
    backend.local,
    backend.remote,
    backend,
    downloads,
    statusBar,
    decorations,
    history,
    blockInfill,
    provider,
    warmup,
    vscode.languages.registerInlineCompletionItemProvider({ pattern: '**' }, provider),
    backend.onDidChangeStatus(refreshStatus),
    engine.onDidChangeState((state) => {
      if (state.kind !== 'failed') return;
      void vscode.window.showErrorMessage(state.message, 'Retry', 'Show Logs').then((choice) => {
        if (choice === 'Retry') engine.start();
        if (choice === 'Show Logs') log.show();
      });
    }),
    vscode.commands.registerCommand(ACCEPT_COMMAND, (kind: AcceptKind = 'all') => provider.accept(kind)),
    vscode.commands.registerCommand(ACCEPTED_COMMAND, () => warmup.completionAccepted()),
    vscode.commands.registerCommand('dlm.fillSelection', (options?: { length?: number }) => blockInfill.fillSelection(options)),
    vscode.commands.registerCommand('dlm.redenoiseSelection', () => blockInfill.redenoiseSelection()),
    vscode.commands.registerCommand('dlm.acceptFill', () => blockInfill.accept()),
    vscode.commands.registerCommand('dlm.discardFill', () => blockInfill.discard()),
    vscode.commands.registerCommand('dlm.selectCacheMode', selectCacheMode),
    vscode.commands.registerCommand('dlm.togglePause', togglePause),
    vscode.commands.registerCommand('dlm.showLogs', () => log.show()),
    vscode.commands.registerCommand('dlm.restartEngine', async () => {
      if (backend.kind !== 'local') {
        void vscode.window.showInformationMessage('DLM: the local engine is not in use (dlm.backend is remote); the server answers.');
        return;
      }
      log.info('Restarting the engine (requested).');
      await engine.restart();
    }),
    vscode.commands.registerCommand('dlm.setHuggingFaceToken', async () => {
      if (!(await huggingFaceToken.ask())) return;
      log.info('Hugging Face token stored; loading the model again.');
      session.reload();
    }),
    vscode.commands.registerCommand('dlm.clearHuggingFaceToken', async () => {
      await huggingFaceToken.clear();
      log.info('Hugging Face token removed.');
    }),
    vscode.commands.registerCommand('dlm.setServerApiKey', async () => {
      if (await serverApiKey.ask()) log.info('Server API key stored.');
    }),
    vscode.commands.registerCommand('dlm.clearServerApiKey', async () => {
      await serverApiKey.clear();
      log.info('Server API key removed.');
    }),
    serverApiKey.onDidChange(() => {
      if (backend.kind === 'remote') backend.remote.reconnect();
    }),
    vscode.commands.registerCommand(CHOOSE_MODEL_COMMAND, (options?: ChooseModelOptions) => picker.choose(options)),
    vscode.commands.registerCommand('dlm.manageModels', () => manager.manage()),
    vscode.commands.registerCommand('dlm.setUpGpu', () => gpuSetup.run()),
    vscode.commands.registerCommand(OPEN_EXAMPLE_COMMAND, () => openExample(context.extensionUri)),
    vscode.commands.registerCommand(MENU_COMMAND, () =>
      statusBar.showMenu({ inputs: statusInputs(), restartLabel: backend.restartLabel, togglePause, showLogs: () => log.show(), restart }),
    ),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration(SECTION)) return;
      ({ settings, problems } = readSettings());
      reportedProblems = reportProblems(problems, reportedProblems, log);
      log.info(
        settings.backend === 'remote'
          ? `Settings changed: server ${settings.server.url} (${settings.server.api} API), decoding ${JSON.stringify(settings.decoding)}.`
          : `Settings changed: model ${settings.model} on ${settings.device}, decoding ${JSON.stringify(settings.decoding)}.`,
      );
      if (settings.backend !== backend.kind) void backend.select(settings.backend);
      else if (settings.backend === 'local' && affectsModel(event)) session.reload(MODEL_RELOAD_DELAY_MS);
      else if (settings.backend === 'remote' && affectsServer(event)) backend.remote.reconnect(MODEL_RELOAD_DELAY_MS);
      refreshStatus();
    }),
  );

  void backend.select(settings.backend);
  refreshStatus();
  return {
    supervisor: engine,
    session,
    backend,
    serverApiKey,
    provider,
    warmup,
    blockInfill,
    fillHistory: history,
    downloads,
    gpuSetup,
    visibleQuickPick,
    settings: () => settings,
    lastFill: () => lastFill,
    lastStats: () => lastFill?.engine,
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

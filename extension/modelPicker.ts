/**
 * DLM: Choose Model: a quick pick of the code DLMs the converter supports, each with its download, the memory
 * at the precision it would run at, its licence and this machine's verdict (modelVerdicts.ts), the recommended
 * model first; plus a Hugging Face id or a model folder of the user's own. A model already converted for the
 * device opens at once; any other is fetched as visible, resumable work (modelDownloads.ts).
 */
import * as vscode from 'vscode';
import { parseHubModelId } from '../common/hubModelId';
import type { CatalogueModel, MachineFacts } from '../common/protocol';
import type { EngineSupervisor } from './engineSupervisor';
import type { ModelDownloads } from './modelDownloads';
import { modelVerdict, recommendedModel, type ModelVerdict } from './modelVerdicts';
import type { OutputLog } from './outputLog';
import { pick } from './quickPicks';
import { updateSetting, type DlmSettings } from './settings';
import { formatBytes } from './transferProgress';

export const CHOOSE_MODEL_COMMAND = 'dlm.chooseModel';

export interface ChooseModelOptions {
  /** Machine facts to judge by instead of the engine's measurement (tests). */
  machine?: MachineFacts;
}

export type ModelPickItem = vscode.QuickPickItem &
  ({ kind?: undefined; model: CatalogueModel; verdict: ModelVerdict } | { kind?: undefined; other: 'hubId' | 'folder' } | { kind: vscode.QuickPickItemKind.Separator });

/** "7.6B" / "494M" / "5.0M" parameters. */
function parameterText(parameters: number): string {
  return parameters >= 1e9 ? `${(parameters / 1e9).toFixed(1)}B` : `${Math.round(parameters / 1e6)}M`;
}

const VERDICT_ICONS: Record<ModelVerdict['kind'], string> = { gpu: '$(pass-filled)', cpu: '$(pass)', tooLarge: '$(error)' };

/** The picker's items: the recommended model first, then the others that fit, then those too large. */
export function modelPickItems(catalogue: CatalogueModel[], machine: MachineFacts, current: string): ModelPickItem[] {
  const recommended = recommendedModel(catalogue, machine);
  const judged = catalogue.map((model) => ({ model, verdict: modelVerdict(model, machine) }));
  const rank = ({ model, verdict }: (typeof judged)[number]) => (model.id === recommended ? 0 : verdict.kind === 'tooLarge' ? 2 : 1);
  const ordered = judged.map((entry, index) => ({ ...entry, index })).sort((a, b) => rank(a) - rank(b) || a.index - b.index);
  const items: ModelPickItem[] = ordered.map(({ model, verdict }) => {
    const marks = [model.id === recommended ? '$(star-full) ' : '', model.local.ready ? '$(check) ' : ''].join('');
    const state = model.local.ready
      ? model.downloadBytes > 0
        ? 'downloaded and converted: opens at once'
        : 'built in: opens at once'
      : model.local.downloadComplete
        ? 'downloaded: converts in a few minutes'
        : model.local.downloadedBytes > 0
          ? `partly downloaded (${formatBytes(model.local.downloadedBytes)} of ${formatBytes(model.downloadBytes)}): resumes`
          : '';
    const disk = verdict.diskShort ? `$(warning) not enough disk: needs ${formatBytes(verdict.diskNeededBytes)}` : '';
    const score = model.infillScore ? `HumanEval-Infill ${model.infillScore.value}` : '';
    return {
      model,
      verdict,
      label: `${marks}${model.name}${model.id === current ? ' (in use)' : ''}`,
      description: [
        `${parameterText(model.parameters)} parameters`,
        model.downloadBytes > 0 ? `${formatBytes(model.downloadBytes)} download` : 'no download',
        `${verdict.need.precision} ${formatBytes(verdict.need.totalBytes)} in memory`,
        model.licence,
      ].join(' · '),
      detail: [`${VERDICT_ICONS[verdict.kind]} ${verdict.summary}`, disk, state, score].filter(Boolean).join(' · '),
    };
  });
  return [
    ...items,
    { kind: vscode.QuickPickItemKind.Separator, label: 'Other models' },
    { other: 'hubId', label: '$(cloud-download) Hugging Face id...', detail: 'Any checkpoint the converter supports, e.g. Dream-org/Dream-Coder-v0-Instruct-7B@main' },
    { other: 'folder', label: '$(folder-opened) Model folder...', detail: 'A converted model folder (dlm-model.json) or a Hugging Face checkpoint folder on this machine' },
  ];
}

export class ModelPicker {
  constructor(
    private readonly supervisor: EngineSupervisor,
    private readonly downloads: ModelDownloads,
    private readonly settings: () => DlmSettings,
    private readonly log: OutputLog,
  ) {}

  async choose(options: ChooseModelOptions = {}): Promise<void> {
    const engine = this.supervisor.state;
    if (engine.kind !== 'running') {
      void vscode.window.showWarningMessage('DLM: the engine is not running yet; try again in a moment.');
      return;
    }
    const { client } = engine;
    const settings = this.settings();
    const items = Promise.all([client.modelCatalogue(settings.device), options.machine ?? client.machineFacts()]).then(([catalogue, machine]) =>
      modelPickItems(catalogue, machine, settings.model),
    );
    let choice: ModelPickItem | undefined;
    try {
      choice = await pick<ModelPickItem>({
        title: 'DLM: Choose Model',
        placeholder: 'Code diffusion models, with what each needs and how it fits this machine',
        items,
      });
    } catch (error) {
      void vscode.window.showErrorMessage(`DLM: cannot list the models: ${(error as Error).message}`);
      return;
    }
    if (!choice || choice.kind === vscode.QuickPickItemKind.Separator) return;
    if ('other' in choice) return choice.other === 'hubId' ? this.chooseHubId() : this.chooseFolder();
    await this.use(choice.model, choice.verdict);
  }

  private async use(model: CatalogueModel, verdict: ModelVerdict): Promise<void> {
    if (model.local.ready) {
      this.log.info(`Model chosen: ${model.id} (on disk).`);
      await updateSetting('model', model.id);
      return;
    }
    if (verdict.diskShort) {
      const choice = await vscode.window.showErrorMessage(
        `DLM: ${model.name} needs about ${formatBytes(verdict.diskNeededBytes)} of disk (download and conversion); the disk has less free. Free some space first.`,
        'Manage Models',
      );
      if (choice) void vscode.commands.executeCommand('dlm.manageModels');
      return;
    }
    if (verdict.kind === 'tooLarge') {
      const go = await vscode.window.showWarningMessage(
        `DLM: ${model.name} is too large for this machine: ${verdict.summary}. Download it anyway?`,
        { modal: true },
        'Download Anyway',
      );
      if (!go) return;
    }
    if (verdict.gpuNeedsSetup) {
      void vscode.window
        .showInformationMessage(`DLM: ${model.name} fits your GPU once GPU acceleration is set up.`, 'Set Up GPU Acceleration')
        .then((choice) => choice && vscode.commands.executeCommand('dlm.setUpGpu'));
    }
    this.log.info(`Model chosen: ${model.id}; downloading ${formatBytes(model.downloadBytes - model.local.downloadedBytes)}.`);
    await this.downloads.start({ model: model.id, name: model.name, device: this.settings().device });
  }

  private async chooseHubId(): Promise<void> {
    const id = await vscode.window.showInputBox({
      title: 'DLM: Hugging Face model id',
      prompt: 'owner/name, optionally @revision; downloaded and converted once',
      placeHolder: 'Dream-org/Dream-Coder-v0-Instruct-7B',
      ignoreFocusOut: true,
      validateInput: (value) => (parseHubModelId(value) ? undefined : 'An id is owner/name (letters, digits, - _ .), optionally @revision.'),
    });
    if (!id) return;
    await this.downloads.start({ model: id.trim(), name: id.trim(), device: this.settings().device });
  }

  private async chooseFolder(): Promise<void> {
    const folders = await vscode.window.showOpenDialog({
      title: 'DLM: a model folder or a Hugging Face checkpoint folder',
      canSelectFiles: false,
      canSelectFolders: true,
      canSelectMany: false,
      openLabel: 'Use This Model',
    });
    if (!folders?.[0]) return;
    await updateSetting('model', folders[0].fsPath);
  }
}

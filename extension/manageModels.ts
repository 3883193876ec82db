/**
 * DLM: Manage Models: what downloads and conversions take on disk (the engine's store), with sizes; choose one
 * to use it, resume it, show it in the file manager, or delete it (after a confirmation that names the size).
 * Models in use are marked and cannot be deleted.
 */
import * as vscode from 'vscode';
import { parseHubModelId } from '../common/hubModelId';
import type { StoredModel } from '../common/protocol';
import type { EngineClient } from './engineClient';
import type { EngineSupervisor } from './engineSupervisor';
import type { ModelDownloads } from './modelDownloads';
import type { OutputLog } from './outputLog';
import { pick } from './quickPicks';
import { updateSetting, type DlmSettings } from './settings';
import { formatBytes } from './transferProgress';

type StoredItem = vscode.QuickPickItem & { stored: StoredModel };
type ActionItem = vscode.QuickPickItem & { action: 'use' | 'resume' | 'reveal' | 'delete' };

function kindText(s: StoredModel): string {
  if (s.kind === 'download') return s.complete ? 'download' : 'partial download';
  return s.complete ? `converted, ${s.precision}` : 'unfinished conversion';
}

export class ManageModels {
  constructor(
    private readonly supervisor: EngineSupervisor,
    private readonly downloads: ModelDownloads,
    private readonly settings: () => DlmSettings,
    private readonly log: OutputLog,
  ) {}

  async manage(): Promise<void> {
    const engine = this.supervisor.state;
    if (engine.kind !== 'running') {
      void vscode.window.showWarningMessage('DLM: the engine is not running yet; try again in a moment.');
      return;
    }
    const { client } = engine;
    for (;;) {
      const stored = await client.listStoredModels();
      if (stored.length === 0) {
        const choice = await vscode.window.showInformationMessage('DLM: no models are downloaded or converted yet.', 'Choose Model');
        if (choice) void vscode.commands.executeCommand('dlm.chooseModel');
        return;
      }
      const total = stored.reduce((sum, s) => sum + s.bytes, 0);
      const chosen = await pick<StoredItem>({
        title: `DLM: Manage Models (${formatBytes(total)} on disk)`,
        placeholder: 'Choose a model to use, resume or delete it',
        items: stored.map((s) => ({
          stored: s,
          label: `${s.inUse ? '$(play-circle) ' : ''}${s.name}`,
          description: `${kindText(s)} · ${formatBytes(s.bytes)}${s.inUse ? ' · in use' : ''}`,
          detail: s.path,
        })),
      });
      if (!chosen) return;
      const done = await this.act(client, chosen.stored);
      if (done) return;
    }
  }

  /** Runs an action on one stored model; false to show the list again (after a delete). */
  private async act(client: EngineClient, s: StoredModel): Promise<boolean> {
    const hubId = parseHubModelId(s.name) ? s.name : undefined;
    const actions: ActionItem[] = [];
    if (s.complete && hubId) actions.push({ action: 'use', label: '$(play) Use this model', description: `sets dlm.model to ${hubId}` });
    if (!s.complete && s.kind === 'download' && hubId) actions.push({ action: 'resume', label: '$(cloud-download) Resume the download' });
    actions.push({ action: 'reveal', label: '$(folder-opened) Show in the file manager' });
    if (!s.inUse) actions.push({ action: 'delete', label: `$(trash) Delete (frees ${formatBytes(s.bytes)})` });
    const action = await pick<ActionItem>({ title: `DLM: ${s.name} (${kindText(s)})`, items: actions });
    switch (action?.action) {
      case undefined:
        return true;
      case 'use':
        await updateSetting('model', hubId);
        return true;
      case 'resume':
        void this.downloads.start({ model: hubId!, name: hubId!, device: this.settings().device });
        return true;
      case 'reveal':
        await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(s.path));
        return true;
      case 'delete':
        return this.delete(client, s);
    }
  }

  private async delete(client: EngineClient, s: StoredModel): Promise<boolean> {
    const confirm = await pick<vscode.QuickPickItem & { yes: boolean }>({
      title: `Delete ${s.name} (${kindText(s)}, ${formatBytes(s.bytes)})?`,
      items: [
        { yes: true, label: `$(trash) Delete ${formatBytes(s.bytes)}`, detail: s.path },
        { yes: false, label: 'Keep it' },
      ],
    });
    if (!confirm?.yes) return false;
    try {
      await client.deleteStoredModel(s.path);
      this.log.info(`Deleted ${s.path} (${formatBytes(s.bytes)}).`);
    } catch (error) {
      void vscode.window.showErrorMessage(`DLM: cannot delete ${s.name}: ${(error as Error).message}`);
    }
    return false;
  }
}

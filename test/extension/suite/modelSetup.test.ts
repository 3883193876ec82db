/**
 * Choosing, fetching and managing models inside a real VS Code, against a Hugging Face stand-in on 127.0.0.1
 * running in this extension host (dlm.huggingFaceEndpoint points the engine at it): the picker's verdicts for
 * made-up machines, a download with its progress, cancelled and resumed, resumed after the engine stopped under
 * it, failures that say what to do, and the stored models listed and deleted.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { DlmExtensionApi } from '../../../extension/extension';
import type { DownloadOutcome } from '../../../extension/modelDownloads';
import { writeFixtureCheckpoint } from '../../engine/convertFixtures';
import { HubTestServer } from '../../engine/hubTestServer';
import { dlmApi, waitFor } from './helpers';
import { GB, machine } from '../machineFacts';

const OPEN_DCODER = 'fredzzp/open-dcoder-0.5B';
const WEIGHTS = 'model.safetensors';

const WITH_8GB_GPU = machine({
  gpus: [{ name: 'NVIDIA Test GPU', memoryBytes: 8.6 * GB, freeMemoryBytes: 7.9 * GB, source: 'nvidia-smi' }],
  gpuDevices: [{ device: 'cuda', usable: true }],
});
const SMALL_CPU_ONLY = machine({ totalMemoryBytes: 8 * GB, availableMemoryBytes: 4 * GB });

type Item = vscode.QuickPickItem & { model?: { id: string } };

const UNIT_BYTES: Record<string, number> = { B: 1, kB: 1e3, MB: 1e6 };

/** The bytes received that a download's progress message says ("Downloading x: 12.3 kB of ..."), 0 before any. */
function progressBytes(message: string): number {
  const said = /^Downloading [^:]+: ([\d.]+) (B|kB|MB) of /.exec(message);
  return said ? Number(said[1]) * UNIT_BYTES[said[2]] : 0;
}

/** The extension's quick pick once its items are there. */
function openPick(api: DlmExtensionApi): Promise<vscode.QuickPick<Item>> {
  return waitFor('the quick pick with its items', () => {
    const pick = api.visibleQuickPick() as vscode.QuickPick<Item> | undefined;
    return pick && !pick.busy && pick.items.length > 0 ? pick : undefined;
  });
}

/** Accepts the item `choose` picks, as Enter on it would. */
async function acceptItem(api: DlmExtensionApi, choose: (item: Item) => boolean): Promise<void> {
  const pick = await openPick(api);
  const item = pick.items.find(choose);
  assert.ok(item, `no item in "${pick.title}": ${pick.items.map((i) => i.label).join(' | ')}`);
  pick.activeItems = [item];
  // The extension host sends quick pick changes to the workbench on its next turn (batched with a 0 ms timer);
  // after that turn the accept command travels behind them on the same channel.
  await new Promise((resolve) => setTimeout(resolve, 0));
  await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
  await waitFor('the quick pick to close', () => api.visibleQuickPick() !== pick);
}

function nextOutcome(api: DlmExtensionApi): Promise<DownloadOutcome> {
  return new Promise((resolve) => {
    const subscription = api.downloads.onDidFinish((outcome) => {
      subscription.dispose();
      resolve(outcome);
    });
  });
}

describe('choosing and fetching models (local Hugging Face stand-in)', function () {
  this.timeout(180_000);
  let api: DlmExtensionApi;
  let server: HubTestServer;
  let files: Record<string, Buffer>;
  let tmp: string;
  const config = () => vscode.workspace.getConfiguration('dlm');
  let configuredModel: string | undefined;

  before(async () => {
    api = await dlmApi();
    await api.session.ready();
    configuredModel = config().inspect<string>('model')?.globalValue;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-suite-hub-'));
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'open-dcoder');
    files = Object.fromEntries(fs.readdirSync(src.dir).map((name) => [name, fs.readFileSync(path.join(src.dir, name))]));
    server = new HubTestServer();
    server.addRepo(OPEN_DCODER, files, [WEIGHTS]);
    await server.start();
    await config().update('huggingFaceEndpoint', server.baseUrl, vscode.ConfigurationTarget.Global);
  });
  afterEach(async () => {
    api.visibleQuickPick()?.hide();
    server.faults.clear();
  });
  after(async () => {
    await config().update('huggingFaceEndpoint', undefined, vscode.ConfigurationTarget.Global);
    await config().update('model', configuredModel, vscode.ConfigurationTarget.Global);
    await waitFor('the configured model again', () => api.session.state.kind === 'ready' && api.session.state.model === configuredModel);
    await server.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('shows every model with its size, memory, licence and verdict for the machine, the recommended first', async () => {
    void vscode.commands.executeCommand('dlm.chooseModel', { machine: WITH_8GB_GPU });
    let items = (await openPick(api)).items;
    assert.match(items[0].label, /^\$\(star-full\) Dream-Coder 7B Instruct$/);
    assert.match(items[0].description!, /^7\.6B parameters · 15\.2 GB download · int4 5\.\d+ GB in memory · Apache-2\.0$/);
    assert.match(items[0].detail!, /fits on the GPU \(NVIDIA Test GPU: needs 5\.\d+ GB in int4, 7\.90 GB free\) · HumanEval-Infill 55\.3/);
    const builtin = items.find((i) => i.model?.id === 'builtin')!;
    assert.match(builtin.label, /\$\(check\) Built-in demo model/);
    assert.match(builtin.detail!, /built in: opens at once/);
    assert.ok(items.some((i) => i.label.includes('Hugging Face id...')) && items.some((i) => i.label.includes('Model folder...')));
    api.visibleQuickPick()!.hide();

    void vscode.commands.executeCommand('dlm.chooseModel', { machine: SMALL_CPU_ONLY });
    items = (await openPick(api)).items;
    assert.match(items[0].label, /^\$\(star-full\) Open-dCoder 0\.5B$/);
    assert.match(items[0].detail!, /fits in RAM on the CPU \(needs \d\.\d+ GB in int8, 4\.00 GB free\)/);
    const dream = items.find((i) => i.model?.id === 'Dream-org/Dream-Coder-v0-Instruct-7B')!;
    assert.match(dream.detail!, /\$\(error\) too large: needs 6\.\d+ GB \(5\.\d+ GB on a GPU\); 4\.00 GB of RAM free/);
    assert.ok(items.indexOf(dream) > items.findIndex((i) => i.model?.id === 'builtin'), 'models too large come after those that fit');
  });

  it('fetches the chosen model with progress in bytes; Cancel keeps the bytes, choosing it again resumes and uses it', async () => {
    server.faults.set(WEIGHTS, { bytesPerSecond: Math.ceil(files[WEIGHTS].length / 4) });
    void vscode.commands.executeCommand('dlm.chooseModel', { machine: SMALL_CPU_ONLY });
    await acceptItem(api, (i) => i.model?.id === OPEN_DCODER);
    await waitFor('the download', () => api.downloads.running?.model === OPEN_DCODER);
    await waitFor('progress with bytes, rate and time left', () =>
      /^Downloading fredzzp\/open-dcoder-0\.5B: [\d.]+ kB of [\d.]+ kB · [\d.]+ kB\/s · \d+ s left$/.test(api.downloads.lastProgress),
    );
    const cancelled = nextOutcome(api);
    api.downloads.cancel();
    assert.equal((await cancelled).kind, 'cancelled');
    assert.equal(api.downloads.pending, undefined, 'a cancelled download is not resumed by itself');

    server.faults.clear();
    void vscode.commands.executeCommand('dlm.chooseModel', { machine: SMALL_CPU_ONLY });
    const again = (await openPick(api)).items.find((i) => i.model?.id === OPEN_DCODER)!;
    assert.match(again.detail!, /partly downloaded \([\d.]+ kB of [\d.]+ (MB|GB)\): resumes/);
    const ready = nextOutcome(api);
    await acceptItem(api, (i) => i.model?.id === OPEN_DCODER);
    assert.equal((await ready).kind, 'ready');
    const resumed = server.requests((r) => r.path.startsWith('/cdn/') && r.range !== undefined);
    assert.equal(resumed.length, 1, 'the weights resumed where the cancel left them');
    assert.equal(config().get('model'), OPEN_DCODER, 'the model is now in use');
    await waitFor('the new model loaded', () => api.session.state.kind === 'ready' && api.session.state.model === OPEN_DCODER);

    void vscode.commands.executeCommand('dlm.chooseModel', { machine: SMALL_CPU_ONLY });
    const done = (await openPick(api)).items.find((i) => i.model?.id === OPEN_DCODER)!;
    assert.match(done.label, /\$\(check\) Open-dCoder 0\.5B \(in use\)/);
    assert.match(done.detail!, /downloaded and converted: opens at once/);
  });

  it('resumes a download when the engine that stopped under it is back (as after an editor restart)', async () => {
    server.addRepo('org/resume-me', files, [WEIGHTS]);
    server.faults.set(WEIGHTS, { bytesPerSecond: Math.ceil(files[WEIGHTS].length / 4) });
    server.log.length = 0;
    const interrupted = nextOutcome(api);
    void api.downloads.start({ model: 'org/resume-me', name: 'org/resume-me', device: 'cpu' });
    // The small files come first or last; only bytes beyond all of them (and a chunk's rounding) are weights.
    const otherFiles = Object.entries(files).reduce((n, [name, bytes]) => n + (name === WEIGHTS ? 0 : bytes.length), 0);
    await waitFor('the weights arriving', () => progressBytes(api.downloads.lastProgress) > otherFiles + 20_000);
    const state = api.supervisor.state;
    assert.equal(state.kind, 'running');
    const ready = new Promise<DownloadOutcome>((resolve) => {
      const subscription = api.downloads.onDidFinish((outcome) => {
        if (outcome.kind === 'interrupted') return;
        subscription.dispose();
        resolve(outcome);
      });
    });
    process.kill(state.kind === 'running' ? state.client.pid : 0, 'SIGKILL');
    assert.equal((await interrupted).kind, 'interrupted');
    // Only now at full speed: cleared before the kill, the rest could arrive whole before the engine stops.
    server.faults.clear();
    assert.equal(api.downloads.pending?.model, 'org/resume-me', 'remembered for the next engine');
    assert.equal((await ready).kind, 'ready');
    assert.ok(server.requests((r) => r.path.startsWith('/cdn/org/resume-me') && r.range !== undefined).length >= 1, 'resumed with a Range request');
    assert.equal(api.downloads.pending, undefined);
  });

  it('says what to do when the disk is full, the id is wrong or the model is gated', async () => {
    server.addRepo('org/huge', files, [WEIGHTS]);
    server.faults.set(WEIGHTS, { announceSize: 2 ** 60 });
    const full = await api.downloads.start({ model: 'org/huge', name: 'org/huge', device: 'cpu' });
    assert.equal(full.kind, 'failed');
    if (full.kind !== 'failed') return;
    assert.equal(full.reason, 'noDiskSpace');
    assert.match(full.message, /not enough disk space in .*: the rest of the download and its conversion needs about \d+\.\d\d GiB, \d+\.\d\d GiB is free/);
    assert.deepEqual(full.actions, ['Manage Models']);

    const wrong = await api.downloads.start({ model: 'org/no-such-model', name: 'org/no-such-model', device: 'cpu' });
    assert.deepEqual(wrong.kind === 'failed' && [wrong.reason, wrong.actions], ['notFound', ['Choose Another Model']]);
    assert.match(wrong.kind === 'failed' ? wrong.message : '', /org\/no-such-model has no config.json at revision main; is the id right\?/);

    server.addRepo('org/gated', files, [WEIGHTS], 'hf_secret');
    const gated = await api.downloads.start({ model: 'org/gated', name: 'org/gated', device: 'cpu' });
    assert.deepEqual(gated.kind === 'failed' && [gated.reason, gated.actions], ['gated', ['Set Hugging Face Token']]);
    assert.match(gated.kind === 'failed' ? gated.message : '', /gated or private \(HTTP 401\).*DLM: Set Hugging Face Token/);
  });

  it('lists the stored models with their sizes and deletes one', async () => {
    void vscode.commands.executeCommand('dlm.manageModels');
    const pick = await openPick(api);
    assert.match(pick.title!, /^DLM: Manage Models \([\d.]+ (kB|MB) on disk\)$/);
    const download = pick.items.find((i) => i.label === 'org/resume-me' && /^download · /.test(i.description!));
    assert.ok(download && !download.description!.endsWith('in use'), pick.items.map((i) => `${i.label} ${i.description}`).join(' | '));
    assert.ok(pick.items.some((i) => i.label.includes(OPEN_DCODER) && /^converted, int8 · [\d.]+ (kB|MB) · in use$/.test(i.description!)));
    await acceptItem(api, (i) => i === download);
    await acceptItem(api, (i) => /^\$\(trash\) Delete \(frees /.test(i.label));
    await acceptItem(api, (i) => /^\$\(trash\) Delete /.test(i.label));
    const after = await openPick(api);
    assert.ok(!after.items.some((i) => i.label === 'org/resume-me' && /^download · /.test(i.description!)), 'the download is gone');
    // Its label starts with an icon while the model is loaded (a model switch may still be unloading it).
    const listed = after.items.map((i) => `${i.label} (${i.description})`).join(' | ');
    assert.ok(after.items.some((i) => i.label.replace(/^\$\([\w-]+\) /, '') === 'org/resume-me' && /^converted/.test(i.description!)), `its converted model stays: ${listed}`);
  });
});

describe('GPU set-up (this machine)', () => {
  it('explains what the platform uses when there is nothing to fetch, and the engine keeps running', async function () {
    const api = await dlmApi();
    await api.session.ready();
    const facts = await (api.supervisor.state.kind === 'running' ? api.supervisor.state.client.machineFacts() : Promise.reject(new Error('no engine')));
    if (facts.gpus.some((gpu) => gpu.source === 'nvidia-smi')) this.skip(); // an NVIDIA machine fetches the provider instead
    const status = await api.gpuSetup.run();
    assert.equal(status?.applicable, false);
    assert.match(status!.explanation, process.platform === 'linux' ? /WebGPU \(Vulkan\)/ : /DirectML|Core ML|CPU provider/);
    assert.equal(api.supervisor.state.kind, 'running');
  });
});

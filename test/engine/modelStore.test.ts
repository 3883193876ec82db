import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parameterCount } from '../../engine/architecture/architecture';
import { detectFamily } from '../../engine/convert/families';
import { modelCatalogue } from '../../engine/store/modelCatalogue';
import { resolveModel } from '../../engine/store/modelManager';
import { deleteStoredModel, listStoredModels } from '../../engine/store/modelStore';
import { estimateWeightBytes } from '../../engine/graph/stepGraphBuilder';
import { writeFixtureCheckpoint } from './convertFixtures';
import { temporaryDir } from './graphTestSupport';
import { HubTestServer } from './hubTestServer';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const OPEN_DCODER = 'fredzzp/open-dcoder-0.5B';

/** The files of a checkpoint folder, as a hub repository serves them (safetensors as LFS objects). */
function repoFiles(dir: string): { files: Record<string, Buffer>; lfs: string[] } {
  const files: Record<string, Buffer> = {};
  for (const name of fs.readdirSync(dir)) files[name] = fs.readFileSync(path.join(dir, name));
  return { files, lfs: Object.keys(files).filter((f) => f.endsWith('.safetensors')) };
}

describe('model catalogue and stored models', function () {
  this.timeout(120_000);
  let tmp: string;
  let server: HubTestServer;
  const savedBuiltin = process.env.DLM_BUILTIN_MODEL;
  before(() => {
    process.env.DLM_BUILTIN_MODEL = path.join(REPO_ROOT, 'dist/models/builtin');
  });
  after(() => {
    if (savedBuiltin === undefined) delete process.env.DLM_BUILTIN_MODEL;
    else process.env.DLM_BUILTIN_MODEL = savedBuiltin;
  });
  beforeEach(async () => {
    tmp = temporaryDir('store');
    server = new HubTestServer();
    await server.start();
  });
  afterEach(async () => {
    await server.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('sizes every model with the converter: the published parameter counts, download, precision per device', () => {
    const catalogue = modelCatalogue(path.join(tmp, 'cache'), 'auto');
    const byId = new Map(catalogue.map((m) => [m.id, m]));
    // Parameter counts as the model cards give them (7.6B, 8B, 1.7B, 0.49B): the transcribed geometry is right.
    const published: [string, number][] = [
      ['Dream-org/Dream-Coder-v0-Instruct-7B', 7.6e9], ['apple/DiffuCoder-7B-Instruct', 7.6e9], ['GSAI-ML/LLaDA-8B-Instruct', 8.0e9],
      ['Salesforce/CoDA-v0-Instruct', 1.7e9], [OPEN_DCODER, 0.49e9],
    ];
    for (const [id, parameters] of published) {
      const model = byId.get(id)!;
      assert.ok(Math.abs(model.parameters / parameters - 1) < 0.02, `${id}: ${model.parameters} parameters`);
    }
    const dream = byId.get('Dream-org/Dream-Coder-v0-Instruct-7B')!;
    assert.equal(dream.downloadBytes, dream.parameters * 2);
    assert.deepEqual([dream.memory.gpu.precision, dream.memory.cpu.precision], ['int4', 'int4']);
    assert.equal(byId.get('Salesforce/CoDA-v0-Instruct')!.downloadBytes, byId.get('Salesforce/CoDA-v0-Instruct')!.parameters * 4, 'stored in float32');
    const small = byId.get(OPEN_DCODER)!;
    assert.deepEqual([small.memory.gpu.precision, small.memory.cpu.precision], ['fp16', 'int8']);
    assert.ok(small.memory.cpu.weightBytes < small.memory.gpu.weightBytes, 'int8 weights take half the bytes of fp16');
    for (const model of catalogue) {
      const need = model.memory.gpu;
      assert.equal(need.totalBytes, need.weightBytes + need.kvCacheBytes + need.activationBytes, model.id);
    }
    const builtin = catalogue[0];
    assert.deepEqual([builtin.id, builtin.downloadBytes, builtin.local.ready], ['builtin', 0, true]);
  });

  it("marks what is on disk: a download resumable or complete, a conversion ready for its device", async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'open-dcoder');
    const { files, lfs } = repoFiles(src.dir);
    server.addRepo(OPEN_DCODER, files, lfs);
    const cacheDir = path.join(tmp, 'cache');
    server.faults.set(lfs[0], { cutAfter: { bytes: 1000, times: 10 } });
    await assert.rejects(resolveModel(OPEN_DCODER, { cacheDir, hubUrl: server.baseUrl, device: 'cpu' }), /interrupted/);
    let entry = modelCatalogue(cacheDir, 'cpu').find((m) => m.id === OPEN_DCODER)!;
    assert.deepEqual({ ...entry.local, downloadedBytes: entry.local.downloadedBytes > 1000 }, { ready: false, downloadComplete: false, downloadedBytes: true });
    let stored = listStoredModels(cacheDir, new Set());
    assert.deepEqual(stored.map((s) => [s.kind, s.name, s.complete]), [['download', OPEN_DCODER, false]]);

    server.faults.clear();
    const dir = await resolveModel(OPEN_DCODER, { cacheDir, hubUrl: server.baseUrl, device: 'cpu' });
    entry = modelCatalogue(cacheDir, 'cpu').find((m) => m.id === OPEN_DCODER)!;
    assert.deepEqual([entry.local.ready, entry.local.downloadComplete], [true, true]);
    assert.equal(modelCatalogue(cacheDir, 'webgpu').find((m) => m.id === OPEN_DCODER)!.local.ready, false, 'a GPU needs another conversion');

    stored = listStoredModels(cacheDir, new Set([dir]));
    assert.deepEqual(stored.map((s) => [s.kind, s.name, s.complete, s.precision, s.inUse]), [
      ['converted', OPEN_DCODER, true, 'int8', true],
      ['download', OPEN_DCODER, true, undefined, false],
    ]);
    const arch = detectFamily(JSON.parse(fs.readFileSync(path.join(src.dir, 'config.json'), 'utf8'))).architecture(
      JSON.parse(fs.readFileSync(path.join(src.dir, 'config.json'), 'utf8')),
    );
    assert.ok(stored[0].bytes >= estimateWeightBytes(arch, 'int8') && parameterCount(arch) > 0);
  });

  it('deletes a stored model, and nothing outside the store or in use', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
    const { files, lfs } = repoFiles(src.dir);
    server.addRepo('org/tiny', files, lfs);
    const cacheDir = path.join(tmp, 'cache');
    const dir = await resolveModel('org/tiny', { cacheDir, hubUrl: server.baseUrl, device: 'cpu' });
    const [converted, download] = listStoredModels(cacheDir, new Set());
    assert.throws(() => deleteStoredModel(cacheDir, src.dir, new Set()), /is not a stored model/);
    assert.throws(() => deleteStoredModel(cacheDir, path.join(cacheDir, 'models'), new Set()), /is not a stored model/);
    assert.throws(() => deleteStoredModel(cacheDir, converted.path, new Set([dir])), /is in use/);
    deleteStoredModel(cacheDir, download.path, new Set([dir]));
    assert.deepEqual(listStoredModels(cacheDir, new Set()).map((s) => s.kind), ['converted']);
    assert.ok(fs.existsSync(src.dir), 'the source checkpoint is untouched');
    deleteStoredModel(cacheDir, converted.path, new Set());
    assert.deepEqual(listStoredModels(cacheDir, new Set()), []);
    assert.throws(() => deleteStoredModel(cacheDir, converted.path, new Set()), /does not exist/);
  });
});

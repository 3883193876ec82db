import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readManifest } from '../../engine/model/manifest';
import { conversionFor, resolveModel, type ModelProgress } from '../../engine/store/modelManager';
import { writeFixtureCheckpoint } from './convertFixtures';
import { temporaryDir } from './graphTestSupport';
import { HubTestServer } from './hubTestServer';
import { ErrorCodes } from '../../common/protocol';
import { Engine } from '../../engine/service/engine';
import type { EngineError } from '../../engine/service/errors';

/** The files of a checkpoint folder, as a hub repository serves them (safetensors as LFS objects). */
function repoFiles(dir: string): { files: Record<string, Buffer>; lfs: string[] } {
  const files: Record<string, Buffer> = {};
  for (const name of fs.readdirSync(dir)) files[name] = fs.readFileSync(path.join(dir, name));
  return { files, lfs: Object.keys(files).filter((f) => f.endsWith('.safetensors')) };
}

describe('model manager: checkpoint folders and Hugging Face ids', function () {
  this.timeout(120_000);
  let tmp: string;
  beforeEach(() => (tmp = temporaryDir('mm')));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('converts a checkpoint folder once and reuses it; new weights give a new conversion', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'Dream-Coder-tiny'), 'dream');
    const cacheDir = path.join(tmp, 'cache');
    const progress: ModelProgress[] = [];
    const first = await resolveModel(src.dir, { cacheDir, onProgress: (p) => progress.push(p) });
    assert.ok(first.startsWith(path.join(cacheDir, 'models')));
    const manifest = readManifest(first);
    assert.deepEqual(manifest.tokens, src.tokens);
    // Tiny model, no device: the GPU-oriented variant.
    assert.deepEqual(manifest.variants.map((v) => [v.precision, v.cacheDtype, v.head]), [['fp16', 'float16', 'stats']]);
    assert.ok(progress.length > 0 && progress.every((p) => p.stage === 'convert'));
    assert.equal(progress[progress.length - 1].fraction, 1);

    progress.length = 0;
    assert.equal(await resolveModel(src.dir, { cacheDir, onProgress: (p) => progress.push(p) }), first);
    assert.deepEqual(progress, []);

    const cpu = await resolveModel(src.dir, { cacheDir, device: 'cpu' });
    assert.notEqual(cpu, first);
    assert.deepEqual(readManifest(cpu).variants.map((v) => [v.precision, v.cacheDtype, v.head]), [['int8', 'float32', 'stats']]);

    await writeFixtureCheckpoint(src.dir, 'dream', { seed: 99 });
    const retrained = await resolveModel(src.dir, { cacheDir });
    assert.notEqual(retrained, first);
  });

  it('picks int4 above 2B parameters, fp32 activations on the CPU (int8 in the int4 matmuls) and fp16 elsewhere', () => {
    assert.deepEqual(conversionFor(7.6e9, 'cpu'), { precision: 'int4', cacheDtype: 'float32', attention: 'hybrid', head: 'stats', topK: 32, int4AccuracyLevel: 4 });
    assert.deepEqual(conversionFor(7.6e9, 'cuda'), { precision: 'int4', cacheDtype: 'float16', attention: 'decomposed', head: 'stats', topK: 32 });
    assert.equal(conversionFor(0.5e9, 'auto', () => true).precision, 'fp16');
    assert.deepEqual(conversionFor(0.5e9, 'auto', () => false), conversionFor(0.5e9, 'cpu'), 'auto without a GPU to try converts for the CPU');
    assert.deepEqual(conversionFor(0.5e9, 'cpu'), { precision: 'int8', cacheDtype: 'float32', attention: 'hybrid', head: 'stats', topK: 32 });
  });

  it('refuses a folder that is neither a model nor a checkpoint, and a path that does not exist', async () => {
    fs.mkdirSync(path.join(tmp, 'empty'));
    await assert.rejects(resolveModel(path.join(tmp, 'empty'), { cacheDir: tmp }), /has neither dlm-model.json .* nor config.json/);
    await assert.rejects(resolveModel(path.join(tmp, 'nope'), { cacheDir: tmp }), /does not exist\. Use "builtin", a model folder/);
  });

  describe('Hugging Face ids (local test hub)', () => {
    let server: HubTestServer;
    beforeEach(async () => {
      server = new HubTestServer();
      await server.start();
    });
    afterEach(() => server.stop());

    it('downloads, converts, and afterwards works offline', async () => {
      const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'llada');
      const { files, lfs } = repoFiles(src.dir);
      server.addRepo('GSAI-ML/LLaDA-tiny', files, lfs);
      const cacheDir = path.join(tmp, 'cache');
      const stages = new Set<string>();
      const dir = await resolveModel('GSAI-ML/LLaDA-tiny', { cacheDir, hubUrl: server.baseUrl, onProgress: (p) => stages.add(p.stage) });
      assert.deepEqual([...stages], ['download', 'convert']);
      const manifest = readManifest(dir);
      assert.deepEqual(manifest.source && [manifest.source.kind, manifest.source.id, manifest.source.revision], ['huggingface', 'GSAI-ML/LLaDA-tiny', 'main']);
      assert.equal(manifest.name, 'GSAI-ML/LLaDA-tiny');
      assert.deepEqual(manifest.tokens, src.tokens);
      assert.equal(path.basename(dir), 'GSAI-ML--LLaDA-tiny@main-fp16-float16-decomposed-stats32');
      await server.stop();
      assert.equal(await resolveModel('GSAI-ML/LLaDA-tiny', { cacheDir, hubUrl: server.baseUrl }), dir);
      // The download can be deleted to free its space: the converted model is found by its id.
      fs.rmSync(path.join(cacheDir, 'hub'), { recursive: true });
      assert.equal(await resolveModel('GSAI-ML/LLaDA-tiny', { cacheDir, hubUrl: server.baseUrl }), dir);
      // Another device needs another graph, hence the download again (the server is gone).
      await assert.rejects(resolveModel('GSAI-ML/LLaDA-tiny', { cacheDir, hubUrl: server.baseUrl, device: 'cpu' }), /cannot reach/);
    });

    it('a corrupt download gives an error and no model', async () => {
      const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
      const { files, lfs } = repoFiles(src.dir);
      server.addRepo('Dream-org/tiny', files, lfs);
      const bad = Buffer.from(files['model.safetensors']);
      bad[bad.length - 10] ^= 0x55;
      server.faults.set('model.safetensors', { corruptWith: bad });
      const cacheDir = path.join(tmp, 'cache');
      await assert.rejects(resolveModel('Dream-org/tiny', { cacheDir, hubUrl: server.baseUrl }), /model.safetensors is corrupt: sha256/);
      assert.ok(!fs.existsSync(path.join(cacheDir, 'models')));
      // The fault gone, the next attempt completes.
      server.faults.clear();
      const dir = await resolveModel('Dream-org/tiny', { cacheDir, hubUrl: server.baseUrl });
      assert.equal(readManifest(dir).source?.id, 'Dream-org/tiny');
    });

    it('a gated repository without a token names the token setting; HF_TOKEN or the option opens it', async () => {
      const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'open-dcoder');
      const { files, lfs } = repoFiles(src.dir);
      server.addRepo('org/gated', files, lfs, 'hf_secret');
      const cacheDir = path.join(tmp, 'cache');
      const saved = process.env.HF_TOKEN;
      delete process.env.HF_TOKEN;
      try {
        await assert.rejects(resolveModel('org/gated', { cacheDir, hubUrl: server.baseUrl }), /gated or private \(HTTP 401\).*HF_TOKEN/);
        process.env.HF_TOKEN = 'hf_secret';
        const dir = await resolveModel('org/gated', { cacheDir, hubUrl: server.baseUrl });
        assert.equal(readManifest(dir).source?.id, 'org/gated');
      } finally {
        if (saved === undefined) delete process.env.HF_TOKEN;
        else process.env.HF_TOKEN = saved;
      }
    });

    it("dlm/loadModel's huggingFaceToken opens a gated repository, and its absence is explained", async () => {
      const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'open-dcoder');
      const { files, lfs } = repoFiles(src.dir);
      server.addRepo('org/gated-engine', files, lfs, 'hf_engine_secret');
      const saved = { token: process.env.HF_TOKEN, endpoint: process.env.HF_ENDPOINT };
      delete process.env.HF_TOKEN;
      process.env.HF_ENDPOINT = server.baseUrl;
      const engine = new Engine({ cacheDir: path.join(tmp, 'cache'), log: () => undefined });
      try {
        await assert.rejects(
          engine.loadModel({ model: 'org/gated-engine', device: 'cpu' }),
          (e: EngineError) => e.code === ErrorCodes.ModelLoadFailed && /gated or private.*DLM: Set Hugging Face Token/.test(e.message),
        );
        const info = await engine.loadModel({ model: 'org/gated-engine', device: 'cpu', huggingFaceToken: 'hf_engine_secret' });
        assert.equal(info.device, 'cpu');
      } finally {
        await engine.shutdown();
        for (const [key, value] of [['HF_TOKEN', saved.token], ['HF_ENDPOINT', saved.endpoint]] as const) {
          if (value === undefined) delete process.env[key];
          else process.env[key] = value;
        }
      }
    });

    it('a token with a line break is refused before any request and never repeated; the failed load leaves nothing', async () => {
      const cacheDir = path.join(tmp, 'cache');
      const token = 'hf_abcdefgh\r\nX-Injected: 1';
      await assert.rejects(resolveModel('org/gated', { cacheDir, hubUrl: server.baseUrl, token }), (error: Error) => {
        assert.match(error.message, /the Hugging Face access token is not valid: it contains a line break; set it again in VS Code/);
        assert.doesNotMatch(error.message, /hf_abcdefgh|X-Injected|cannot reach/);
        return true;
      });
      assert.equal(server.log.length, 0, 'no request was made');
      assert.ok(!fs.existsSync(path.join(cacheDir, 'hub')), 'no folder is left in the cache');
    });

    it('a load that fails before any file arrives (wrong id, refused token) leaves no folder behind', async () => {
      const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
      const { files, lfs } = repoFiles(src.dir);
      server.addRepo('org/gated', files, lfs, 'hf_secret');
      const cacheDir = path.join(tmp, 'cache');
      await assert.rejects(resolveModel('org/missing', { cacheDir, hubUrl: server.baseUrl }), /org\/missing has no config.json/);
      await assert.rejects(resolveModel('org/gated', { cacheDir, hubUrl: server.baseUrl, token: 'hf_wrong' }), /the token was refused \(HTTP 403\)/);
      assert.ok(!fs.existsSync(path.join(cacheDir, 'hub')), `left behind: ${fs.existsSync(path.join(cacheDir, 'hub')) ? fs.readdirSync(path.join(cacheDir, 'hub')) : ''}`);
    });

    it('an id longer than the hub allows gets a clear error, not a file system one', async () => {
      const cacheDir = path.join(tmp, 'cache');
      await assert.rejects(resolveModel(`org/${'x'.repeat(300)}`, { cacheDir, hubUrl: server.baseUrl }), (error: Error) => {
        assert.match(error.message, /it is no Hugging Face id, since its repository name has 300 characters; the hub allows at most 96/);
        assert.doesNotMatch(error.message, /ENAMETOOLONG/);
        assert.ok(error.message.length < 300, 'the setting is quoted cut');
        return true;
      });
      assert.equal(server.log.length, 0);
    });

    it('a config.json the hub serves broken is named and deleted, and the next load downloads it again', async () => {
      const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
      const { files, lfs } = repoFiles(src.dir);
      server.addRepo('Dream-org/broken', { ...files, 'config.json': files['config.json'].subarray(0, 40) }, lfs);
      const cacheDir = path.join(tmp, 'cache');
      await assert.rejects(resolveModel('Dream-org/broken', { cacheDir, hubUrl: server.baseUrl }), /Dream-org\/broken\/config.json as served by the hub is not valid JSON; the file was deleted, run again/);
      server.addRepo('Dream-org/broken', files, lfs);
      const dir = await resolveModel('Dream-org/broken', { cacheDir, hubUrl: server.baseUrl });
      assert.equal(readManifest(dir).source?.id, 'Dream-org/broken');
    });

    it('a missing file on the hub is named', async () => {
      const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'coda');
      const { files, lfs } = repoFiles(src.dir);
      delete files['model.safetensors'];
      server.addRepo('Salesforce/tiny', files, lfs);
      await assert.rejects(
        resolveModel('Salesforce/tiny@v1', { cacheDir: path.join(tmp, 'cache'), hubUrl: server.baseUrl }),
        /Salesforce\/tiny has no model.safetensors or model.safetensors.index.json at revision v1/,
      );
    });
  });
});

import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { NotEnoughDiskSpace } from '../../engine/machine/diskSpace';
import {
  COMPLETE_MARKER, downloadCheckpoint, HubError, parseHubModelId, type DownloadProgress,
} from '../../engine/store/huggingFaceHub';
import { HubTestServer } from './hubTestServer';

const REPO = 'org/tiny-dlm';
const ID = { repo: REPO, revision: 'main' };

function checkpointFiles() {
  const shard1 = randomBytes(300_000);
  const shard2 = randomBytes(200_000);
  return {
    'config.json': JSON.stringify({ model_type: 'Dream' }),
    'generation_config.json': JSON.stringify({ steps: 64 }),
    'tokenizer.json': JSON.stringify({ model: { type: 'BPE' } }),
    'model.safetensors.index.json': JSON.stringify({
      metadata: { total_size: 500_000 },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' },
    }),
    'model-00001-of-00002.safetensors': shard1,
    'model-00002-of-00002.safetensors': shard2,
  };
}
const LFS = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];

describe('Hugging Face hub download (local test hub)', () => {
  let server: HubTestServer;
  let tmp: string;
  let files: Record<string, Buffer | string>;

  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-hub-'));
    server = new HubTestServer();
    files = checkpointFiles();
    server.addRepo(REPO, files, LFS);
    await server.start();
  });
  afterEach(async () => {
    await server.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  function assertSameFiles(dir: string) {
    for (const [name, content] of Object.entries(files)) {
      assert.ok(fs.readFileSync(path.join(dir, name)).equals(Buffer.from(content)), `${name} differs`);
    }
  }

  it('parses hub ids with an optional revision and rejects other settings', () => {
    assert.deepEqual(parseHubModelId('Dream-org/Dream-Coder-v0-Instruct-7B'), { repo: 'Dream-org/Dream-Coder-v0-Instruct-7B', revision: 'main' });
    assert.deepEqual(parseHubModelId('a/b@v1.0'), { repo: 'a/b', revision: 'v1.0' });
    assert.equal(parseHubModelId('/abs/path'), null);
    assert.equal(parseHubModelId('./rel/dir'), null);
    assert.equal(parseHubModelId('builtin'), null);
    assert.equal(parseHubModelId('a/b/c'), null);
  });

  it('downloads config, tokenizer, index and every shard, with progress, and checks LFS sizes and hashes', async () => {
    const dir = path.join(tmp, 'dl');
    const progress: DownloadProgress[] = [];
    await downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl, onProgress: (p) => progress.push(p) });
    assertSameFiles(dir);
    assert.ok(fs.existsSync(path.join(dir, COMPLETE_MARKER)));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.partial')), []);
    const last = progress[progress.length - 1];
    assert.equal(last.receivedBytes, last.totalBytes);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].receivedBytes >= progress[i - 1].receivedBytes);
    // Shards went through the CDN redirect, as on the real hub.
    assert.ok(server.requests((r) => r.path.startsWith('/cdn/')).length >= 2);
    // A finished download is not fetched again (works offline).
    const before = server.log.length;
    await downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl });
    assert.equal(server.log.length, before);
  });

  it('resumes a transfer cut mid-file with a Range request', async () => {
    server.faults.set(LFS[0], { cutAfter: { bytes: 100_000, times: 1 } });
    const dir = path.join(tmp, 'dl');
    await downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl });
    assertSameFiles(dir);
    const ranged = server.requests((r) => r.path.startsWith('/cdn/') && r.path.endsWith(LFS[0]) && r.range !== undefined);
    assert.deepEqual(ranged.map((r) => r.range), ['bytes=100000-']);
  });

  it('keeps the partial file when retries run out, and a later call resumes from it', async () => {
    server.faults.set(LFS[1], { cutAfter: { bytes: 50_000, times: 1 } });
    const dir = path.join(tmp, 'dl');
    await assert.rejects(
      downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl, retries: 0 }),
      /download of org\/tiny-dlm\/model-00002-of-00002.safetensors was interrupted .*run again to resume/,
    );
    assert.equal(fs.statSync(path.join(dir, `${LFS[1]}.partial`)).size, 50_000);
    assert.ok(!fs.existsSync(path.join(dir, LFS[1])));
    assert.ok(!fs.existsSync(path.join(dir, COMPLETE_MARKER)));
    await downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl, retries: 0 });
    assertSameFiles(dir);
    assert.deepEqual(server.requests((r) => r.path.startsWith('/cdn/') && r.path.endsWith(LFS[1]) && r.range !== undefined).map((r) => r.range), ['bytes=50000-']);
  });

  it('starts over when the server ignores the Range request', async () => {
    server.faults.set(LFS[0], { cutAfter: { bytes: 70_000, times: 1 }, ignoreRange: true });
    const dir = path.join(tmp, 'dl');
    await downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl });
    assertSameFiles(dir);
  });

  it('refuses a corrupt file (sha256 mismatch), deletes it and leaves no complete download', async () => {
    const bad = Buffer.from(files[LFS[0]] as Buffer);
    bad[1234] ^= 0xff;
    server.faults.set(LFS[0], { corruptWith: bad });
    const dir = path.join(tmp, 'dl');
    await assert.rejects(
      downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl }),
      /org\/tiny-dlm\/model-00001-of-00002.safetensors is corrupt: sha256 [0-9a-f]{64}, the hub announced [0-9a-f]{64}; the file was deleted/,
    );
    assert.ok(!fs.existsSync(path.join(dir, LFS[0])));
    assert.ok(!fs.existsSync(path.join(dir, `${LFS[0]}.partial`)));
    assert.ok(!fs.existsSync(path.join(dir, COMPLETE_MARKER)));
  });

  it('refuses a file of the wrong size', async () => {
    server.faults.set(LFS[1], { corruptWith: (files[LFS[1]] as Buffer).subarray(0, 1000) });
    await assert.rejects(
      downloadCheckpoint(ID, path.join(tmp, 'dl'), { baseUrl: server.baseUrl, retries: 1 }),
      /model-00002-of-00002.safetensors: the hub cannot serve bytes from 1000 on although it announced 200000; the partial file was deleted/,
    );
    assert.ok(!fs.existsSync(path.join(tmp, 'dl', `${LFS[1]}.partial`)));
  });

  it('names the missing file on a 404', async () => {
    await assert.rejects(
      downloadCheckpoint({ repo: 'org/nope', revision: 'main' }, path.join(tmp, 'a'), { baseUrl: server.baseUrl }),
      /org\/nope has no config.json at revision main; is the id right\? \(HTTP 404 for config.json\)/,
    );
    const noWeights = { ...files };
    delete noWeights['model.safetensors.index.json'];
    server.addRepo('org/no-weights', noWeights, LFS);
    await assert.rejects(
      downloadCheckpoint({ repo: 'org/no-weights', revision: 'main' }, path.join(tmp, 'b'), { baseUrl: server.baseUrl }),
      /has no model.safetensors or model.safetensors.index.json at revision main; only safetensors checkpoints can be converted \(HTTP 404 for model.safetensors\)/,
    );
    const missingShard = { ...files };
    delete missingShard[LFS[1]];
    server.addRepo('org/missing-shard', missingShard, LFS);
    await assert.rejects(
      downloadCheckpoint({ repo: 'org/missing-shard', revision: 'main' }, path.join(tmp, 'c'), { baseUrl: server.baseUrl }),
      /shard model-00002-of-00002.safetensors named in model.safetensors.index.json is missing on the hub/,
    );
  });

  it('fetches vocab.json and merges.txt when the repository has no tokenizer.json', async () => {
    const slow: Record<string, Buffer | string> = { ...files, 'vocab.json': '{"a":0}', 'merges.txt': '#version: 0.2\n' };
    delete slow['tokenizer.json'];
    server.addRepo('org/slow-tokenizer', slow, LFS);
    const dir = path.join(tmp, 'slow');
    await downloadCheckpoint({ repo: 'org/slow-tokenizer', revision: 'main' }, dir, { baseUrl: server.baseUrl });
    assert.equal(fs.readFileSync(path.join(dir, 'merges.txt'), 'utf8'), '#version: 0.2\n');
    delete slow['merges.txt'];
    server.addRepo('org/no-tokenizer', slow, LFS);
    await assert.rejects(
      downloadCheckpoint({ repo: 'org/no-tokenizer', revision: 'main' }, path.join(tmp, 'none'), { baseUrl: server.baseUrl }),
      /has neither tokenizer.json nor merges.txt/,
    );
  });

  it('needs the token for a gated repository and names the setting that holds it', async () => {
    server.addRepo('org/gated', files, LFS, 'secret-token');
    const id = { repo: 'org/gated', revision: 'main' };
    await assert.rejects(
      downloadCheckpoint(id, path.join(tmp, 'g1'), { baseUrl: server.baseUrl }),
      /cannot download org\/gated\/config.json: the repository is gated or private \(HTTP 401\).*put an access token in VS Code with "DLM: Set Hugging Face Token", or in the HF_TOKEN environment variable/,
    );
    await assert.rejects(
      downloadCheckpoint(id, path.join(tmp, 'g2'), { baseUrl: server.baseUrl, token: 'wrong' }),
      /the token was refused \(HTTP 403\)/,
    );
    const dir = path.join(tmp, 'g3');
    server.log.length = 0;
    await downloadCheckpoint(id, dir, { baseUrl: server.baseUrl, token: 'secret-token' });
    assertSameFiles(dir);
    assert.ok(server.requests((r) => r.path.startsWith('/org/gated/')).every((r) => r.authorization?.startsWith('Bearer ')));
  });

  it('checks free disk space before fetching the weights, with the numbers', async () => {
    server.faults.set(LFS[0], { announceSize: 2 ** 60 });
    const dir = path.join(tmp, 'dl');
    await assert.rejects(
      downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl }),
      (e: NotEnoughDiskSpace) =>
        e instanceof NotEnoughDiskSpace && e.neededBytes > 2 ** 59 && e.freeBytes > 0 &&
        /^not enough disk space in .*: the rest of the download needs about \d+\.\d\d GiB, \d+\.\d\d GiB is free/.test(e.message),
    );
    assert.deepEqual(server.requests((r) => r.path.startsWith('/cdn/')), [], 'no weights were fetched');
    server.faults.clear();
    await assert.rejects(
      downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl, bytesNeededAfter: (config) => (config.model_type === 'Dream' ? 2 ** 60 : 0) }),
      /the rest of the download and its conversion needs about/,
    );
    await downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl, bytesNeededAfter: () => 1 });
    assertSameFiles(dir);
  });

  it('a cancelled download keeps what arrived, and the next call resumes from there', async () => {
    server.faults.set(LFS[0], { bytesPerSecond: 200_000 });
    const dir = path.join(tmp, 'dl');
    const controller = new AbortController();
    let started: number | undefined;
    const abortOnceBytesArrive = (p: DownloadProgress) => {
      if (p.file !== LFS[0]) return;
      started ??= p.receivedBytes;
      if (p.receivedBytes > started) controller.abort();
    };
    await assert.rejects(
      downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl, signal: controller.signal, onProgress: abortOnceBytesArrive }),
      (e: HubError) => e instanceof HubError && e.reason === 'cancelled',
    );
    const kept = fs.statSync(path.join(dir, `${LFS[0]}.partial`)).size;
    assert.ok(kept > 0 && kept < 300_000, `${kept} bytes kept`);
    server.faults.clear();
    await downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl });
    assertSameFiles(dir);
    const ranged = server.requests((r) => r.path.startsWith('/cdn/') && r.path.endsWith(LFS[0]) && r.range !== undefined);
    assert.deepEqual(ranged.map((r) => r.range), [`bytes=${kept}-`]);
  });

  it('leaves a download another running process is writing alone, and takes over one whose process is gone', async () => {
    const dir = path.join(tmp, 'dl');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, '.dlm-download.lock'), String(process.ppid));
    await assert.rejects(
      downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl }),
      (e: HubError) => e.reason === 'busy' && new RegExp(`being downloaded by another DLM engine \\(process ${process.ppid}\\)`).test(e.message),
    );
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    fs.writeFileSync(path.join(dir, '.dlm-download.lock'), String(gone));
    await downloadCheckpoint(ID, dir, { baseUrl: server.baseUrl });
    assertSameFiles(dir);
    assert.ok(!fs.existsSync(path.join(dir, '.dlm-download.lock')), 'the lock is released');
  });
});

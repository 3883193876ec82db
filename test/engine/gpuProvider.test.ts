/**
 * GPU set-up against a NuGet feed on 127.0.0.1: the package onnxruntime-node's install script names, resolved
 * and checked against the feed's SHA-512, resumed, refused when corrupt or missing; the libraries extracted with
 * a copy of onnxruntime-node's binding into a folder; and onnxruntime really running from that folder.
 */
import { strict as assert } from 'node:assert';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { extractZipEntry, readZipEntries, ZipError } from '../../common/zipArchive';
import { installGpuProvider } from '../../engine/gpu/gpuProvider';
import { ortInstallPlan, ortVersion, packageBinaryDir } from '../../engine/runtime/ortInstallPlan';
import { providerFolderProblem, readProviderMarker } from '../../engine/runtime/providerFolder';
import { elfNeeded } from '../../engine/gpu/sharedLibraries';
import { DownloadError } from '../../engine/store/fileDownload';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import { GPU_PROVIDER_MARKER, type LoadProgressParams } from '../../common/protocol';
import { temporaryDir } from './graphTestSupport';
import { NugetTestServer } from './nugetTestServer';
import { writeZip } from './zipWriter';

const run = promisify(execFile);
const PACKAGE = 'Microsoft.ML.OnnxRuntime.Gpu.Linux';
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64';

describe('zip archives (streamed, checked)', () => {
  let tmp: string;
  beforeEach(() => (tmp = temporaryDir('zip')));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('lists and extracts stored and deflated entries, checking each against its CRC-32', async () => {
    const files = { 'a/readme.txt': Buffer.from('hello '.repeat(1000)), 'b/lib.so': randomBytes(70_000), 'empty': Buffer.alloc(0) };
    for (const method of [0, 8] as const) {
      const zip = path.join(tmp, `m${method}.zip`);
      fs.writeFileSync(zip, writeZip(files, method));
      const entries = readZipEntries(zip);
      assert.deepEqual(entries.map((e) => [e.name, e.size, e.method]), Object.entries(files).map(([n, c]) => [n, c.length, method]));
      for (const entry of entries) {
        const out = path.join(tmp, `out-${method}-${path.basename(entry.name)}`);
        await extractZipEntry(zip, entry, out);
        assert.ok(fs.readFileSync(out).equals(files[entry.name as keyof typeof files]));
      }
    }
  });

  it('refuses a damaged entry and leaves nothing behind; refuses what is no zip', async () => {
    const zip = path.join(tmp, 'x.zip');
    const bytes = writeZip({ 'lib.so': randomBytes(10_000) }, 0);
    bytes[40 + 'lib.so'.length] ^= 0xff; // a byte of the stored data
    fs.writeFileSync(zip, bytes);
    const [entry] = readZipEntries(zip);
    await assert.rejects(extractZipEntry(zip, entry, path.join(tmp, 'lib.so')), (e: ZipError) => e instanceof ZipError && /lib\.so is damaged .*CRC-32/.test(e.message));
    assert.deepEqual(fs.readdirSync(tmp), ['x.zip']);
    fs.writeFileSync(path.join(tmp, 'not.zip'), 'plain text');
    assert.throws(() => readZipEntries(path.join(tmp, 'not.zip')), /is not a zip archive/);
  });

  it("reads what Info-ZIP's zip writes (extra fields, a comment)", async function () {
    if (spawnSync('zip', ['-v']).status !== 0) this.skip();
    fs.mkdirSync(path.join(tmp, 'src'));
    const content = randomBytes(5000);
    fs.writeFileSync(path.join(tmp, 'src', 'lib.so'), content);
    spawnSync('zip', ['-q', '-r', '-z', path.join(tmp, 'real.zip'), 'src'], { cwd: tmp, input: 'a comment\n' });
    const entry = readZipEntries(path.join(tmp, 'real.zip')).find((e) => e.name === 'src/lib.so')!;
    await extractZipEntry(path.join(tmp, 'real.zip'), entry, path.join(tmp, 'lib.so'));
    assert.ok(fs.readFileSync(path.join(tmp, 'lib.so')).equals(content));
  });
});

describe("GPU set-up: onnxruntime-node's CUDA provider (local NuGet feed)", function () {
  this.timeout(120_000);
  let tmp: string;
  let feed: NugetTestServer;
  let libraries: Record<string, Buffer>;

  /** A package laid out like the real one: the provider libraries under runtimes/linux-x64/native, and more. */
  function nupkg(): Buffer {
    const plan = ortInstallPlan('linux', 'x64')!;
    libraries = Object.fromEntries(plan.files.map((f) => [f.pathInPackage, randomBytes(40_000 + f.name.length)]));
    return writeZip({ ...libraries, [`${PACKAGE}.nuspec`]: Buffer.from('<package/>'), 'runtimes/linux-x64/native/libonnxruntime.so': randomBytes(1000) });
  }

  beforeEach(async () => {
    tmp = temporaryDir('gpu');
    feed = new NugetTestServer();
    await feed.start();
    feed.addPackage(PACKAGE, ortVersion(), nupkg());
  });
  afterEach(async () => {
    await feed.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("reads what onnxruntime-node's install script would fetch for each platform", () => {
    const plan = ortInstallPlan('linux', 'x64')!;
    assert.equal(plan.manifest, 'cuda12');
    assert.equal(plan.packageName, PACKAGE);
    assert.deepEqual(plan.candidates, [{ version: ortVersion(), feedIndex: 'https://api.nuget.org/v3/index.json' }]);
    assert.deepEqual(plan.files.map((f) => f.name), ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so', 'libonnxruntime_providers_tensorrt.so']);
    for (const [platform, arch] of [['win32', 'x64'], ['darwin', 'arm64'], ['linux', 'arm64']]) assert.equal(ortInstallPlan(platform, arch), null, `${platform}/${arch}`);
  });

  it('fetches the package, checks its SHA-512, extracts the libraries beside a copy of the binding, and records it', async function () {
    if (!onLinuxX64) this.skip();
    const dir = path.join(tmp, 'provider');
    const progress: Omit<LoadProgressParams, 'progressToken'>[] = [];
    const marker = await installGpuProvider(dir, { feedIndex: feed.indexUrl, onProgress: (p) => progress.push(p) });
    for (const [inPackage, content] of Object.entries(libraries)) assert.ok(fs.readFileSync(path.join(dir, path.basename(inPackage))).equals(content));
    for (const binary of fs.readdirSync(packageBinaryDir())) {
      assert.ok(fs.readFileSync(path.join(dir, binary)).equals(fs.readFileSync(path.join(packageBinaryDir(), binary))), binary);
    }
    assert.deepEqual(readProviderMarker(dir), marker);
    assert.deepEqual([marker.package, marker.version, marker.onnxruntimeNode, marker.feed], [PACKAGE, ortVersion(), ortVersion(), feed.indexUrl]);
    assert.equal(providerFolderProblem(dir), null);
    assert.ok(!fs.existsSync(path.join(dir, '.download')), 'the package is removed once extracted');
    assert.ok(progress.some((p) => p.stage === 'download' && p.totalBytes! > 0) && progress.at(-1)!.fraction === 1);

    fs.appendFileSync(path.join(dir, 'libonnxruntime_providers_cuda.so'), 'x');
    assert.match(providerFolderProblem(dir)!, /libonnxruntime_providers_cuda\.so is missing or changed/);
  });

  it('a cancelled download is resumed by the next set-up; a corrupt package is refused and deleted', async function () {
    if (!onLinuxX64) this.skip();
    const dir = path.join(tmp, 'provider');
    feed.fault = { bytesPerSecond: 40_000 };
    const controller = new AbortController();
    await assert.rejects(
      installGpuProvider(dir, { feedIndex: feed.indexUrl, signal: controller.signal, onProgress: (p) => p.receivedBytes! > 0 && controller.abort() }),
      (e: DownloadError) => e.reason === 'cancelled',
    );
    assert.equal(readProviderMarker(dir), null);
    feed.fault = {};
    await installGpuProvider(dir, { feedIndex: feed.indexUrl });
    assert.equal(feed.log.filter((r) => r.path.endsWith('.nupkg') && r.range !== undefined).length, 1, 'resumed with a Range request');

    const other = path.join(tmp, 'other');
    const bad = Buffer.from(feed.packages.values().next().value!);
    bad[100] ^= 0xff;
    feed.fault = { corruptWith: bad };
    await assert.rejects(installGpuProvider(other, { feedIndex: feed.indexUrl }), (e: DownloadError) => e.reason === 'corrupt' && /is corrupt: sha512 [0-9a-f]{128}, the NuGet feed announced/.test(e.message));
    assert.equal(readProviderMarker(other), null);
    assert.deepEqual(fs.readdirSync(path.join(other, '.download')), [], 'the corrupt package is deleted');
  });

  it('refuses a version the feed lacks and a feed that publishes no hash', async () => {
    feed.packages.clear();
    feed.addPackage(PACKAGE, '1.19.0', nupkg());
    await assert.rejects(installGpuProvider(path.join(tmp, 'a'), { feedIndex: feed.indexUrl }), (e: DownloadError) => e.reason === 'missing' && new RegExp(`${PACKAGE} ${ortVersion().replace(/\./g, '\\.')} is not on`).test(e.message));
    feed.addPackage(PACKAGE, ortVersion(), nupkg());
    feed.omitHash = true;
    await assert.rejects(installGpuProvider(path.join(tmp, 'b'), { feedIndex: feed.indexUrl }), /publishes no SHA-512 and size .* so its download cannot be checked/);
  });

  it('the engine runs onnxruntime from the set-up folder when DLM_ORT_NATIVE_DIR names it, and says why it does not', async function () {
    if (!onLinuxX64) this.skip();
    assert.ok(elfNeeded(path.join(packageBinaryDir(), 'onnxruntime_binding.node')).includes('libonnxruntime.so.1'));
    const dir = path.join(tmp, 'provider');
    await installGpuProvider(dir, { feedIndex: feed.indexUrl });
    const model = path.join(tmp, 'model');
    await writeSyntheticModel(model, { preset: 'tiny-dream', seed: 1 });
    const probe = async (nativeDir: string) => {
      const { stdout } = await run(process.execPath, ['-r', 'tsx/cjs', path.join(__dirname, 'nativeBindingProbe.ts'), model], {
        env: { ...process.env, DLM_ORT_NATIVE_DIR: nativeDir },
        timeout: 60_000,
      });
      return JSON.parse(stdout.trim().split('\n').pop()!);
    };
    const from = await probe(dir);
    assert.deepEqual(from.nativeBinding, { dir, problem: null });
    assert.deepEqual(from.libraries, [fs.realpathSync(path.join(dir, 'libonnxruntime.so.1'))], 'onnxruntime came from the set-up folder');
    assert.equal(from.ran, 3);
    assert.equal(from.cudaUnavailable, null, "the CUDA provider's library is found where onnxruntime runs from");

    const marker = readProviderMarker(dir)!;
    fs.writeFileSync(path.join(dir, GPU_PROVIDER_MARKER), JSON.stringify({ ...marker, onnxruntimeNode: '0.0.1' }));
    const stale = await probe(dir);
    assert.match(stale.nativeBinding.problem, /was set up for onnxruntime-node 0\.0\.1, this engine has/);
    assert.deepEqual(stale.libraries, [fs.realpathSync(path.join(packageBinaryDir(), 'libonnxruntime.so.1'))]);
    assert.match(stale.cudaUnavailable, /CUDA provider .* is not installed: run "DLM: Set Up GPU Acceleration"/);
  });
});

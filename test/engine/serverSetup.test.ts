/**
 * The set-up requests as the extension sends them to `dlm serve` (a real child process): preparing a model from
 * a local test hub with progress in bytes, cancelled and resumed; the machine's facts; the catalogue; the stored
 * models; and failures that say why in their data.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import path from 'node:path';
import { CancellationTokenSource, createMessageConnection, ResponseError, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node';
import {
  DeleteStoredModelRequest,
  ErrorCodes,
  ListStoredModelsRequest,
  LoadModelRequest,
  LoadProgressNotification,
  MachineFactsRequest,
  ModelCatalogueRequest,
  PrepareModelRequest,
  ShutdownRequest,
  type LoadProgressParams,
  type SetupErrorData,
} from '../../common/protocol';
import { writeFixtureCheckpoint } from './convertFixtures';
import { temporaryDir } from './graphTestSupport';
import { HubTestServer } from './hubTestServer';

const ENGINE = path.join(__dirname, '..', '..', 'dist', 'engine', 'main.js');

function startEngine(cacheDir: string): { connection: MessageConnection; progress: LoadProgressParams[]; exited: Promise<unknown> } {
  const child = spawn(process.execPath, [ENGINE, 'serve', '--cache-dir', cacheDir, '--log-level', 'error'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const connection = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
  const progress: LoadProgressParams[] = [];
  connection.onNotification(LoadProgressNotification, (p: LoadProgressParams) => {
    progress.push(p);
  });
  connection.listen();
  return { connection, progress, exited: new Promise((resolve) => child.on('exit', resolve)) };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function failure(promise: Promise<unknown>): Promise<ResponseError<SetupErrorData>> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ResponseError);
    return error as ResponseError<SetupErrorData>;
  }
  throw new Error('expected the request to fail');
}

describe('engine set-up requests (dlm serve, local test hub)', function () {
  this.timeout(120_000);
  let tmp: string;
  let server: HubTestServer;
  let engine: ReturnType<typeof startEngine>;
  let files: Record<string, Buffer>;
  let weights: string;

  beforeEach(async () => {
    tmp = temporaryDir('setup');
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
    files = Object.fromEntries(fs.readdirSync(src.dir).map((name) => [name, fs.readFileSync(path.join(src.dir, name))]));
    weights = 'model.safetensors';
    server = new HubTestServer();
    server.addRepo('org/tiny-dream', files, [weights]);
    await server.start();
    engine = startEngine(path.join(tmp, 'cache'));
  });
  afterEach(async () => {
    await engine.connection.sendRequest(ShutdownRequest).catch(() => undefined);
    await engine.exited;
    engine.connection.dispose();
    await server.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('prepares a model with progress in bytes; a cancel keeps the bytes and the next call resumes them', async () => {
    const { connection, progress } = engine;
    server.faults.set(weights, { bytesPerSecond: Math.max(20_000, Math.floor(files[weights].length / 3)) });
    const source = new CancellationTokenSource();
    const params = { model: 'org/tiny-dream', device: 'cpu' as const, hubUrl: server.baseUrl, progressToken: 'p1' };
    const prepared = connection.sendRequest(PrepareModelRequest, params, source.token);
    const started = Date.now();
    while (!progress.some((p) => p.receivedBytes !== undefined && p.receivedBytes > files['config.json'].length + 16 * 1024)) {
      if (Date.now() - started > 30_000) throw new Error('no download progress');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    source.cancel();
    const cancelled = await failure(prepared);
    assert.equal(cancelled.code, ErrorCodes.RequestCancelled);
    assert.match(cancelled.message, /cancelled; what was downloaded is kept/);
    const partial = (await connection.sendRequest(ListStoredModelsRequest)).find((s) => s.kind === 'download')!;
    assert.equal(partial.complete, false);
    assert.ok(partial.bytes > 16 * 1024);

    server.faults.clear();
    progress.length = 0;
    const ready = await connection.sendRequest(PrepareModelRequest, { ...params, progressToken: 'p2' });
    assert.equal(ready.name, 'org/tiny-dream');
    assert.ok(fs.existsSync(path.join(ready.modelDir, 'dlm-model.json')));
    const resumed = server.requests((r) => r.path.startsWith('/cdn/') && r.range !== undefined);
    assert.equal(resumed.length, 1, 'the weights were resumed with a Range request');
    const download = progress.filter((p) => p.stage === 'download');
    assert.ok(download.length > 0 && download.every((p) => p.progressToken === 'p2' && p.totalBytes! > 0));
    assert.equal(download[0].receivedBytes! > 0, true, 'progress counts the bytes kept from before');
    assert.ok(progress.some((p) => p.stage === 'convert'));
    // Loading it now needs no network.
    await server.stop();
    const info = await connection.sendRequest(LoadModelRequest, { model: 'org/tiny-dream', device: 'cpu', hubUrl: server.baseUrl });
    assert.equal(info.name, 'org/tiny-dream');
  });

  it('says why a preparation failed: a bad id, a gated model, no disk space, an unreachable hub', async () => {
    const { connection } = engine;
    const prepare = (model: string, hubUrl = server.baseUrl) => connection.sendRequest(PrepareModelRequest, { model, device: 'cpu', hubUrl });
    const notFound = await failure(prepare('org/no-such-model'));
    assert.deepEqual([notFound.code, notFound.data?.reason], [ErrorCodes.ModelLoadFailed, 'notFound']);
    assert.match(notFound.message, /org\/no-such-model has no config.json at revision main; is the id right\?/);

    server.addRepo('org/gated', files, [weights], 'hf_secret');
    const gated = await failure(prepare('org/gated'));
    assert.equal(gated.data?.reason, 'gated');

    server.faults.set(weights, { announceSize: 2 ** 60 });
    const full = await failure(prepare('org/tiny-dream'));
    assert.equal(full.data?.reason, 'noDiskSpace');
    assert.ok(full.data!.neededBytes! > 2 ** 59 && full.data!.availableBytes! > 0);
    assert.match(full.message, /not enough disk space in .*: the rest of the download and its conversion needs about/);

    const closed = await closedPort();
    const unreachable = await failure(prepare('org/tiny-dream', `http://127.0.0.1:${closed}`));
    assert.equal(unreachable.data?.reason, 'unreachable');
    assert.equal(unreachable.data!.url, `http://127.0.0.1:${closed}/org/tiny-dream/resolve/main/config.json`);
    assert.match(unreachable.message, new RegExp(`cannot reach http://127.0.0.1:${closed} for org/tiny-dream \\(ECONNREFUSED for `));
  });

  it('answers with the machine, the catalogue, and deletes a stored model', async () => {
    const { connection } = engine;
    const facts = await connection.sendRequest(MachineFactsRequest);
    assert.ok(facts.totalMemoryBytes > 0 && facts.cpuCores > 0 && facts.cacheDir === path.join(tmp, 'cache'));
    const catalogue = await connection.sendRequest(ModelCatalogueRequest, { device: 'cpu' });
    assert.equal(catalogue[0].id, 'builtin');
    assert.ok(catalogue.some((m) => m.id === 'Dream-org/Dream-Coder-v0-Instruct-7B'));

    await connection.sendRequest(PrepareModelRequest, { model: 'org/tiny-dream', device: 'cpu', hubUrl: server.baseUrl });
    const stored = await connection.sendRequest(ListStoredModelsRequest);
    assert.deepEqual(stored.map((s) => s.kind), ['converted', 'download']);
    const outside = await failure(connection.sendRequest(DeleteStoredModelRequest, { path: tmp }));
    assert.equal(outside.code, ErrorCodes.InvalidParams);
    for (const s of stored) await connection.sendRequest(DeleteStoredModelRequest, { path: s.path });
    assert.deepEqual(await connection.sendRequest(ListStoredModelsRequest), []);
  });
});

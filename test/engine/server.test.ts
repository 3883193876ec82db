/**
 * The engine process as the extension sees it: `node dist/engine/main.js serve` spawned as a child, spoken
 * to over JSON-RPC on its stdio, with a tiny synthetic model folder written by the test.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CancellationTokenSource,
  createMessageConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import {
  ErrorCodes,
  InfillProgressNotification,
  InfillRequest,
  LoadModelRequest,
  LogNotification,
  MASK_GLYPH,
  ShutdownRequest,
  StatusRequest,
  UnloadModelRequest,
  progressText,
  WarmPromptRequest,
  type InfillParams,
  type InfillProgressParams,
  type LoadedModelInfo,
  type LogParams,
} from '../../common/protocol';
import { writeSyntheticModel } from '../../engine/model/synthetic';

const ENGINE = path.join(__dirname, '..', '..', 'dist', 'engine', 'main.js');

interface EngineProcess {
  child: ChildProcess;
  connection: MessageConnection;
  progress: InfillProgressParams[];
  /** Called for each progress notification (vscode-jsonrpc allows one handler per method). */
  progressListeners: Set<(p: InfillProgressParams) => void>;
  logs: LogParams[];
  stderr: string[];
  exited: Promise<number | null>;
}

function startEngine(): EngineProcess {
  const child = spawn(process.execPath, [ENGINE, 'serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const connection = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
  const engine: EngineProcess = {
    child,
    connection,
    progress: [],
    progressListeners: new Set(),
    logs: [],
    stderr: [],
    exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
  child.stderr!.on('data', (chunk: Buffer) => engine.stderr.push(chunk.toString()));
  connection.onNotification(InfillProgressNotification, (p) => {
    engine.progress.push(p);
    for (const listener of engine.progressListeners) listener(p);
  });
  connection.onNotification(LogNotification, (p) => {
    engine.logs.push(p);
  });
  connection.listen();
  return engine;
}

async function expectError(promise: Promise<unknown>, code: number, message: RegExp): Promise<ResponseError<unknown>> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ResponseError, `expected a ResponseError, got ${error}`);
    assert.equal(error.code, code, `error code for "${error.message}"`);
    assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected error ${code}, got a result`);
}

const PREFIX = 'def add(a, b):\n    ';
const SUFFIX = '\n\nprint(add(1, 2))\n';

describe('engine server (dlm serve as a child process)', function () {
  this.timeout(120_000);
  let modelDir: string;
  let engine: EngineProcess;
  let model: LoadedModelInfo;

  before(async () => {
    modelDir = mkdtempSync(path.join(tmpdir(), 'dlm-server-model-'));
    await writeSyntheticModel(modelDir, { preset: 'tiny-dream', seed: 3 });
    engine = startEngine();
    model = await engine.connection.sendRequest(LoadModelRequest, { model: modelDir, device: 'cpu' });
  });

  after(async () => {
    if (engine.child.exitCode === null) engine.child.kill();
    engine.connection.dispose();
    rmSync(modelDir, { recursive: true, force: true });
  });

  const infill = (params: Partial<InfillParams>, token?: CancellationTokenSource) =>
    engine.connection.sendRequest(
      InfillRequest,
      { modelId: model.modelId, prefix: PREFIX, suffix: SUFFIX, length: 16, ...params },
      token?.token,
    );

  it('loads a model folder and reports it', () => {
    assert.equal(model.family, 'dream');
    assert.equal(model.device, 'cpu');
    assert.equal(model.maxCanvasTokens, 1024);
    assert.ok(model.modelId.length > 0);
  });

  it('streams progress notifications before the result', async () => {
    const events: string[] = [];
    const listener = (p: InfillProgressParams) => {
      if (p.progressToken === 'stream') events.push(`progress ${p.step}`);
    };
    engine.progressListeners.add(listener);
    const result = await infill({ length: 24, progressToken: 'stream', options: { steps: 8 } });
    events.push('result');
    engine.progressListeners.delete(listener);
    const progress = engine.progress.filter((p) => p.progressToken === 'stream');
    assert.ok(progress.length >= 1, 'at least one progress notification');
    assert.equal(events[events.length - 1], 'result');
    assert.ok(events.indexOf('result') >= 1);
    const first = progress[0];
    assert.equal(first.step, 1);
    assert.equal(first.totalSteps, 8);
    assert.equal(first.pieces.length, 24);
    assert.equal(first.confidence.length, 24);
    // Masked tokens are null in pieces and confidence alike, and drawn as the glyph.
    first.pieces.forEach((piece, i) => assert.equal(piece === null, first.confidence[i] === null));
    assert.ok(first.pieces.some((p) => p === null), 'the first step leaves masks');
    assert.ok(progressText(first.pieces).includes(MASK_GLYPH));
    // The last step has no masks left, and its text is the result's text.
    const last = progress[progress.length - 1];
    assert.equal(last.step, result.stats.steps);
    assert.ok(!progressText(last.pieces).includes(MASK_GLYPH));
    assert.equal(progressText(last.pieces), result.text);
    assert.equal(result.stats.genTokens, 24);
    assert.equal(result.stats.cache, model.defaults.cache);
    assert.ok(result.stats.graphCalls >= 1 && result.stats.rowsComputed >= result.stats.graphCalls);
    assert.ok(result.stats.tokensPerSecond > 0);
  });

  it('stops a cancelled request between steps with RequestCancelled, and logs it', async () => {
    const source = new CancellationTokenSource();
    const listener = (p: InfillProgressParams) => {
      if (p.progressToken === 'cancel-me' && p.step === 2) source.cancel();
    };
    engine.progressListeners.add(listener);
    const planned = 600;
    const error = await expectError(
      infill({ length: planned, prefix: 'x', suffix: '', progressToken: 'cancel-me', options: { steps: planned, cache: 'none' } }, source),
      ErrorCodes.RequestCancelled,
      /^Cancelled: stopped after step \d+ of \d+\.$/,
    );
    engine.progressListeners.delete(listener);
    const data = error.data as { stepsDone: number; stepsPlanned: number };
    const seen = engine.progress.filter((p) => p.progressToken === 'cancel-me');
    assert.equal(data.stepsPlanned, seen[0].totalSteps);
    assert.ok(data.stepsDone >= 2 && data.stepsDone < data.stepsPlanned, `stopped early (after ${data.stepsDone} of ${data.stepsPlanned} steps)`);
    assert.ok(seen.length <= data.stepsDone);
    await waitFor(() => engine.logs.some((l) => new RegExp(`cancelled after step ${data.stepsDone} of ${data.stepsPlanned}`).test(l.message)));
    // The engine is free again.
    const after = await infill({ length: 4 });
    assert.equal(after.stats.genTokens, 4);
  });

  it('answers malformed requests with InvalidParams and keeps serving', async () => {
    const send = (params: unknown) => engine.connection.sendRequest(InfillRequest.method, params);
    await expectError(send({ modelId: model.modelId, prefix: 'a', suffix: '', length: 'ten' }), ErrorCodes.InvalidParams, /params\.length must be a whole number; got "ten"/);
    await expectError(send({ modelId: model.modelId, prefix: 'a', length: 4 }), ErrorCodes.InvalidParams, /params\.suffix is missing/);
    await expectError(send([1, 2]), ErrorCodes.InvalidParams, /params of dlm\/infill must be an object of named fields, not an array/);
    // A valid infill passed by position is refused before anything is queued, and fields named after
    // Object.prototype's members are unknown fields like any other.
    const valid = { modelId: model.modelId, prefix: 'a', suffix: '', length: 600, options: { steps: 600 } };
    await expectError(send([valid, 1]), ErrorCodes.InvalidParams, /not an array/);
    assert.equal((await engine.connection.sendRequest(StatusRequest)).busy, 0);
    await expectError(send({ ...valid, constructor: {} }), ErrorCodes.InvalidParams, /unknown field "constructor"/);
    await expectError(send(JSON.parse(`{"modelId":"${model.modelId}","prefix":"a","suffix":"","length":4,"__proto__":{}}`)), ErrorCodes.InvalidParams, /unknown field "__proto__"/);
    await expectError(send({ ...valid, options: { toString: 1 } }), ErrorCodes.InvalidParams, /unknown field "toString"/);
    await expectError(infill({ length: 0 }), ErrorCodes.InvalidParams, /params\.length must be at least 1/);
    await expectError(infill({ length: 5000 }), ErrorCodes.InvalidParams, /length 5000 is more than the model's canvas of 1024 tokens/);
    await expectError(send({ modelId: model.modelId, prefix: 'a', suffix: '', length: 4, colour: 'red' }), ErrorCodes.InvalidParams, /unknown field "colour"/);
    await expectError(infill({ options: { cache: 'everything' as never } }), ErrorCodes.InvalidParams, /option 'cache' must be one of 'none', 'decode', 'greedy', 'prefill'/);
    await expectError(infill({ options: { stepz: 3 } as never }), ErrorCodes.InvalidParams, /unknown field "stepz"/);
    await expectError(infill({ options: { steps: -1 } }), ErrorCodes.InvalidParams, /steps/);
    await expectError(infill({ modelId: 'nope' }), ErrorCodes.ModelNotLoaded, /No model "nope" is loaded/);
    const long = await expectError(
      infill({ prefix: 'y'.repeat(1000), suffix: 'z'.repeat(30), length: 16 }),
      ErrorCodes.CanvasTooLong,
      /the model takes at most 1024/,
    );
    const data = long.data as { prefixTokens: number; fillTokens: number; suffixTokens: number; maxCanvasTokens: number };
    assert.equal(data.fillTokens, 16);
    assert.equal(data.maxCanvasTokens, 1024);
    assert.ok(data.prefixTokens + data.fillTokens + data.suffixTokens > 1024);
    await expectError(
      engine.connection.sendRequest(LoadModelRequest.method, { model: modelDir, device: 'tpu' }),
      ErrorCodes.InvalidParams,
      /params\.device must be one of auto, cpu/,
    );
    await expectError(
      engine.connection.sendRequest(LoadModelRequest, { model: path.join(modelDir, 'missing'), device: 'cpu' }),
      ErrorCodes.ModelLoadFailed,
      /does not exist/,
    );
    const result = await infill({ length: 8 });
    assert.equal(result.stats.genTokens, 8);
  });

  it('fits an over-long canvas to the model by whole lines when asked (fitToModel)', async () => {
    const lines = Array.from({ length: 400 }, (_, i) => `value_${i} = compute(${i})\n`).join('');
    const suffix = Array.from({ length: 100 }, (_, i) => `print(value_${i})\n`).join('');
    await expectError(infill({ prefix: lines, suffix, length: 16 }), ErrorCodes.CanvasTooLong, /the model takes at most 1024/);
    const fitted = await infill({ prefix: lines, suffix, length: 16, fitToModel: true });
    assert.equal(fitted.stats.genTokens, 16);
    assert.ok(fitted.stats.promptTokens <= 1024 - 16, `${fitted.stats.promptTokens} prompt tokens`);
    assert.ok(fitted.stats.promptTokens > 1024 / 2, 'most of the canvas is used');
  });

  it('answers status and a cancel while a 1 MB prefix is tokenized off the main thread; the request never runs', async () => {
    // Without fitToModel the whole prefix is tokenized (with it, only its end: contextFit.ts).
    const line = 'const value = compute(input, options) + other.call(x, y);\n';
    const source = new CancellationTokenSource();
    let settled = false;
    const huge = infill({ prefix: line.repeat(Math.ceil(1_000_000 / line.length)), progressToken: 'huge' }, source).finally(() => (settled = true));
    const status = await engine.connection.sendRequest(StatusRequest);
    assert.equal(status.busy, 1, 'the request is being prepared');
    assert.equal(settled, false, 'status was answered while the prefix was still being tokenized');
    source.cancel();
    await expectError(huge, ErrorCodes.RequestCancelled, /^Cancelled: stopped before it started\.$/);
    assert.ok(!engine.progress.some((p) => p.progressToken === 'huge'), 'no step of it ran');
    assert.equal((await infill({ length: 4 })).stats.genTokens, 4);
  });

  it('sizes the canvas to a cold-request budget from the speed measured on this device (coldBudgetMs)', async () => {
    const prefix = Array.from({ length: 400 }, (_, i) => `value_${i} = compute(${i})\n`).join('');
    // A budget no device meets keeps the fill and the minimum context; a generous one leaves the model's canvas.
    const tight = await infill({ prefix, suffix: '', length: 16, fitToModel: true, coldBudgetMs: 1e-6 });
    assert.equal(tight.stats.canvasTokenLimit, 16 + 64);
    assert.ok(tight.stats.msPerRow! > 0);
    assert.ok(tight.stats.promptTokens <= 64 && tight.stats.promptTokens > 32, `${tight.stats.promptTokens} prompt tokens`);
    const loose = await infill({ prefix, suffix: '', length: 16, fitToModel: true, coldBudgetMs: 1e9 });
    assert.equal(loose.stats.canvasTokenLimit, 1024);
    assert.ok(loose.stats.promptTokens > 1024 / 2);
    const off = await infill({ prefix, suffix: '', length: 16, fitToModel: true });
    assert.equal(off.stats.canvasTokenLimit, undefined);
    await expectError(infill({ length: 8, coldBudgetMs: -1 }), ErrorCodes.InvalidParams, /coldBudgetMs must be 0 or more/);
  });

  it('supersedes a running request when a newer one for the same document arrives', async () => {
    const older = infill({ documentId: 'file:///a.py', length: 600, prefix: 'x', suffix: '', progressToken: 'older', options: { steps: 600, cache: 'none' } });
    await waitFor(() => engine.progress.some((p) => p.progressToken === 'older'));
    const newer = infill({ documentId: 'file:///a.py', length: 8 });
    const other = infill({ documentId: 'file:///b.py', length: 8 });
    const error = await expectError(older, ErrorCodes.Superseded, /Superseded by a newer request for the same document: stopped after step \d+ of \d+/);
    const data = error.data as { stepsDone: number; stepsPlanned: number };
    assert.ok(data.stepsDone < data.stepsPlanned);
    assert.equal((await newer).stats.genTokens, 8);
    assert.equal((await other).stats.genTokens, 8);
  });

  it('warms a prompt with dlm/warmPrompt: a request stops a running warm-up or finds it done; bad ones get InvalidParams', async () => {
    const warm = (params: object) => engine.connection.sendRequest(WarmPromptRequest.method, params);
    await expectError(warm({ modelId: model.modelId, documentId: 'file:///w.py', prefix: PREFIX, suffix: SUFFIX, length: 'ten' }), ErrorCodes.InvalidParams, /params\.length must be a whole number/);
    await expectError(warm({ modelId: model.modelId, prefix: PREFIX, suffix: SUFFIX, length: 8 }), ErrorCodes.InvalidParams, /params\.documentId is missing/);
    await expectError(warm({ modelId: 'nope', documentId: 'file:///w.py', prefix: PREFIX, suffix: SUFFIX, length: 8 }), ErrorCodes.ModelNotLoaded, /No model "nope"/);
    const done = await engine.connection.sendRequest(WarmPromptRequest, { modelId: model.modelId, documentId: 'file:///v.py', prefix: PREFIX, suffix: SUFFIX, length: 8 });
    assert.equal(done?.reuseMode, 'full-depth');
    assert.equal(done?.storedTokens, 0);
    // A long prompt, then at once a request of another document: the warm-up is preempted unless it already finished.
    const prefix = Array.from({ length: 60 }, (_, i) => `value_${i} = compute(${i})\n`).join('');
    const warming = engine.connection.sendRequest(WarmPromptRequest, { modelId: model.modelId, documentId: 'file:///w.py', prefix, suffix: SUFFIX, length: 8, fitToModel: true });
    const settled = warming.then(() => 'finished' as const, (error: unknown) => error);
    const result = await infill({ documentId: 'file:///other.py', length: 8 });
    assert.equal(result.stats.genTokens, 8);
    const outcome = await settled;
    const finished = outcome === 'finished';
    if (!finished) {
      assert.ok(outcome instanceof ResponseError && outcome.code === ErrorCodes.RequestCancelled && /^Preempted by a request/.test(outcome.message), String(outcome));
    }
    // The next request of the warmed document reuses what the warm-up stored, when it finished.
    const next = await infill({ documentId: 'file:///w.py', prefix: `${prefix}v`, suffix: SUFFIX, length: 8, fitToModel: true });
    assert.equal(next.stats.reusedPrefixTokens! > 0, finished);
  });

  it('reports status with the loaded model and the last stats', async () => {
    const status = await engine.connection.sendRequest(StatusRequest);
    assert.equal(status.pid, engine.child.pid);
    assert.deepEqual(status.models.map((m) => m.modelId), [model.modelId]);
    assert.equal(status.busy, 0);
    assert.equal(status.lastStats?.genTokens, 8);
    assert.match(status.version, /^\d+\.\d+\.\d+/);
  });

  it('loads the same folder again as the same model; unloading cancels its requests', async () => {
    const again = await engine.connection.sendRequest(LoadModelRequest, { model: modelDir, device: 'cpu' });
    assert.equal(again.modelId, model.modelId);
    const second = await engine.connection.sendRequest(LoadModelRequest, { model: modelDir, device: 'auto' });
    assert.notEqual(second.modelId, model.modelId);
    // Unloading cancels what runs on the model.
    const running = infill({ modelId: second.modelId, length: 600, prefix: 'x', suffix: '', progressToken: 'unload', options: { steps: 600, cache: 'none' } });
    await waitFor(() => engine.progress.some((p) => p.progressToken === 'unload'));
    const cancelled = expectError(running, ErrorCodes.ModelNotLoaded, /The model was unloaded: stopped after step \d+ of \d+/);
    await engine.connection.sendRequest(UnloadModelRequest, { modelId: second.modelId });
    await cancelled;
    await expectError(infill({ modelId: second.modelId }), ErrorCodes.ModelNotLoaded, /No model/);
    const status = await engine.connection.sendRequest(StatusRequest);
    assert.deepEqual(status.models.map((m) => m.modelId), [model.modelId]);
  });

  it('shuts down cleanly: answers, then exits with code 0', async () => {
    await engine.connection.sendRequest(ShutdownRequest);
    assert.equal(await engine.exited, 0);
    const stderr = engine.stderr.join('');
    assert.doesNotMatch(stderr, /\[dlm error\]|Internal engine error/);
    assert.match(stderr, /stopping: shutdown requested/);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Prompt reuse through the engine (its worker thread, real onnxruntime): a document's consecutive requests reuse
 * the prompt rows they share (full-depth by default, on any folder; depth-wise on a folder readied by
 * `dlm profile-depth`, else answered without reuse and the reason logged once), a request can opt out, exact
 * decoding options reuse nothing, the debug log says what each request reused, and a warm-up readies a
 * document's first request or gives way to any request.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import { readDepthProfile } from '../../engine/reuse/depthProfile';
import { prepareModelForReuse } from '../../engine/prepare/prepareModel';
import { hasSegmentGraphs } from '../../engine/reuse/segmentFiles';
import { Engine } from '../../engine/service/engine';
import { temporaryDir } from './graphTestSupport';
import { FP32_GQA } from './reuseTestSupport';

describe('prefix reuse in the engine (worker thread, real onnxruntime)', function () {
  this.timeout(180_000);
  let dir: string;
  let plainDir: string;
  let engine: Engine;
  const logs: string[] = [];
  const debugLogs: string[] = [];

  before(async () => {
    dir = temporaryDir('reuse-engine');
    plainDir = path.join(dir, 'plain');
    const readied = path.join(dir, 'readied');
    for (const folder of [plainDir, readied]) {
      await writeSyntheticModel(folder, { preset: 'tiny-dream', seed: 3, variants: [FP32_GQA], architecture: { numLayers: 3 } });
    }
    // Profile on this repository's own sources, small and quick.
    await prepareModelForReuse(readied, { device: 'cpu', source: path.join(__dirname, '..', '..', 'engine', 'reuse'), samplesPerRatio: 2, canvasTokens: 96, fillTokens: 8 });
    engine = new Engine({ cacheDir: path.join(dir, 'cache'), log: (level, message) => (level === 'debug' ? debugLogs : logs).push(message) });
  });
  after(async () => {
    await engine?.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('dlm profile-depth readies a folder: segments for every variant and a monotone depth profile', () => {
    const readied = path.join(dir, 'readied');
    const profile = readDepthProfile(readied, 3)!;
    assert.ok(profile.ratios.length >= 5);
    for (let i = 1; i < profile.ratios.length; i++) {
      assert.ok(profile.ratios[i].ratio > profile.ratios[i - 1].ratio);
      assert.ok(profile.ratios[i].safeDepth >= profile.ratios[i - 1].safeDepth, 'safe depth monotone in the ratio');
    }
    for (const r of profile.ratios) {
      assert.ok(r.safeDepth <= r.measuredDepth);
      assert.equal(r.similarity.length, 3);
      // Layer 0's K/V depend on each row's own token only: alone and in context they are the same.
      assert.ok(Math.abs(r.similarity[0] - 1) < 1e-5);
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(readied, 'dlm-model.json'), 'utf8'));
    assert.ok(hasSegmentGraphs(readied, manifest.variants[0], 3));
  });

  it('reuses the shared prefix of a document\'s consecutive requests; opting out or another document reuses nothing', async () => {
    const info = await engine.loadModel({ model: path.join(dir, 'readied'), device: 'cpu' });
    const code = 'function add(a, b) {\n  return a + b;\n}\n\nfunction sub(a, b) {\n  return a - ';
    const request = (prefix: string, extra: object = {}) =>
      engine.infill({ modelId: info.modelId, documentId: 'file:///a.js', prefix, suffix: '\n}\n', length: 8, options: { steps: 8 }, ...extra }).result;
    const first = await request(code);
    assert.equal(first.stats.reusedPrefixTokens, 0, 'nothing stored yet');
    const typed = await request(`${code}b`);
    assert.ok(typed.stats.reusedPrefixTokens! > 10, `reused ${typed.stats.reusedPrefixTokens} tokens`);
    assert.equal(typeof typed.stats.reuseDepth, 'number');
    const optedOut = await request(`${code}b;`, { reusePrefix: false });
    assert.equal(optedOut.stats.reusedPrefixTokens, undefined);
    const other = await request(`${code}b;`, { documentId: 'file:///b.js' });
    assert.equal(other.stats.reusedPrefixTokens, 0);
  });

  it('answers depth-wise requests as before with a folder that is not readied, and says why once; full-depth reuse needs no readying', async () => {
    const info = await engine.loadModel({ model: plainDir, device: 'cpu' });
    for (const prefix of ['let x = ', 'let x = 1']) {
      const result = await engine.infill({ modelId: info.modelId, documentId: 'file:///c.js', prefix, suffix: ';\n', length: 6, reuseMode: 'depthwise' }).result;
      assert.equal(result.stats.reusedPrefixTokens, undefined);
    }
    const reasons = logs.filter((line) => line.includes('prefix reuse is off'));
    assert.equal(reasons.length, 1);
    assert.match(reasons[0], /dlm profile-depth/);
    const code = 'function add(a, b) {\n  return a + b;\n}\n\nlet y = ';
    // A suffix longer than the rows next to the cursor that are always computed (promptCarry.ts CarryWindows).
    const suffix = `;\n${'console.log(add(y, y));\n'.repeat(12)}`;
    for (const prefix of [code, `${code}2`]) await engine.infill({ modelId: info.modelId, documentId: 'file:///d.js', prefix, suffix, length: 6 }).result;
    const carried = await engine.infill({ modelId: info.modelId, documentId: 'file:///d.js', prefix: `${code}2;`, suffix, length: 6 }).result;
    assert.equal(carried.stats.reuseMode, 'full-depth');
    assert.ok(carried.stats.reusedPrefixTokens! > 0 && carried.stats.reusedSuffixTokens! > 0);
    assert.equal(carried.stats.reuseDepth, 3, 'every layer');
  });

  it('says in the debug log how many prompt rows each request reused', async () => {
    const info = await engine.loadModel({ model: path.join(dir, 'readied'), device: 'cpu' });
    const request = (prefix: string) => engine.infill({ modelId: info.modelId, documentId: 'file:///log.js', prefix, suffix: '\n}\n', length: 8 }).result;
    await request('function f(a) {\n  return ');
    const typed = await request('function f(a) {\n  return a');
    const line = debugLogs.find((l) => l.includes('file:///log.js') && l.includes(`full-depth reuse of ${typed.stats.reusedPrefixTokens} prefix + ${typed.stats.reusedSuffixTokens} suffix`));
    assert.ok(line, debugLogs.join('\n'));
    assert.match(line, new RegExp(`of ${typed.stats.promptTokens} prompt rows \\(in 3 of 3 layers\\); ${typed.stats.rowsComputed} rows computed`));
  });

  it('reuses nothing when the decoding options ask for exact decoding: refresh interval 1 gives the tokens of none, bit for bit', async () => {
    const info = await engine.loadModel({ model: path.join(dir, 'readied'), device: 'cpu' });
    const code = 'const values = [1, 2, 3];\nconst doubled = values.map((v) => ';
    const ask = (documentId: string | undefined, options: object, reuseMode?: 'depthwise') =>
      engine.infillTokens({ modelId: info.modelId, documentId, ...engine.canvasIds({ modelId: info.modelId, prefix: code, suffix: ');\n', length: 8 }), length: 8, options: { steps: 8, ...options }, reuseMode }).result;
    const none = await ask(undefined, { cache: 'none' });
    for (const reuseMode of [undefined, 'depthwise'] as const) {
      for (const options of [{ cache: 'prefill', refreshInterval: 1 }, { cache: 'decode', refreshInterval: 1 }, { cache: 'none' }]) {
        const document = `file:///exact-${reuseMode}-${JSON.stringify(options)}.js`;
        await ask(document, options, reuseMode);
        const again = await ask(document, options, reuseMode);
        assert.equal(again.stats.reusedPrefixTokens, undefined, `${JSON.stringify(options)}: nothing reused`);
        assert.deepEqual(again.fillIds, none.fillIds, `${JSON.stringify(options)}: the tokens of none`);
      }
    }
    // Opting out after reusing requests gives the output without reuse.
    const document = 'file:///opt-out.js';
    await ask(document, { cache: 'prefill' });
    await ask(document, { cache: 'prefill' });
    const optedOut = await engine.infillTokens({ modelId: info.modelId, documentId: document, ...engine.canvasIds({ modelId: info.modelId, prefix: code, suffix: ');\n', length: 8 }), length: 8, options: { steps: 8, cache: 'prefill' }, reusePrefix: false }).result;
    const plain = await ask(undefined, { cache: 'prefill' });
    assert.deepEqual(optedOut.fillIds, plain.fillIds);
    assert.equal(optedOut.stats.reusedPrefixTokens, undefined);
  });

  it('a warm-up readies the first request of a document, in either mode', async () => {
    const info = await engine.loadModel({ model: path.join(dir, 'readied'), device: 'cpu' });
    const prefix = 'class Point {\n  constructor(x, y) {\n    this.x = x;\n    ';
    for (const reuseMode of ['full-depth', 'depthwise'] as const) {
      const documentId = `file:///warm-${reuseMode}.js`;
      const warmed = await engine.warmPrompt({ modelId: info.modelId, documentId, prefix, suffix: '\n  }\n}\n', length: 8, reuseMode }).result;
      assert.equal(warmed?.reuseMode, reuseMode);
      assert.equal(warmed?.storedTokens, 0, 'nothing was stored before');
      assert.ok(warmed!.rowsComputed >= warmed!.promptTokens);
      const first = await engine.infill({ modelId: info.modelId, documentId, prefix: `${prefix}t`, suffix: '\n  }\n}\n', length: 8, reuseMode }).result;
      assert.ok(first.stats.reusedPrefixTokens! > 10, `${reuseMode}: the first request reused ${first.stats.reusedPrefixTokens} prefix rows`);
      assert.equal(first.stats.reuseMode, reuseMode);
    }
    assert.ok(debugLogs.some((l) => /warm-up of file:\/\/\/warm-full-depth\.js: \d+ rows computed/.test(l)));
  });

  it('a warm-up cut to the cold budget readies a request cut the same way; one cut otherwise readies nothing', async () => {
    const info = await engine.loadModel({ model: plainDir, device: 'cpu' });
    // Far more context than the budget's minimum (64 tokens): the budget cuts the prefix's first lines.
    const prefix = `${Array.from({ length: 60 }, (_, i) => `const v${i} = f(${i});`).join('\n')}\nconst last = `;
    const request = { modelId: info.modelId, suffix: ';\n', length: 8, fitToModel: true, coldBudgetMs: 1 };
    for (const [warmBudget, carried] of [[1, true], [undefined, false]] as const) {
      const documentId = `file:///budget-${warmBudget}.js`;
      await engine.warmPrompt({ ...request, documentId, prefix, coldBudgetMs: warmBudget }).result;
      const first = await engine.infill({ ...request, documentId, prefix: `${prefix}g` }).result;
      assert.equal(first.stats.canvasTokenLimit, 8 + 64);
      // Cut elsewhere, only the lines' first tokens happen to sit at the same positions ("const", " v").
      const rows = first.stats.reusedPrefixTokens!;
      assert.ok(carried ? rows >= 32 : rows < 16, `warmed with budget ${warmBudget}: ${rows} prefix rows carried`);
    }
  });

  it('a queued warm-up gives way to any request of the model', async () => {
    const info = await engine.loadModel({ model: path.join(dir, 'readied'), device: 'cpu' });
    // Requests are tokenized off the main thread before they are scheduled: wait until this one runs.
    let started!: () => void;
    const runningStarted = new Promise<void>((resolve) => (started = resolve));
    const running = engine.infill({ modelId: info.modelId, documentId: 'file:///busy.js', prefix: 'let a = ', suffix: ';\n', length: 48 }, { onProgress: () => started() });
    await runningStarted;
    const warm = engine.warmPrompt({ modelId: info.modelId, documentId: 'file:///idle.js', prefix: 'let b = ', suffix: ';\n', length: 8 });
    const request = engine.infill({ modelId: info.modelId, documentId: 'file:///other.js', prefix: 'let c = ', suffix: ';\n', length: 8 });
    await assert.rejects(warm.result, (e: Error & { reason?: string }) => e.reason === 'preempted');
    const [first, second] = await Promise.all([running.result, request.result]);
    assert.equal(typeof first.text, 'string');
    assert.equal(second.stats.reusedPrefixTokens, 0, 'the warm-up of another document stored nothing for it');
  });
});

/**
 * Prefix reuse through the engine (its worker thread, real onnxruntime): a folder readied by
 * `dlm profile-depth` reuses the prefix a document's consecutive requests share, a request can opt out, and a
 * folder that is not readied answers as before, with the reason logged once.
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

  before(async () => {
    dir = temporaryDir('reuse-engine');
    plainDir = path.join(dir, 'plain');
    const readied = path.join(dir, 'readied');
    for (const folder of [plainDir, readied]) {
      await writeSyntheticModel(folder, { preset: 'tiny-dream', seed: 3, variants: [FP32_GQA], architecture: { numLayers: 3 } });
    }
    // Profile on this repository's own sources, small and quick.
    await prepareModelForReuse(readied, { device: 'cpu', source: path.join(__dirname, '..', '..', 'engine', 'reuse'), samplesPerRatio: 2, canvasTokens: 96, fillTokens: 8 });
    engine = new Engine({ cacheDir: path.join(dir, 'cache'), log: (_level, message) => logs.push(message) });
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

  it('answers as before with a folder that is not readied, and says why once', async () => {
    const info = await engine.loadModel({ model: plainDir, device: 'cpu' });
    for (const prefix of ['let x = ', 'let x = 1']) {
      const result = await engine.infill({ modelId: info.modelId, documentId: 'file:///c.js', prefix, suffix: ';\n', length: 6 }).result;
      assert.equal(result.stats.reusedPrefixTokens, undefined);
    }
    const reasons = logs.filter((line) => line.includes('prefix reuse is off'));
    assert.equal(reasons.length, 1);
    assert.match(reasons[0], /dlm profile-depth/);
  });
});

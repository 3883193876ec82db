/**
 * The built-in model's decoding defaults, which inline completions use unless settings override them. Fast-dLLM's
 * threshold schedule was measured against them (README, "Fewer steps where the model is sure"): at thresholds
 * 0.7-0.9 this small model is never sure enough to commit two tokens in one step, so the defaults stay one
 * token per step in blocks of 2, committing the more confident token first.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { readManifest } from '../../engine/model/manifest';
import { Engine } from '../../engine/service/engine';

const builtinFolder = path.join(__dirname, '..', '..', 'dist', 'models', 'builtin');

describe('built-in model: decoding defaults', function () {
  this.timeout(120_000);

  it('are blocks of 2 tokens, confidence order, argmax, as `npm run build` wrote them', () => {
    const { decoding } = readManifest(builtinFolder);
    assert.deepEqual(
      { schedule: decoding.schedule, blockLength: decoding.blockLength, algorithm: decoding.algorithm, temperature: decoding.temperature },
      { schedule: 'blocks', blockLength: 2, algorithm: 'confidence', temperature: 0 },
    );
  });

  it('decode an inline fill of 16 tokens in 16 steps when the request sets nothing', async () => {
    const engine = new Engine({ cacheDir: builtinFolder, log: () => {} });
    try {
      const info = await engine.loadModel({ model: builtinFolder, device: 'cpu' });
      const prefixIds = engine.tokenize(info.modelId, 'def add(a, b):\n    ');
      const suffixIds = engine.tokenize(info.modelId, '\n\nprint(add(1, 2))\n');
      const { stats } = await engine.infillTokens({ modelId: info.modelId, prefixIds, suffixIds, length: 16, runToCompletion: true }).result;
      assert.equal(stats.steps, 16);
    } finally {
      await engine.shutdown();
    }
  });
});

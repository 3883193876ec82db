/** The canvas a cold-request budget allows at a measured graph cost (engine/server/coldBudget.ts). */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import { GraphCost, MIN_CONTEXT_TOKENS, canvasTokensForBudget } from '../../engine/service/coldBudget';
import { Engine } from '../../engine/service/engine';
import { temporaryDir } from './graphTestSupport';

describe('context sized to a cold-request budget', () => {
  it('fits the canvas to what the budget buys: the fixed cost of the steps first, then rows, once when cached, every step under none', () => {
    // 2 s, 10 ms a step, 2 ms a row: 16 steps take 160 ms, leaving 920 rows; a prefill fill of 16 computes L + 15 x 17.
    const cost = { msPerCall: 10, msPerRow: 2 };
    assert.equal(canvasTokensForBudget(2000, cost, 16, 16, 'prefill'), 920 - 15 * 17);
    // Under none every one of the 16 steps computes the canvas: 920 / 16 rows each.
    assert.equal(canvasTokensForBudget(2000, { msPerCall: 10, msPerRow: 0.5 }, 16, 16, 'none'), Math.floor(3680 / 16));
    // One step: the canvas alone.
    assert.equal(canvasTokensForBudget(2000, cost, 16, 1, 'prefill'), 995);
  });

  it('keeps the fill and a minimum of context however slow the device, even when the steps alone exceed the budget', () => {
    assert.equal(canvasTokensForBudget(2000, { msPerCall: 200, msPerRow: 4 }, 16, 15, 'prefill'), 16 + MIN_CONTEXT_TOKENS);
    assert.equal(canvasTokensForBudget(0, { msPerCall: 0, msPerRow: 1 }, 8, 8, 'none'), 8 + MIN_CONTEXT_TOKENS);
  });

  it('splits the calibration into a cost per call and per row, and rescales both by what requests measure', () => {
    const cost = new GraphCost();
    const current = () => cost.cost;
    assert.equal(current(), undefined);
    cost.record(100, 1, 50); // nothing to rescale before calibration
    assert.equal(current(), undefined);
    cost.calibrate(12, 266, 128); // 1 row: 12 ms; 128 rows: 266 ms -> 2 ms a row, 10 ms a call
    assert.deepEqual(current(), { msPerCall: 10, msPerRow: 2 });
    cost.record(2 * (10 * 4 + 2 * 100), 4, 100); // a request twice as slow as predicted moves the scale 30 % of the way
    assert.ok(Math.abs(current()!.msPerRow - 2.6) < 1e-9 && Math.abs(current()!.msPerCall - 13) < 1e-9);
    cost.record(5, 0, 0); // a request that ran no call says nothing
    assert.ok(Math.abs(current()!.msPerRow - 2.6) < 1e-9);
  });

  it('has the cost measured when the model is loaded, so the first request is already sized', async function () {
    this.timeout(60_000);
    const dir = temporaryDir('cold-budget');
    const engine = new Engine({ cacheDir: dir, log: () => {} });
    try {
      await writeSyntheticModel(dir, { preset: 'tiny-dream', seed: 3 });
      const info = await engine.loadModel({ model: dir, device: 'cpu' });
      const prefix = Array.from({ length: 300 }, (_, i) => `x${i} = ${i}\n`).join('');
      const { stats } = await engine.infill({ modelId: info.modelId, prefix, suffix: '', length: 8, fitToModel: true, coldBudgetMs: 1e-6 }).result;
      assert.ok(stats.msPerRow! > 0 && stats.msPerCall! >= 0, 'measured by the calibration passes');
      assert.equal(stats.canvasTokenLimit, 8 + MIN_CONTEXT_TOKENS);
      assert.ok(stats.promptTokens <= MIN_CONTEXT_TOKENS, `${stats.promptTokens} prompt tokens`);
    } finally {
      await engine.shutdown();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

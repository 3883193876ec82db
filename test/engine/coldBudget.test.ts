/** The canvas a cold-request budget allows at a measured cost per row (engine/server/coldBudget.ts). */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import { MIN_CONTEXT_TOKENS, RowCost, canvasTokensForBudget } from '../../engine/server/coldBudget';
import { Engine } from '../../engine/server/engine';
import { temporaryDir } from './graphTestSupport';

describe('context sized to a cold-request budget', () => {
  it('fits the canvas to the rows the budget buys: once plus the fill per later step when cached, every step under none', () => {
    // 2 s at 2 ms a row buys 1000 rows; a prefill fill of 16 in 16 steps computes L + 15 x 17 of them.
    assert.equal(canvasTokensForBudget(2000, 2, 16, 16, 'prefill'), 1000 - 15 * 17);
    // Under none every one of the 16 steps computes the canvas: at 0.5 ms a row, 4000 rows / 16.
    assert.equal(canvasTokensForBudget(2000, 0.5, 16, 16, 'none'), 250);
    // One step: the canvas alone.
    assert.equal(canvasTokensForBudget(2000, 2, 16, 1, 'prefill'), 1000);
  });

  it('keeps the fill and a minimum of context however slow the device', () => {
    assert.equal(canvasTokensForBudget(100, 50, 16, 16, 'prefill'), 16 + MIN_CONTEXT_TOKENS);
    assert.equal(canvasTokensForBudget(0, 1, 8, 8, 'none'), 8 + MIN_CONTEXT_TOKENS);
  });

  it('measures the cost per row as a running mean of graph time over rows computed', () => {
    const cost = new RowCost();
    assert.equal(cost.msPerRow, undefined);
    cost.record(100, 50);
    assert.equal(cost.msPerRow, 2);
    cost.record(400, 100); // 4 ms a row moves the mean 30 % of the way
    assert.ok(Math.abs(cost.msPerRow! - 2.6) < 1e-12);
    cost.record(5, 0); // a request that computed nothing says nothing
    assert.ok(Math.abs(cost.msPerRow! - 2.6) < 1e-12);
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
      assert.ok(stats.msPerRow! > 0, 'measured by the calibration pass');
      assert.equal(stats.canvasTokenLimit, 8 + MIN_CONTEXT_TOKENS);
      assert.ok(stats.promptTokens <= MIN_CONTEXT_TOKENS, `${stats.promptTokens} prompt tokens`);
    } finally {
      await engine.shutdown();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

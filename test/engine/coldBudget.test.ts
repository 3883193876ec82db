/** The canvas a cold-request budget allows at a measured graph cost (engine/service/coldBudget.ts). */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import {
  GraphCost, LIMIT_HYSTERESIS, MIN_CONTEXT_TOKENS, SteadyCanvasLimits, calibrationShapes, callMs, canvasTokensForBudget, coldRequestMs, type CostPerCall,
} from '../../engine/service/coldBudget';
import { Engine } from '../../engine/service/engine';
import { temporaryDir } from './graphTestSupport';

const linear = (msPerCall: number, msPerRow: number): CostPerCall => ({ msPerCall, msPerRow, msPerContextRow: 0, msPerPair: 0 });

describe('context sized to a cold-request budget', () => {
  it('fits the canvas to what the budget buys: the fixed cost of the steps first, then rows, once when cached, every step under none', () => {
    // 2 s, 10 ms a step, 2 ms a row: 16 steps take 160 ms, leaving 920 rows; a prefill fill of 16 computes L + 15 x 17.
    const cost = linear(10, 2);
    assert.equal(canvasTokensForBudget(2000, cost, 16, 16, 'prefill'), 920 - 15 * 17);
    // Under none every one of the 16 steps computes the canvas: 920 / 16 rows each.
    assert.equal(canvasTokensForBudget(2000, linear(10, 0.5), 16, 16, 'none'), Math.floor(3680 / 16));
    // One step: the canvas alone.
    assert.equal(canvasTokensForBudget(2000, cost, 16, 1, 'prefill'), 995);
    // Never past the model's canvas.
    assert.equal(canvasTokensForBudget(2000, cost, 16, 1, 'prefill', 512), 512);
  });

  it('counts the context each later step reads and the attention over it: the largest canvas that fits, exactly', () => {
    const cost: CostPerCall = { msPerCall: 10, msPerRow: 1, msPerContextRow: 0.05, msPerPair: 0.001 };
    // A cold pd fill of 16 in 16 steps on L tokens: one pass of L rows, then 15 calls of 17 rows over L - 17.
    const expected = (L: number) => callMs(cost, L, 0) + 15 * callMs(cost, 17, L - 17);
    assert.equal(coldRequestMs(cost, 700, 16, 16, 'pd'), expected(700));
    assert.equal(callMs(cost, 17, 683), 10 + 17 + 0.05 * 683 + 0.001 * 17 * 700);
    const limit = canvasTokensForBudget(2000, cost, 16, 16, 'pd');
    assert.ok(expected(limit) <= 2000 && expected(limit + 1) > 2000, `limit ${limit}`);
    assert.ok(limit < canvasTokensForBudget(2000, linear(10, 1), 16, 16, 'pd'), 'the context terms cost canvas');
  });

  it('keeps the fill and a minimum of context however slow the device, even when the steps alone exceed the budget', () => {
    assert.equal(canvasTokensForBudget(2000, linear(200, 4), 16, 15, 'prefill'), 16 + MIN_CONTEXT_TOKENS);
    assert.equal(canvasTokensForBudget(0, linear(0, 1), 8, 8, 'none'), 8 + MIN_CONTEXT_TOKENS);
  });

  it('splits the calibration calls into the four costs, and rescales them by what cold requests measure', () => {
    const truth: CostPerCall = { msPerCall: 10, msPerRow: 2, msPerContextRow: 0.03, msPerPair: 0.0005 };
    const { rows, context, shapes } = calibrationShapes(4096);
    assert.deepEqual([rows, context], [128, 512]);
    const cost = new GraphCost();
    assert.equal(cost.cost, undefined);
    cost.record(100, [{ rows: 50, contextRows: 0 }]); // nothing to rescale before calibration
    assert.equal(cost.cost, undefined);
    cost.calibrate(shapes.map((s) => callMs(truth, s.rows, s.contextRows)), rows, context);
    for (const key of Object.keys(truth) as (keyof CostPerCall)[]) assert.ok(Math.abs(cost.cost![key] - truth[key]) < 1e-9, key);
    // A request twice as slow as predicted moves the scale 30 % of the way.
    const calls = [{ rows: 100, contextRows: 0 }, { rows: 17, contextRows: 83 }];
    cost.record(2 * calls.reduce((sum, c) => sum + callMs(truth, c.rows, c.contextRows), 0), calls);
    assert.ok(Math.abs(cost.cost!.msPerRow - 2.6) < 1e-9 && Math.abs(cost.cost!.msPerCall - 13) < 1e-9);
    cost.record(5, []); // a request that ran no call says nothing
    assert.ok(Math.abs(cost.cost!.msPerRow - 2.6) < 1e-9);
    // Noise that makes a difference negative clamps that term at 0.
    cost.calibrate([12, 266, 11, 265], rows, context);
    assert.equal(cost.cost!.msPerPair, 0);
    assert.equal(cost.cost!.msPerContextRow, 0);
    // A model too short for any context calibrates the context terms to 0.
    assert.deepEqual(calibrationShapes(100).context, 0);
  });

  it('keeps the canvas limit in use while the estimate stays within the hysteresis, per budget and decoding shape', () => {
    assert.equal(LIMIT_HYSTERESIS, 0.1);
    const limits = new SteadyCanvasLimits();
    assert.equal(limits.limit('2000/16/16/pd', 500), 500);
    assert.equal(limits.limit('2000/16/16/pd', 550), 500, '+10 % keeps it');
    assert.equal(limits.limit('2000/16/16/pd', 450), 500, '-10 % keeps it');
    assert.equal(limits.limit('2000/16/16/pd', 551), 551, 'past +10 % moves it');
    assert.equal(limits.limit('2000/16/16/pd', 500), 551, '500 is within 10 % of the new limit');
    assert.equal(limits.limit('1000/16/16/pd', 260), 260, 'another budget has its own limit');
    assert.equal(limits.limit('2000/16/16/pd', 495), 495);
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
      assert.ok(stats.msPerRow! > 0 && stats.msPerCall! >= 0, 'measured by the calibration calls');
      assert.equal(stats.canvasTokenLimit, 8 + MIN_CONTEXT_TOKENS);
      assert.ok(stats.promptTokens <= MIN_CONTEXT_TOKENS, `${stats.promptTokens} prompt tokens`);
    } finally {
      await engine.shutdown();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The K/V store and the row sets each cache policy plans, on canvases driven by hand (no model): the plans
 * are pure functions of the canvas state, the store's validity and the schedule.
 */
import { strict as assert } from 'node:assert';
import type { CachePolicy, StepPlan, StepView } from '../../engine/denoiser/cachePolicy';
import { TokenCanvas } from '../../engine/denoiser/tokenCanvas';
import { randomPriority } from '../../engine/denoiser/confidence';
import { KvStore } from '../../engine/denoiser/kvStore';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import { createCachePolicy } from '../../engine/denoiser/policies';
import { KeyedRandom } from '../../engine/denoiser/rng';
import type { CacheMode, DecodingOptions } from '../../common/decodingOptions';

const MASK = 99;
const geometry = { numLayers: 2, numKvHeads: 2, headDim: 3, cacheDtype: 'float32' as const };

/** K/V whose every element encodes (kind, layer, head, position, d, salt): enough to see where rows end up. */
function fakeKv(queryRows: Int32Array, salt = 0) {
  const { numLayers, numKvHeads: heads, headDim: dim } = geometry;
  const make = (kind: number) =>
    Array.from({ length: numLayers }, (_, l) => {
      const a = new Float32Array(heads * queryRows.length * dim);
      for (let h = 0; h < heads; h++) {
        for (let q = 0; q < queryRows.length; q++) {
          for (let d = 0; d < dim; d++) a[(h * queryRows.length + q) * dim + d] = kind * 1e6 + l * 1e5 + h * 1e4 + queryRows[q] * 10 + d + salt;
        }
      }
      return a;
    });
  return { keys: make(1), values: make(2) };
}

describe('denoiser K/V store', () => {
  it('scatters persisted rows, gathers any rows in the given order, and tracks validity', () => {
    const store = new KvStore(geometry, 6);
    const q = Int32Array.from([4, 1, 2]);
    const kv = fakeKv(q);
    store.scatter(q, Uint8Array.from([1, 1, 0]), kv.keys, kv.values);
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((p) => store.isValid(p)), [false, true, false, false, true, false]);
    assert.equal(store.validCount, 2);
    assert.throws(() => store.gather(Int32Array.from([1, 2])), /row 2 is not valid/);
    const { keys, values } = store.gather(Int32Array.from([4, 1]));
    const expected = fakeKv(Int32Array.from([4, 1]));
    assert.deepEqual(Array.from(keys[1]), Array.from(expected.keys[1]));
    assert.deepEqual(Array.from(values[0]), Array.from(expected.values[0]));
  });

  it('reuses the gathered context until one of its rows is rewritten', () => {
    const store = new KvStore(geometry, 4);
    const all = Int32Array.from([0, 1, 2, 3]);
    const first = fakeKv(all);
    store.scatter(all, new Uint8Array(4).fill(1), first.keys, first.values);
    const context = Int32Array.from([0, 2]);
    const before = Array.from(store.gather(context).keys[0]);
    // Writing a row outside the context leaves the gathered rows as they were...
    const other = fakeKv(Int32Array.from([1]), 0.5);
    store.scatter(Int32Array.from([1]), Uint8Array.from([1]), other.keys, other.values);
    const reused = store.gather(context).keys[0];
    assert.deepEqual(Array.from(reused), before);
    reused[0] = -1; // not copied again: a scribble on the buffer survives the next gather of the same rows
    assert.equal(store.gather(context).keys[0][0], -1);
    reused[0] = before[0];
    // ...writing one of them is seen by the next gather.
    const fresh = fakeKv(Int32Array.from([2]), 0.25);
    store.scatter(Int32Array.from([2]), Uint8Array.from([1]), fresh.keys, fresh.values);
    const after = store.gather(context).keys[0];
    assert.equal(after[3], fresh.keys[0][0]); // head 0, context index 1 (= position 2), d 0
    assert.equal(after[0], before[0]);
  });

  it('keeps fp16 rows as raw halves', () => {
    const store = new KvStore({ ...geometry, numLayers: 1, cacheDtype: 'float16' }, 3);
    const halves = [Uint16Array.from({ length: 2 * 3 }, (_, i) => 0x3c00 + i)];
    store.scatter(Int32Array.from([2]), Uint8Array.from([1]), halves, halves);
    const gathered = store.gather(Int32Array.from([2])).keys[0];
    assert.ok(gathered instanceof Uint16Array);
    assert.deepEqual(Array.from(gathered), Array.from(halves[0]));
  });
});

/** Drives a policy by hand: plan, store the persisted rows, commit the given positions. */
class Driver {
  readonly canvas: TokenCanvas;
  readonly store: KvStore;
  readonly random: KeyedRandom;
  readonly lastScores: Float64Array;
  readonly lastProbabilities: Float64Array;
  step = 0;
  private readonly policy: CachePolicy;

  constructor(prefix: number, fill: number, suffix: number, readonly logitShift: boolean, readonly options: DecodingOptions) {
    this.canvas = new TokenCanvas(Array(prefix).fill(1), fill, Array(suffix).fill(2), MASK);
    this.store = new KvStore(geometry, this.canvas.length);
    this.random = new KeyedRandom(options.seed);
    this.lastScores = new Float64Array(this.canvas.length).fill(NaN);
    this.lastProbabilities = new Float64Array(this.canvas.length).fill(NaN);
    this.policy = createCachePolicy(options);
  }

  /** Plans a step (the whole fill as one block), stores the persisted rows, commits `commit` (default: the first candidate). */
  run(commit?: number[], count: number | null = 1): StepPlan {
    const view: StepView = {
      step: this.step,
      canvas: this.canvas,
      logitShift: this.logitShift,
      schedule: { block: { index: 0, start: this.canvas.fillStart, end: this.canvas.fillEnd }, count },
      threshold: this.options.threshold,
      store: this.store,
      random: this.random,
      lastScores: this.lastScores,
      lastProbabilities: this.lastProbabilities,
    };
    const plan = this.policy.plan(view);
    for (const row of plan.contextRows) assert.ok(this.store.isValid(row), `context row ${row} is not valid`);
    const kv = fakeKv(plan.queryRows);
    this.store.scatter(plan.queryRows, plan.persist, kv.keys, kv.values);
    for (const p of commit ?? [plan.candidates[0]]) this.canvas.commit(p, 5, 1, this.step);
    this.step++;
    return plan;
  }
}

const rows = (a: ArrayLike<number>) => Array.from(a);
const persisted = (plan: StepPlan) => rows(plan.queryRows).filter((_, i) => plan.persist[i] === 1);
const opts = (cache: CacheMode, extra: Partial<DecodingOptions> = {}): DecodingOptions => ({ ...DEFAULT_DECODING_OPTIONS, cache, ...extra });

describe('denoiser cache policies: row sets', () => {
  it('none: every row, every step, nothing stored', () => {
    const d = new Driver(2, 3, 1, true, opts('none'));
    for (let i = 0; i < 3; i++) {
      const plan = d.run();
      assert.deepEqual(rows(plan.queryRows), [0, 1, 2, 3, 4, 5]);
      assert.equal(plan.contextRows.length, 0);
      assert.deepEqual(persisted(plan), []);
    }
  });

  it('decode (unshifted): full refresh, then every row not cached yet; a token is cached one step after its commit', () => {
    // prefix 0..2, fill 3..6, suffix 7..8
    const d = new Driver(3, 4, 2, false, opts('decode', { refreshInterval: 3 }));
    let plan = d.run([3]); // step 0: refresh
    assert.deepEqual(rows(plan.queryRows), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(persisted(plan), [0, 1, 2, 7, 8]);
    plan = d.run([5]); // step 1: cached
    assert.deepEqual(rows(plan.queryRows), [3, 4, 5, 6]);
    assert.deepEqual(rows(plan.contextRows), [0, 1, 2, 7, 8]);
    assert.deepEqual(persisted(plan), [3]); // committed at step 0, computed now from its token: cached now
    assert.deepEqual(rows(plan.candidates), [4, 5, 6]);
    plan = d.run([4]); // step 2
    assert.deepEqual(rows(plan.queryRows), [4, 5, 6]);
    assert.deepEqual(persisted(plan), [5]);
    plan = d.run([6]); // step 3: refresh (3 % 3 == 0) rewrites every settled row
    assert.deepEqual(rows(plan.queryRows), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(persisted(plan), [0, 1, 2, 3, 4, 5, 7, 8]);
  });

  it('decode (shifted): a row is computed while the position it predicts is masked, and once more after its own commit', () => {
    // prefix 0..2, fill 3..6, suffix 7..8; row p predicts p+1
    const d = new Driver(3, 4, 2, true, opts('decode', { refreshInterval: 8 }));
    let plan = d.run([3]); // step 0: refresh
    assert.deepEqual(persisted(plan), [0, 1, 6, 7, 8]); // rows 2..5 predict masked 3..6; row 6 predicts the suffix: cached from its mask input
    plan = d.run([5]); // step 1
    assert.deepEqual(rows(plan.queryRows), [2, 3, 4, 5]); // row 6 stays cached
    assert.deepEqual(persisted(plan), [2]); // position 3 is final: row 2 predicts nothing masked; row 3 still predicts 4
    plan = d.run([4]); // step 2
    assert.deepEqual(rows(plan.queryRows), [3, 4, 5]); // row 4 was never stored; rows 3 and 5 predict 4 and 6
    assert.deepEqual(persisted(plan), [4]); // row 4 predicts 5 (final) and is stored from its mask input
    plan = d.run([6]); // step 3
    assert.deepEqual(rows(plan.queryRows), [3, 4, 5]); // row 4's token was committed at step 2, after its K/V were stored
    assert.deepEqual(persisted(plan), [3, 4]);
  });

  it('prefill: prefix and suffix cached by the first pass, then only fill rows (and the live predictor row)', () => {
    const shifted = new Driver(3, 4, 2, true, opts('prefill', { refreshInterval: 0 }));
    let plan = shifted.run([4]);
    assert.deepEqual(persisted(plan), [0, 1, 7, 8]);
    plan = shifted.run([3]); // position 3 masked before this step: row 2 is computed for its prediction
    assert.deepEqual(rows(plan.queryRows), [2, 3, 4, 5, 6]);
    assert.deepEqual(rows(plan.contextRows), [0, 1, 7, 8]);
    assert.deepEqual(persisted(plan), []);
    plan = shifted.run([5]); // position 3 final: row 2 is computed once more, and cached
    assert.deepEqual(rows(plan.queryRows), [2, 3, 4, 5, 6]);
    assert.deepEqual(persisted(plan), [2]);
    plan = shifted.run([6]);
    assert.deepEqual(rows(plan.queryRows), [3, 4, 5, 6]);
    assert.deepEqual(rows(plan.contextRows), [0, 1, 2, 7, 8]);

    const unshifted = new Driver(3, 4, 2, false, opts('prefill', { refreshInterval: 2 }));
    assert.deepEqual(persisted(unshifted.run()), [0, 1, 2, 7, 8]);
    assert.deepEqual(rows(unshifted.run().queryRows), [3, 4, 5, 6]);
    assert.equal(unshifted.run().queryRows.length, 9); // step 2: refresh
  });

  it('pd: the first step computes the canvas; later refreshes recompute the fill, decoded rows included, never the prompt', () => {
    // prefix 0..2, fill 3..6, suffix 7..8; row p predicts p+1
    const d = new Driver(3, 4, 2, true, opts('pd', { refreshInterval: 2 }));
    let plan = d.run([3]); // step 0: the whole canvas
    assert.deepEqual(rows(plan.queryRows), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(persisted(plan), [0, 1, 6, 7, 8]);
    plan = d.run([5]); // step 1: cached, as decode
    assert.deepEqual(rows(plan.queryRows), [2, 3, 4, 5]);
    assert.deepEqual(persisted(plan), [2]);
    plan = d.run([4]); // step 2: refresh of the fill (row 6 too, though stored), against the stored prompt
    assert.deepEqual(rows(plan.queryRows), [3, 4, 5, 6]);
    assert.deepEqual(rows(plan.contextRows), [0, 1, 2, 7, 8]);
    assert.deepEqual(persisted(plan), [4, 6]);
    plan = d.run([6]); // step 3: cached, as decode: row 4 was stored from its mask input, then committed
    assert.deepEqual(rows(plan.queryRows), [3, 4, 5]);
    assert.deepEqual(rows(plan.contextRows), [0, 1, 2, 6, 7, 8]);
    assert.deepEqual(persisted(plan), [3, 4]);
    assert.throws(() => createCachePolicy(opts('pd', { refreshInterval: 0 })), /pd needs a refresh interval >= 1/);
  });

  it('greedy (random order): last commits + rows to commit + window + predictors; the rest from the store', () => {
    const d = new Driver(2, 8, 2, true, opts('greedy', { refreshInterval: 4, window: 1, greedyOrder: 'random', seed: 11 }));
    // fill 2..9, suffix 10..11; the request's random order of the fill:
    const order = [2, 3, 4, 5, 6, 7, 8, 9].sort((a, b) => randomPriority(d.random, b) - randomPriority(d.random, a) || a - b);
    let plan = d.run(undefined, 1); // step 0: refresh, every row stored
    assert.equal(plan.queryRows.length, 12);
    assert.deepEqual(persisted(plan), rows(plan.queryRows));
    assert.deepEqual(rows(plan.candidates), [order[0]]);
    plan = d.run([order[1], order[2]], 2); // step 1: the next two in the random order
    const toCommit = [order[1], order[2]].sort((a, b) => a - b);
    assert.deepEqual(rows(plan.candidates), toCommit);
    const expected = new Set<number>([order[0], ...toCommit]);
    for (const p of toCommit) {
      // window 1: the nearest row not chosen yet, left first
      expected.add([p - 1, p + 1, p - 2, p + 2, p - 3, p + 3].find((r) => r >= 0 && r < 12 && !expected.has(r))!);
    }
    for (const p of toCommit) expected.add(p - 1); // predictor rows of the shifted model
    assert.deepEqual(rows(plan.queryRows), [...expected].sort((a, b) => a - b));
    assert.equal(plan.contextRows.length, 12 - plan.queryRows.length);
    assert.deepEqual(persisted(plan), rows(plan.queryRows));
  });

  it('greedy: a window covering the canvas queries every row', () => {
    const d = new Driver(3, 5, 3, false, opts('greedy', { refreshInterval: 100, window: 10, greedyOrder: 'random' }));
    d.run();
    for (let i = 0; i < 4; i++) assert.equal(d.run().queryRows.length, 11);
  });

  it('greedy (confidence order): stale scores pick the rows to commit; candidates are the queried block masks', () => {
    const d = new Driver(1, 8, 0, false, opts('greedy', { refreshInterval: 10, window: 1, greedyOrder: 'confidence' }));
    let plan = d.run([1], 1); // refresh: every masked row of the block is a candidate
    assert.deepEqual(rows(plan.candidates), [1, 2, 3, 4, 5, 6, 7, 8]);
    [0.1, 0.2, 0.9, 0.3, 0.1, 0.8, 0.2].forEach((score, i) => {
      d.lastScores[2 + i] = score;
      d.lastProbabilities[2 + i] = score;
    });
    plan = d.run([4, 7], 2); // stale top two: 4 and 7; their windows 3 and 6 (left first); committed last step: 1
    assert.deepEqual(rows(plan.queryRows), [1, 3, 4, 6, 7]);
    assert.deepEqual(rows(plan.candidates), [3, 4, 6, 7]);
    assert.deepEqual(persisted(plan), rows(plan.queryRows));
  });
});

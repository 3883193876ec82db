import { strict as assert } from 'node:assert';
import type { RowPredictions } from '../../engine/graph/stepContract';
import { chooseToken, randomPriority, type Sampling } from '../../engine/denoiser/confidence';
import { KeyedRandom, RandomStream } from '../../engine/denoiser/rng';
import type { Algorithm } from '../../common/decodingOptions';

function softmax(row: number[]): number[] {
  const max = Math.max(...row);
  const e = row.map((l) => Math.exp(l - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function logitsOf(rows: number[][]): RowPredictions {
  return { kind: 'logits', rows: rows.length, vocabSize: rows[0].length, logits: Float32Array.from(rows.flat()) };
}

/** The stats head's view of the same rows: top-k ids and probabilities, entropy of the full distribution. */
function statsOf(rows: number[][], k: number): RowPredictions {
  const topIds: number[] = [];
  const topProbs: number[] = [];
  const entropy: number[] = [];
  for (const row of rows) {
    const p = softmax(Array.from(Float32Array.from(row)));
    const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a] || a - b).slice(0, k);
    topIds.push(...order);
    topProbs.push(...order.map((i) => p[i]));
    entropy.push(-p.reduce((s, x) => s + (x > 0 ? x * Math.log(x) : 0), 0));
  }
  return {
    kind: 'stats', rows: rows.length, k,
    topIds: Int32Array.from(topIds), topProbs: Float32Array.from(topProbs), entropy: Float32Array.from(entropy),
  };
}

const NO_MASK = -1;
const sampling = (algorithm: Algorithm, temperature = 0, seed = 1, maskId = NO_MASK): Sampling => ({ algorithm, temperature, random: new KeyedRandom(seed), maskId });

describe('denoiser random numbers', () => {
  it('are uniform in (0, 1), reproducible per seed and independent per key', () => {
    const a = new KeyedRandom(7);
    const b = new KeyedRandom(7);
    const other = new KeyedRandom(8);
    const key = a.key(RandomStream.gumbel, 3, 4);
    let sum = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const u = a.uniformAt(key, i);
      assert.ok(u > 0 && u < 1);
      sum += u;
    }
    assert.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n}`);
    assert.equal(a.uniformAt(key, 12), b.uniformAt(b.key(RandomStream.gumbel, 3, 4), 12));
    assert.notEqual(a.uniformAt(key, 12), other.uniformAt(other.key(RandomStream.gumbel, 3, 4), 12));
    assert.notEqual(a.uniformAt(key, 12), a.uniformAt(a.key(RandomStream.gumbel, 4, 3), 12));
    assert.notEqual(a.uniformAt(key, 12), a.uniformAt(a.key(RandomStream.order, 3, 4), 12));
    assert.throws(() => new KeyedRandom(-1), /non-negative/);
  });
});

describe('denoiser confidence', () => {
  const rows = [
    [0.5, 2.0, -1.0, 1.5, 0.0],
    [3.0, 3.0, 0.0, -2.0, 1.0],
  ];

  it('temperature 0: the argmax, with max prob, margin and negative entropy as scores', () => {
    const pred = logitsOf(rows);
    const p = softmax(Array.from(Float32Array.from(rows[0])));
    const c = chooseToken(pred, 0, 10, 0, sampling('confidence'));
    assert.equal(c.token, 1);
    assert.ok(Math.abs(c.probability - p[1]) < 1e-12);
    assert.equal(c.score, c.probability);
    const m = chooseToken(pred, 0, 10, 0, sampling('margin'));
    assert.ok(Math.abs(m.score - (p[1] - p[3])) < 1e-12);
    const e = chooseToken(pred, 0, 10, 0, sampling('entropy'));
    assert.ok(Math.abs(e.score - p.reduce((s, x) => s + x * Math.log(x), 0)) < 1e-12);
    // A tie takes the lower id, like torch.argmax.
    assert.equal(chooseToken(pred, 1, 11, 0, sampling('confidence')).token, 0);
    assert.equal(chooseToken(pred, 1, 11, 0, sampling('margin')).score, 0);
  });

  it('random: a per-position priority fixed for the request, the token still the argmax', () => {
    const pred = logitsOf(rows);
    const s = sampling('random', 0, 5);
    const first = chooseToken(pred, 0, 10, 0, s);
    const later = chooseToken(pred, 1, 10, 7, s);
    assert.equal(first.score, randomPriority(s.random, 10));
    assert.equal(later.score, first.score);
    assert.notEqual(chooseToken(pred, 0, 11, 0, s).score, first.score);
    assert.equal(first.token, 1);
  });

  it('the stats head gives the same choices as full logits', () => {
    const logits = logitsOf(rows);
    const stats = statsOf(rows, 3);
    for (const algorithm of ['confidence', 'margin', 'entropy', 'random'] as const) {
      for (const row of [0, 1]) {
        const a = chooseToken(logits, row, 20 + row, 2, sampling(algorithm));
        const b = chooseToken(stats, row, 20 + row, 2, sampling(algorithm));
        assert.equal(a.token, b.token);
        assert.ok(Math.abs(a.score - b.score) < 1e-6, `${algorithm} row ${row}: ${a.score} vs ${b.score}`);
        assert.ok(Math.abs(a.probability - b.probability) < 1e-6);
      }
    }
    // With temperature the noise is keyed by token id, so a stats head holding every token samples identically.
    const full = statsOf(rows, 5);
    for (let position = 0; position < 200; position++) {
      const a = chooseToken(logits, 0, position, 1, sampling('confidence', 1.3, 9));
      const b = chooseToken(full, 0, position, 1, sampling('confidence', 1.3, 9));
      assert.equal(a.token, b.token);
    }
  });

  it('temperature > 0: a seeded Gumbel-max sample from softmax(logits / T), confidence from the un-noised softmax', () => {
    const row = [1.0, 0.0, -0.5];
    const pred = logitsOf([row]);
    for (const temperature of [1, 0.5]) {
      const expected = softmax(row.map((l) => l / temperature));
      const counts = [0, 0, 0];
      const n = 20_000;
      for (let position = 0; position < n; position++) {
        const c = chooseToken(pred, 0, position, 0, sampling('confidence', temperature, 3));
        counts[c.token]++;
        assert.ok(Math.abs(c.probability - softmax(row)[c.token]) < 1e-6);
      }
      counts.forEach((count, i) => assert.ok(Math.abs(count / n - expected[i]) < 0.015, `T=${temperature} token ${i}: ${count / n} vs ${expected[i]}`));
    }
    // Reproducible: the same seed, step and position give the same sample; other steps differ somewhere.
    const draw = (seed: number, step: number) =>
      Array.from({ length: 50 }, (_, position) => chooseToken(pred, 0, position, step, sampling('confidence', 1, seed)).token);
    assert.deepEqual(draw(3, 4), draw(3, 4));
    assert.notDeepEqual(draw(3, 4), draw(3, 5));
    assert.notDeepEqual(draw(3, 4), draw(4, 4));
  });

  it('never chooses the mask token, keeping the full softmax probabilities', () => {
    const row = [0.5, 2.0, -1.0, 1.5, 3.0]; // the mask (id 4) is the argmax
    const p = softmax(Array.from(Float32Array.from(row)));
    for (const pred of [logitsOf([row]), statsOf([row], 5)]) {
      const c = chooseToken(pred, 0, 0, 0, sampling('confidence', 0, 1, 4));
      assert.equal(c.token, 1);
      assert.ok(Math.abs(c.probability - p[1]) < 1e-6);
      const m = chooseToken(pred, 0, 0, 0, sampling('margin', 0, 1, 4));
      assert.ok(Math.abs(m.score - (p[1] - p[3])) < 1e-6);
      for (let position = 0; position < 300; position++) {
        assert.notEqual(chooseToken(pred, 0, position, 0, sampling('confidence', 2, 1, 4)).token, 4);
      }
    }
  });

  it('temperature > 0 on the stats head samples only among the top-k ids', () => {
    const pred = statsOf([[2, 1.9, 1.8, 1.7, 1.6]], 2);
    for (let position = 0; position < 500; position++) {
      const c = chooseToken(pred, 0, position, 0, sampling('confidence', 5, 1));
      assert.ok(c.token === 0 || c.token === 1);
    }
  });
});

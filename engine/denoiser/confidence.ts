/**
 * Choosing a candidate's token and how confident the choice is, from its row's prediction.
 *
 * Token: the argmax (temperature 0) or a Gumbel-max sample at the temperature (LLaDA's `add_gumbel_noise`:
 * argmax of logit + T * Gumbel, i.e. a sample from softmax(logits / T)); with the stats head the sample is
 * restricted to its top-k ids. The noise is keyed by (step, position, token id), so both heads and every cache
 * policy draw the same noise for the same token.
 *
 * Score (which candidates commit first; higher first), from the un-noised distribution:
 * - `confidence`: the probability of the chosen token (LLaDA low_confidence, Dream maskgit_plus);
 * - `margin`: top-1 minus top-2 probability (Dream topk_margin);
 * - `entropy`: the negative entropy sum(p log p) (Dream entropy, DiffuCoder's default);
 * - `random`: a uniform priority per position drawn from the seed, fixed for the whole request, so the commit
 *   order is a uniformly random order (the same distribution as LLaDA's fresh draw each step) that is known
 *   before the step: dKV-Cache-Greedy's random order is exactly this order.
 * `probability` (the un-noised probability of the chosen token) is what progress shows and what the threshold
 * schedule compares, whatever the algorithm.
 *
 * The mask token itself is never chosen: a trained model gives it no weight, but an untrained one may, and a
 * committed mask would read as still masked. Probabilities stay those of the full softmax.
 */
import type { RowPredictions } from '../graph/stepContract';
import type { Algorithm } from '../../common/decodingOptions';
import { RandomStream, type KeyedRandom } from './rng';

export interface Sampling {
  algorithm: Algorithm;
  temperature: number;
  random: KeyedRandom;
  /** The mask token id, never chosen. */
  maskId: number;
}

export interface RowChoice {
  token: number;
  probability: number;
  score: number;
}

/** The `random` algorithm's priority of a canvas position (uniform in (0, 1), fixed per request). */
export function randomPriority(random: KeyedRandom, position: number): number {
  return random.uniformAt(random.key(RandomStream.order), position);
}

/**
 * Token and score for the canvas position `position` at step `step`, read from row `row` of `predictions`
 * (already the predictor row: the caller applies the logit shift).
 */
export function chooseToken(predictions: RowPredictions, row: number, position: number, step: number, sampling: Sampling): RowChoice {
  if (row < 0 || row >= predictions.rows) throw new RangeError(`prediction row ${row} out of range 0..${predictions.rows - 1}`);
  return predictions.kind === 'logits'
    ? chooseFromLogits(predictions.logits, predictions.vocabSize, row, position, step, sampling)
    : chooseFromStats(predictions, row, position, step, sampling);
}

function chooseFromLogits(logits: Float32Array, vocabSize: number, row: number, position: number, step: number, sampling: Sampling): RowChoice {
  const base = row * vocabSize;
  const { maskId } = sampling;
  // top1/top2 over the choosable tokens; `max` over all, to centre the softmax.
  let top1 = -Infinity;
  let top2 = -Infinity;
  let argmax = -1;
  let max = -Infinity;
  for (let v = 0; v < vocabSize; v++) {
    const l = logits[base + v];
    if (l > max) max = l;
    if (v === maskId) continue;
    if (l > top1) {
      top2 = top1;
      top1 = l;
      argmax = v;
    } else if (l > top2) {
      top2 = l;
    }
  }
  if (argmax < 0) throw new Error('a prediction row has no token but the mask');
  let sumExp = 0;
  let sumExpCentered = 0;
  const wantEntropy = sampling.algorithm === 'entropy';
  for (let v = 0; v < vocabSize; v++) {
    const centered = logits[base + v] - max;
    const e = Math.exp(centered);
    sumExp += e;
    if (wantEntropy && e > 0) sumExpCentered += e * centered;
  }

  let token = argmax;
  if (sampling.temperature > 0) {
    const key = sampling.random.key(RandomStream.gumbel, step, position);
    let best = -Infinity;
    for (let v = 0; v < vocabSize; v++) {
      if (v === maskId) continue;
      const noisy = logits[base + v] + sampling.temperature * sampling.random.gumbelAt(key, v);
      if (noisy > best) {
        best = noisy;
        token = v;
      }
    }
  }
  const probability = Math.exp(logits[base + token] - max) / sumExp;

  let score: number;
  switch (sampling.algorithm) {
    case 'confidence':
      score = probability;
      break;
    case 'margin':
      score = (Math.exp(top1 - max) - (top2 === -Infinity ? 0 : Math.exp(top2 - max))) / sumExp;
      break;
    case 'entropy':
      // sum p log p with p = e^c / S:  (sum e^c * c) / S - log S
      score = sumExpCentered / sumExp - Math.log(sumExp);
      break;
    case 'random':
      score = randomPriority(sampling.random, position);
      break;
  }
  return { token, probability, score };
}

function chooseFromStats(
  predictions: Extract<RowPredictions, { kind: 'stats' }>,
  row: number,
  position: number,
  step: number,
  sampling: Sampling,
): RowChoice {
  const { k, topIds, topProbs, entropy } = predictions;
  const base = row * k;
  // The best and second best choosable entries (the list is in descending probability).
  let first = -1;
  let second = -1;
  for (let i = 0; i < k && second < 0; i++) {
    if (topIds[base + i] === sampling.maskId) continue;
    if (first < 0) first = i;
    else second = i;
  }
  if (first < 0) throw new Error('a prediction row has no token but the mask among its top-k');
  let chosen = first;
  if (sampling.temperature > 0) {
    const key = sampling.random.key(RandomStream.gumbel, step, position);
    let best = -Infinity;
    for (let i = 0; i < k; i++) {
      const p = topProbs[base + i];
      if (!(p > 0) || topIds[base + i] === sampling.maskId) continue;
      // log p differs from the logit by the row's log-partition only, so this ranks like the logits path.
      const noisy = Math.log(p) + sampling.temperature * sampling.random.gumbelAt(key, topIds[base + i]);
      if (noisy > best) {
        best = noisy;
        chosen = i;
      }
    }
  }
  const token = topIds[base + chosen];
  const probability = topProbs[base + chosen];

  let score: number;
  switch (sampling.algorithm) {
    case 'confidence':
      score = probability;
      break;
    case 'margin':
      score = topProbs[base + first] - (second >= 0 ? topProbs[base + second] : 0);
      break;
    case 'entropy':
      score = -entropy[row];
      break;
    case 'random':
      score = randomPriority(sampling.random, position);
      break;
  }
  return { token, probability, score };
}

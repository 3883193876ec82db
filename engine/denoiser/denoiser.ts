/**
 * The denoising loop: a canvas `[prefix][MASK x length][suffix]`, and per step: the schedule names the block
 * and how many to commit, the cache policy plans the graph call, the step runner runs it, each candidate's
 * token and score are chosen from its prediction, the best are committed, and progress is reported.
 * Cancellation is checked between steps.
 *
 * The loop stops as soon as every position before the first committed end-of-text token is committed: the
 * fill is trimmed there, so later steps could not change the result (`runToCompletion` turns this off, for
 * benchmarks that compare modes at equal work).
 */
import type { StepModel } from '../graph/stepContract';
import type { SpecialTokens } from '../architecture/architecture';
import type { DecodingOptions } from '../../common/decodingOptions';
import { CancelledError } from './cancellation';
import { TokenCanvas } from './tokenCanvas';
import { chooseToken, type Sampling } from './confidence';
import { KvStore } from './kvStore';
import { InvalidOptionsError } from './options';
import { createCachePolicy } from './policies';
import { KeyedRandom } from './rng';
import { createSchedule, selectCommits, type ScoredCandidate } from './schedule';
import { StepRunner } from './stepRunner';

export interface DenoiseSpec {
  tokens: SpecialTokens;
  logitShift: boolean;
  vocabSize: number;
}

export interface DenoiseRequest {
  prefixIds: number[];
  suffixIds: number[];
  /** Number of masks between prefix and suffix. */
  length: number;
  options: DecodingOptions;
  /** Keep denoising after the fill has ended with an end-of-text token (equal work across modes in benchmarks). */
  runToCompletion?: boolean;
}

export interface DenoiseProgress {
  /** 1-based index of the step just completed. */
  step: number;
  /** Steps planned (an estimate for the threshold schedule; equal to `step` on the last one). */
  totalSteps: number;
  /** The fill tokens, the mask id where still masked. */
  fill: Int32Array;
  /** Per fill token the probability it was committed with, NaN where still masked. */
  confidence: Float32Array;
}

export interface DenoiseStats {
  steps: number;
  graphCalls: number;
  /** Sum over graph calls of the rows computed (Q). */
  rowsComputed: number;
  rowsPerCall: number[];
  /** Cached rows each call read (C), in the order of `rowsPerCall`. */
  contextRowsPerCall: number[];
  ms: number;
  /** Of `ms`, the time inside graph calls. */
  graphMs: number;
  /** K/V bytes copied from host memory into graph calls, and back out (0 where they stay on the device). */
  kvBytesUploaded: number;
  kvBytesDownloaded: number;
}

export interface DenoiseResult {
  /** The fill, trimmed at the first EOS/pad token. */
  fill: number[];
  /** True when the fill contained an EOS/pad token (and was trimmed there). */
  endedEarly: boolean;
  stats: DenoiseStats;
}

export interface DenoiseHooks {
  onProgress?(progress: DenoiseProgress): void;
  isCancelled?(): boolean;
}

export async function denoise(model: StepModel, spec: DenoiseSpec, request: DenoiseRequest, hooks: DenoiseHooks = {}): Promise<DenoiseResult> {
  const started = performance.now();
  const { prefixIds, suffixIds, length, options } = request;
  // The options and the canvas's size were checked at the engine's door (options.ts, engine/service/engine.ts).
  checkTokenIds('prefix', prefixIds, spec.vocabSize);
  checkTokenIds('suffix', suffixIds, spec.vocabSize);

  const canvas = new TokenCanvas(prefixIds, length, suffixIds, spec.tokens.mask);
  const schedule = createSchedule(options, canvas);
  const policy = createCachePolicy(options);
  const store = policy.usesStore ? new KvStore(model, canvas.length) : null;
  const runner = new StepRunner(model, canvas, store, spec.logitShift, spec.vocabSize);
  const random = new KeyedRandom(options.seed);
  const sampling: Sampling = { algorithm: options.algorithm, temperature: options.temperature, random, maskId: spec.tokens.mask };
  const lastScores = new Float64Array(canvas.length).fill(NaN);
  const lastProbabilities = new Float64Array(canvas.length).fill(NaN);
  const endTokens = new Set(spec.tokens.eos);
  if (spec.tokens.pad !== null) endTokens.add(spec.tokens.pad);

  let step = 0;
  try {
    for (;;) {
      if (hooks.isCancelled?.()) throw new CancelledError(step, Math.max(schedule.plannedSteps, step + 1));
      const scheduled = schedule.next(canvas);
      if (scheduled === null) break;
      const plan = policy.plan({
        step,
        canvas,
        logitShift: spec.logitShift,
        schedule: scheduled,
        threshold: options.threshold,
        store,
        random,
        lastScores,
        lastProbabilities,
      });
      const { predictions, rowOfCandidate } = await runner.run(plan);
      const scored: ScoredCandidate[] = [];
      plan.candidates.forEach((position, i) => {
        const choice = chooseToken(predictions, rowOfCandidate[i], position, step, sampling);
        lastScores[position] = choice.score;
        lastProbabilities[position] = choice.probability;
        scored.push({ position, ...choice });
      });
      for (const c of selectCommits(scored, scheduled.count, options.threshold)) canvas.commit(c.position, c.token, c.probability, step);
      step++;

      const done = canvas.maskedCount === 0 || (!request.runToCompletion && endIsDecided(canvas, endTokens));
      hooks.onProgress?.({
        step,
        totalSteps: done ? step : Math.max(schedule.plannedSteps, step + 1),
        fill: canvas.fillTokens(),
        confidence: canvas.fillConfidences(),
      });
      if (done) break;
    }
  } finally {
    runner.release();
  }

  const fillTokens = Array.from(canvas.fillTokens());
  const end = fillTokens.findIndex((t, i) => endTokens.has(t) && !canvas.isMasked(canvas.fillStart + i));
  return {
    fill: end === -1 ? fillTokens : fillTokens.slice(0, end),
    endedEarly: end !== -1,
    stats: {
      steps: step,
      graphCalls: runner.graphCalls,
      rowsComputed: runner.rowsComputed,
      rowsPerCall: runner.rowsPerCall,
      contextRowsPerCall: runner.contextRowsPerCall,
      ms: performance.now() - started,
      graphMs: runner.graphMs,
      kvBytesUploaded: runner.kvBytesUploaded,
      kvBytesDownloaded: runner.kvBytesDownloaded,
    },
  };
}

/** True when an end-of-text token is committed and every fill position before it is committed too. */
function endIsDecided(canvas: TokenCanvas, endTokens: ReadonlySet<number>): boolean {
  for (let p = canvas.fillStart; p < canvas.fillEnd; p++) {
    if (canvas.isMasked(p)) return false;
    if (endTokens.has(canvas.token(p))) return true;
  }
  return false;
}

function checkTokenIds(part: string, ids: readonly number[], vocabSize: number): void {
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new InvalidOptionsError(`the ${part} holds token id ${id}, outside the vocabulary 0..${vocabSize - 1}`);
    }
  }
}

/**
 * A cache policy decides, for every denoising step, which canvas rows the graph computes (Q), which rows come
 * from the K/V store (C), which candidates' predictions are read, and which computed rows are written back to
 * the store as valid. The loop, the step runner and the store know nothing of any particular policy: each mode
 * (none, dKV-Cache's decode/greedy/prefill, Fast-dLLM's block caches in policies/) implements this interface.
 * Cross-request prefix reuse lives apart, in engine/reuse/, around the denoiser.
 *
 * Invariants the step runner checks on every plan: Q and C are disjoint, C rows are valid in the store, and
 * the predictor row (logitShift.ts) of every candidate is in Q. `policies/index.ts` maps a CacheMode to a policy.
 */
import type { TokenCanvas } from './tokenCanvas';
import type { KvStore } from './kvStore';
import { predictorRow } from './logitShift';
import type { KeyedRandom } from './rng';
import type { ScheduleStep } from './schedule';

/** What a policy sees when it plans a step; the state at the start of the step. */
export interface StepView {
  /** 0-based index of this step. */
  step: number;
  canvas: TokenCanvas;
  logitShift: boolean;
  /** The current block and this step's commit count (null: the threshold decides). */
  schedule: ScheduleStep;
  threshold: number;
  /** Validity of the store's rows (null for policies without a store). */
  store: KvStore | null;
  random: KeyedRandom;
  /** Per canvas position, the score and probability it had the last time its prediction was read; NaN if never. */
  lastScores: Float64Array;
  lastProbabilities: Float64Array;
}

export interface StepPlan {
  /** Rows the graph computes this step, as canvas positions (the order of the graph's Q axis). */
  queryRows: Int32Array;
  /** Rows read from the store, in the order of `past_key.*` and of the first C bias columns. */
  contextRows: Int32Array;
  /** Masked positions of the current block whose predictions the sampler reads; the commits come from these. */
  candidates: Int32Array;
  /** Per query index: 1 = write this row's new K/V to the store and mark it valid. */
  persist: Uint8Array;
}

export interface CachePolicy {
  /** Whether the policy reads or writes the K/V store (no store is allocated for `none`). */
  readonly usesStore: boolean;
  plan(view: StepView): StepPlan;
}

/** Whether `step` is a full refresh pass for interval N: step 0 always, then every N steps (N = 0: never). */
export function isRefreshStep(step: number, refreshInterval: number): boolean {
  return step === 0 || (refreshInterval > 0 && step % refreshInterval === 0);
}

/**
 * A reusable set of canvas rows: O(1) membership, cleared in O(size). Policies keep one per role so a step
 * allocates only the small arrays of its plan.
 */
export class RowSet {
  private readonly member: Uint8Array;
  private readonly rows: number[] = [];

  constructor(capacity: number) {
    this.member = new Uint8Array(capacity);
  }

  has(row: number): boolean {
    return this.member[row] === 1;
  }

  add(row: number): void {
    if (this.member[row] === 0) {
      this.member[row] = 1;
      this.rows.push(row);
    }
  }

  get size(): number {
    return this.rows.length;
  }

  clear(): void {
    for (const r of this.rows) this.member[r] = 0;
    this.rows.length = 0;
  }

  /** The rows in ascending order. */
  sorted(): Int32Array {
    return Int32Array.from(this.rows).sort();
  }
}

/** Every canvas row, ascending. */
export function allRows(length: number): Int32Array {
  return Int32Array.from({ length }, (_, i) => i);
}

/** Rows of [0, length) that are not in `query`, ascending. */
export function complement(length: number, query: RowSet): Int32Array {
  const out = new Int32Array(length - query.size);
  let n = 0;
  for (let r = 0; r < length; r++) if (!query.has(r)) out[n++] = r;
  return out;
}

/** Adds the predictor row of each candidate to `query`. */
export function addPredictorRows(query: RowSet, candidates: ArrayLike<number>, logitShift: boolean): void {
  for (let i = 0; i < candidates.length; i++) query.add(predictorRow(candidates[i], logitShift));
}

/** The persist flags for `queryRows`: 1 where `keep(row)`. */
export function persistWhere(queryRows: Int32Array, keep: (row: number) => boolean): Uint8Array {
  const flags = new Uint8Array(queryRows.length);
  for (let i = 0; i < queryRows.length; i++) flags[i] = keep(queryRows[i]) ? 1 : 0;
  return flags;
}

/** All masked positions of the step's block. */
export function blockCandidates(view: StepView): Int32Array {
  return Int32Array.from(view.canvas.maskedIn(view.schedule.block.start, view.schedule.block.end));
}

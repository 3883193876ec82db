/**
 * Context sized to the device: a loaded model's measured cost of one computed row (graph time per row, from a
 * calibration pass at load and then from every request), and the largest canvas a request can have so that,
 * computed from scratch (cold: no prefix reused from an earlier request), it is expected to take at most a
 * budget. On a fast GPU that is the model's whole canvas; on a laptop CPU running a 0.5B model, a few hundred
 * tokens.
 *
 * The estimate counts the rows the request computes: a cache that keeps the canvas's K/V after the first step
 * computes the canvas once, then per later step the rows it refreshes (the fill and one predictor row at most);
 * `none` computes the whole canvas every step. Each row costs the measured mean, which already mixes the big
 * first pass with the small later ones as requests do.
 */
import type { CacheMode } from '../protocol';

/** Rows of the calibration pass at load: enough to amortise a call's fixed cost, cheap even for a 7B on a CPU. */
export const CALIBRATION_ROWS = 128;

/** Weight of the newest request in the running mean (the device's speed drifts with its load). */
const SMOOTHING = 0.3;

/** Context kept however slow the device: less than this is no context to complete code from. */
export const MIN_CONTEXT_TOKENS = 64;

export class RowCost {
  private mean: number | undefined;

  /** Milliseconds of graph time per computed row, once measured. */
  get msPerRow(): number | undefined {
    return this.mean;
  }

  record(graphMs: number, rows: number): void {
    if (!(rows > 0) || !(graphMs >= 0)) return;
    const sample = graphMs / rows;
    this.mean = this.mean === undefined ? sample : this.mean + SMOOTHING * (sample - this.mean);
  }
}

/**
 * The largest canvas (fill included) whose cold request is expected within `budgetMs`, never less than the fill
 * plus MIN_CONTEXT_TOKENS: with L canvas tokens and S steps a request computes L·S rows under `none`, else
 * L + (S-1)·(fill+1).
 */
export function canvasTokensForBudget(budgetMs: number, msPerRow: number, fillTokens: number, steps: number, cache: CacheMode): number {
  const rows = budgetMs / msPerRow;
  const laterSteps = Math.max(0, Math.min(steps, fillTokens) - 1);
  const canvas = cache === 'none' ? rows / (laterSteps + 1) : rows - laterSteps * (fillTokens + 1);
  return Math.max(fillTokens + MIN_CONTEXT_TOKENS, Math.floor(canvas));
}

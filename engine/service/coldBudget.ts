/**
 * Context sized to the device: a loaded model's measured graph cost on its device, and the largest canvas a
 * request can have so that, computed from scratch (cold: no prefix reused from an earlier request), it is
 * expected to take at most a budget. On a fast GPU that is the model's whole canvas; on a laptop CPU running a
 * 0.5B model, a few hundred tokens, or only the minimum when the steps alone exceed the budget.
 *
 * Cost model: a graph call costs a fixed part (reading every weight once, launching the kernels) plus a part per
 * computed row. A 17-row step of a 0.5B model costs 12 ms a row against 4 ms in a 1,040-row pass, so one rate
 * per row would underestimate a fill's later steps threefold. Both parts come from two calibration passes at
 * load (1 row and CALIBRATION_ROWS rows); every request then rescales them by how its measured graph time
 * compares with their prediction (the device's speed drifts with its load).
 *
 * Rows a request computes on a canvas of L tokens with a fill of n in S steps: a cache that keeps the canvas's
 * K/V computes the canvas once, then the fill and its predictor row per later step, L + (S-1)(n+1); `none`
 * computes the canvas every step, S·L.
 */
import type { CacheMode } from '../../common/decodingOptions';

/** Rows of the larger calibration pass: enough to see the per-row cost, cheap even for a 7B on a CPU. */
export const CALIBRATION_ROWS = 128;

/** Weight of the newest request in the running scale (the device's speed drifts with its load). */
const SMOOTHING = 0.3;

/** Context kept however slow the device: less than this is no context to complete code from. */
export const MIN_CONTEXT_TOKENS = 64;

export interface CostPerCall {
  /** Milliseconds of graph time per call, and per computed row on top. */
  msPerCall: number;
  msPerRow: number;
}

export class GraphCost {
  private base: CostPerCall | undefined;
  private scale = 1;

  /** The fitted cost, once calibrated. */
  get cost(): CostPerCall | undefined {
    return this.base && { msPerCall: this.base.msPerCall * this.scale, msPerRow: this.base.msPerRow * this.scale };
  }

  /** The two calibration passes: `oneRowMs` for a call of 1 row, `passMs` for one of `rows` rows. */
  calibrate(oneRowMs: number, passMs: number, rows: number): void {
    const msPerRow = Math.max((passMs - oneRowMs) / (rows - 1), passMs / rows / 4);
    this.base = { msPerCall: Math.max(0, oneRowMs - msPerRow), msPerRow };
    this.scale = 1;
  }

  /** A request's measured graph time over its calls and rows. */
  record(graphMs: number, calls: number, rows: number): void {
    if (!this.base || !(calls > 0) || !(graphMs >= 0)) return;
    const predicted = this.base.msPerCall * calls + this.base.msPerRow * rows;
    if (predicted > 0) this.scale += SMOOTHING * (graphMs / predicted - this.scale);
  }
}

/**
 * The largest canvas (fill included) whose cold request is expected within `budgetMs` at `cost`, never less
 * than the fill plus MIN_CONTEXT_TOKENS.
 */
export function canvasTokensForBudget(budgetMs: number, cost: CostPerCall, fillTokens: number, steps: number, cache: CacheMode): number {
  const s = Math.max(1, Math.min(steps, fillTokens));
  const rows = (budgetMs - s * cost.msPerCall) / cost.msPerRow;
  const canvas = cache === 'none' ? rows / s : rows - (s - 1) * (fillTokens + 1);
  return Math.max(fillTokens + MIN_CONTEXT_TOKENS, Math.floor(canvas));
}

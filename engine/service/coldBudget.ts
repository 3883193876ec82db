/**
 * Context sized to the device: a loaded model's measured graph cost on its device, and the largest canvas a
 * request can have so that, computed from scratch (cold: no prefix reused from an earlier request), it is
 * expected to take at most a budget. On a fast GPU that is the model's whole canvas; on a laptop CPU running a
 * 0.5B model, a few hundred tokens, or only the minimum when the steps alone exceed the budget.
 *
 * Cost model: a graph call of Q computed rows over C cached rows costs
 *   a (reading every weight once, launching the kernels) + b·Q + γ·C (reading the cached K/V) + κ·Q·(C+Q) (attention).
 * A 17-row step of a 0.5B model costs 12 ms a row against 4 ms in a 1,040-row pass, so one rate per row would
 * underestimate a fill's later steps threefold; and without the context terms the first cold request at the
 * 0.5B geometry took 2.7-3.0 s against a 2 s budget (README, "Context sized to the device"). The four terms come
 * from timing four calls at load (1 and CALIBRATION_ROWS rows, each over no context and over CALIBRATION_CONTEXT
 * cached rows); every cold request then rescales them by how its measured graph time compares with their
 * prediction (the device's speed drifts with its load).
 *
 * Calls of a cold request on a canvas of L tokens with a fill of n in S steps: a cache that keeps the canvas's
 * K/V computes the canvas once (Q = L, C = 0), then the fill and its predictor row per later step (Q = n + 1
 * over the rest); `none` computes the canvas every step.
 */
import type { CacheMode } from '../../common/decodingOptions';
import type { CallShape } from './workerMessages';

/** Rows of the larger calibration calls: enough to see the per-row cost, cheap even for a 7B on a CPU. */
export const CALIBRATION_ROWS = 128;
/** Cached rows (zero K/V) of the calibration calls that read a context: an editor's canvas is a few hundred. */
export const CALIBRATION_CONTEXT = 512;

/** Weight of the newest request in the running scale (the device's speed drifts with its load). */
const SMOOTHING = 0.3;

/** A fresh estimate within this fraction of the canvas limit in use keeps that limit (SteadyCanvasLimits). */
export const LIMIT_HYSTERESIS = 0.1;

/** Context kept however slow the device: less than this is no context to complete code from. */
export const MIN_CONTEXT_TOKENS = 64;

export interface CostPerCall {
  /** Milliseconds of graph time per call, per computed row, per cached row read, and per (row, key) pair attended. */
  msPerCall: number;
  msPerRow: number;
  msPerContextRow: number;
  msPerPair: number;
}

/** The calibration calls, in the order `calibrate` takes their times. */
export function calibrationShapes(maxPositions: number): { rows: number; context: number; shapes: CallShape[] } {
  const rows = Math.min(CALIBRATION_ROWS, maxPositions);
  const context = Math.max(0, Math.min(CALIBRATION_CONTEXT, maxPositions - rows));
  return {
    rows,
    context,
    shapes: [
      { rows: 1, contextRows: 0 },
      { rows, contextRows: 0 },
      { rows: 1, contextRows: context },
      { rows, contextRows: context },
    ],
  };
}

/** Milliseconds of one call of `rows` rows over `context` cached rows. */
export function callMs(cost: CostPerCall, rows: number, context: number): number {
  return cost.msPerCall + cost.msPerRow * rows + cost.msPerContextRow * context + cost.msPerPair * rows * (context + rows);
}

export class GraphCost {
  private base: CostPerCall | undefined;
  private scale = 1;

  /** The fitted cost, once calibrated. */
  get cost(): CostPerCall | undefined {
    const base = this.base;
    if (!base) return undefined;
    return {
      msPerCall: base.msPerCall * this.scale,
      msPerRow: base.msPerRow * this.scale,
      msPerContextRow: base.msPerContextRow * this.scale,
      msPerPair: base.msPerPair * this.scale,
    };
  }

  /**
   * The times of calibrationShapes' calls: `t` = [1 row, `rows` rows, 1 row over `context`, `rows` rows over
   * `context`]. Differences of differences isolate each term; each is clamped at 0 against timing noise.
   */
  calibrate(t: readonly number[], rows: number, context: number): void {
    const [one, pass, oneOverContext, passOverContext] = t;
    const msPerPair = context > 0 && rows > 1 ? Math.max(0, (passOverContext - pass - (oneOverContext - one)) / (context * (rows - 1))) : 0;
    const msPerContextRow = context > 0 ? Math.max(0, (oneOverContext - one - msPerPair * context) / context) : 0;
    const msPerRow = Math.max((pass - one - msPerPair * (rows * rows - 1)) / (rows - 1), pass / rows / 4);
    this.base = { msPerCall: Math.max(0, one - msPerRow - msPerPair), msPerRow, msPerContextRow, msPerPair };
    this.scale = 1;
  }

  /** A cold request's measured graph time over its calls. */
  record(graphMs: number, calls: readonly CallShape[]): void {
    if (!this.base || calls.length === 0 || !(graphMs >= 0)) return;
    const base = this.base;
    const predicted = calls.reduce((sum, call) => sum + callMs(base, call.rows, call.contextRows), 0);
    if (predicted > 0) this.scale += SMOOTHING * (graphMs / predicted - this.scale);
  }
}

/** Expected graph milliseconds of a cold request on a canvas of `canvas` tokens (fill included). */
export function coldRequestMs(cost: CostPerCall, canvas: number, fillTokens: number, steps: number, cache: CacheMode): number {
  const s = Math.max(1, Math.min(steps, fillTokens));
  const fullPass = callMs(cost, canvas, 0);
  if (cache === 'none') return s * fullPass;
  const rows = Math.min(canvas, fillTokens + 1);
  return fullPass + (s - 1) * callMs(cost, rows, canvas - rows);
}

/**
 * The largest canvas (fill included, at most `maxCanvas`) whose cold request is expected within `budgetMs` at
 * `cost`, never less than the fill plus MIN_CONTEXT_TOKENS. The expected time grows with the canvas, so a binary
 * search finds it.
 */
export function canvasTokensForBudget(
  budgetMs: number,
  cost: CostPerCall,
  fillTokens: number,
  steps: number,
  cache: CacheMode,
  maxCanvas = 1 << 20,
): number {
  const floor = fillTokens + MIN_CONTEXT_TOKENS;
  const fits = (canvas: number) => coldRequestMs(cost, canvas, fillTokens, steps, cache) <= budgetMs;
  if (maxCanvas <= floor || !fits(floor)) return floor;
  if (fits(maxCanvas)) return maxCanvas;
  let low = floor;
  let high = maxCanvas;
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (fits(mid)) low = mid;
    else high = mid;
  }
  return low;
}

/**
 * The canvas limits in use, one per budget and decoding shape. Every cold request rescales the cost, and every
 * move of a limit moves where the context is cut, which costs the next request the rows it would have carried
 * from the one before; so a limit moves only when its estimate leaves ±LIMIT_HYSTERESIS around it (a cold request
 * may then be expected up to that fraction over the budget).
 */
export class SteadyCanvasLimits {
  private readonly inUse = new Map<string, number>();

  limit(key: string, estimate: number): number {
    const current = this.inUse.get(key);
    if (current !== undefined && Math.abs(estimate - current) <= current * LIMIT_HYSTERESIS) return current;
    this.inUse.set(key, estimate);
    return estimate;
  }
}

/**
 * `greedy`: dKV-Cache-Greedy. Refresh steps (step 0, then every N) compute the whole canvas and store every row,
 * masks included. Other steps compute only
 *   the rows committed at the previous step  ∪  the rows to commit this step  ∪  a window of `window` rows
 *   around each row to commit  ∪  the predictor rows of the candidates,
 * take every other row from the store, and overwrite the store with the rows they computed (each cached row
 * lives until it is recomputed or the next refresh).
 *
 * The window: for each row to commit (ascending), its nearest rows alternately left and right (p-1, p+1, p-2,
 * ...), any state, skipping rows already chosen (last step's commits, the rows to commit, earlier windows),
 * until `window` are added or the canvas is exhausted. Over all
 * canvas rows, so a window of L-1 makes Q the whole canvas and greedy equal to `none` exactly.
 *
 * Decoding order:
 * - `random` (the paper's): the rows to commit are the `count` masked rows of the block with the highest
 *   request-wide random priority (confidence.ts `randomPriority`, the `random` algorithm's order), known before
 *   the step; only they are candidates.
 * - `confidence` (ours): the rows to commit are chosen by their last known scores (from the most recent call
 *   that read their prediction: a refresh reads the whole block, a cached step the rows it computed); the
 *   candidates are every masked block row queried this step (those rows plus their windows), and the commits
 *   are chosen among them by their fresh scores. It holds quality because (1) a committed token is always
 *   sampled from this step's computation, never from a stale prediction; (2) confidence rankings drift slowly
 *   between steps (the same stability that makes cached K/V usable), so the stale top rows are nearly always
 *   among the fresh top rows, and the window around them gives rows whose confidence rose a chance to be
 *   queried and win. A block whose rows have no score yet (its first step) queries all its masked rows.
 */
import type { GreedyOrder } from '../../../common/decodingOptions';
import {
  addPredictorRows,
  allRows,
  blockCandidates,
  complement,
  isRefreshStep,
  RowSet,
  type CachePolicy,
  type StepPlan,
  type StepView,
} from '../cachePolicy';
import { randomPriority } from '../confidence';

export class GreedyPolicy implements CachePolicy {
  readonly usesStore = true;
  private query: RowSet | null = null;

  constructor(
    private readonly refreshInterval: number,
    private readonly window: number,
    private readonly order: GreedyOrder,
  ) {
    if (!Number.isInteger(refreshInterval) || refreshInterval < 1) {
      throw new RangeError(`greedy needs a refresh interval >= 1, got ${refreshInterval}`);
    }
    if (!Number.isInteger(window) || window < 0) throw new RangeError(`greedy needs a window >= 0, got ${window}`);
  }

  plan(view: StepView): StepPlan {
    const { canvas, step, logitShift } = view;
    const length = canvas.length;
    if (isRefreshStep(step, this.refreshInterval)) {
      const queryRows = allRows(length);
      const candidates = this.order === 'random' ? Int32Array.from(this.randomOrderCommits(view)).sort() : blockCandidates(view);
      return { queryRows, contextRows: new Int32Array(0), candidates, persist: new Uint8Array(length).fill(1) };
    }

    const toCommit = this.order === 'random' ? this.randomOrderCommits(view) : this.staleConfidenceCommits(view);
    const query = (this.query ??= new RowSet(length));
    query.clear();
    for (let p = canvas.fillStart; p < canvas.fillEnd; p++) if (canvas.committedAt(p) === step - 1) query.add(p);
    for (const p of toCommit) query.add(p);
    for (const p of [...toCommit].sort((a, b) => a - b)) this.addWindow(query, p, length);

    let candidates: Int32Array;
    if (this.order === 'random') {
      candidates = Int32Array.from(toCommit).sort();
    } else {
      const { start, end } = view.schedule.block;
      candidates = Int32Array.from(canvas.maskedIn(start, end).filter((p) => query.has(p)));
    }
    addPredictorRows(query, candidates, logitShift);
    const queryRows = query.sorted();
    return {
      queryRows,
      contextRows: complement(length, query),
      candidates,
      persist: new Uint8Array(queryRows.length).fill(1),
    };
  }

  /** The block's `count` masked rows of highest random priority. */
  private randomOrderCommits(view: StepView): number[] {
    const { count, block } = view.schedule;
    if (count === null) throw new Error("greedy's random order needs a schedule with a fixed count per step (not 'threshold')");
    return view.canvas
      .maskedIn(block.start, block.end)
      .map((p) => ({ p, priority: randomPriority(view.random, p) }))
      .sort((a, b) => b.priority - a.priority || a.p - b.p)
      .slice(0, count)
      .map((x) => x.p);
  }

  /** The rows to commit by their last known scores; every masked row of the block when one has none. */
  private staleConfidenceCommits(view: StepView): number[] {
    const { count, block } = view.schedule;
    const masked = view.canvas.maskedIn(block.start, block.end);
    if (masked.some((p) => Number.isNaN(view.lastScores[p]))) return masked;
    const ranked = [...masked].sort((a, b) => view.lastScores[b] - view.lastScores[a] || a - b);
    if (count !== null) return ranked.slice(0, count);
    const passing = ranked.filter((p) => view.lastProbabilities[p] >= view.threshold);
    return passing.length > 0 ? passing : ranked.slice(0, 1);
  }

  private addWindow(query: RowSet, center: number, length: number): void {
    let added = 0;
    for (let d = 1; added < this.window && (center - d >= 0 || center + d < length); d++) {
      for (const row of [center - d, center + d]) {
        if (added < this.window && row >= 0 && row < length && !query.has(row)) {
          query.add(row);
          added++;
        }
      }
    }
  }
}

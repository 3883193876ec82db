/**
 * `decode`: dKV-Cache-Decode (Ma et al. 2025). A token's K/V are cached only once it is settled (final, and
 * for a shifted model no longer predicting a masked position), and only from the first graph call after that:
 * the call that commits a token computed its row from the mask input, so its K/V are taken one step later
 * ("delayed caching"). Refresh steps (step 0, then every N) compute the whole canvas and rewrite every settled
 * row; other steps compute every row not valid in the store (all masks, anywhere in the canvas, plus the rows
 * settled since the last call) against the valid rows.
 */
import {
  addPredictorRows,
  allRows,
  blockCandidates,
  complement,
  isRefreshStep,
  persistWhere,
  RowSet,
  type CachePolicy,
  type StepPlan,
  type StepView,
} from '../cachePolicy';
import { isSettledBefore } from '../logitShift';

export class DecodePolicy implements CachePolicy {
  readonly usesStore = true;
  private query: RowSet | null = null;

  constructor(private readonly refreshInterval: number) {
    if (!Number.isInteger(refreshInterval) || refreshInterval < 1) {
      throw new RangeError(`decode needs a refresh interval >= 1, got ${refreshInterval}`);
    }
  }

  plan(view: StepView): StepPlan {
    const { canvas, step, logitShift } = view;
    const store = view.store!;
    const length = canvas.length;
    const candidates = blockCandidates(view);
    const settled = (row: number) => isSettledBefore(canvas, row, logitShift, step);
    if (isRefreshStep(step, this.refreshInterval)) {
      const queryRows = allRows(length);
      return { queryRows, contextRows: new Int32Array(0), candidates, persist: persistWhere(queryRows, settled) };
    }
    const query = (this.query ??= new RowSet(length));
    query.clear();
    for (let row = 0; row < length; row++) if (!store.isValid(row)) query.add(row);
    // Predictor rows of masked positions are never settled, hence never valid and already in Q; adding them
    // keeps the step runner's invariant from resting on that argument alone.
    addPredictorRows(query, candidates, logitShift);
    const queryRows = query.sorted();
    return { queryRows, contextRows: complement(length, query), candidates, persist: persistWhere(queryRows, settled) };
  }
}

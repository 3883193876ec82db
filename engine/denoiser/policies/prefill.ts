/**
 * `prefill`: dKV-Cache-Prefill. The prefix and the suffix (the prompt of an infill) are computed by the first
 * full pass and cached; later steps compute only the fill rows against them. A shifted model's last prefix row
 * predicts the first fill position, so it stays a query row while that position is masked and is cached by the
 * first call after it settles. With refreshInterval N > 0 a full pass every N steps rewrites the prompt rows;
 * N = 0 never refreshes.
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

export class PrefillPolicy implements CachePolicy {
  readonly usesStore = true;
  private query: RowSet | null = null;

  constructor(private readonly refreshInterval: number) {
    if (!Number.isInteger(refreshInterval) || refreshInterval < 0) {
      throw new RangeError(`prefill needs a refresh interval >= 0, got ${refreshInterval}`);
    }
  }

  plan(view: StepView): StepPlan {
    const { canvas, step, logitShift } = view;
    const store = view.store!;
    const length = canvas.length;
    const candidates = blockCandidates(view);
    const settledPrompt = (row: number) => !canvas.isFill(row) && isSettledBefore(canvas, row, logitShift, step);
    if (isRefreshStep(step, this.refreshInterval)) {
      const queryRows = allRows(length);
      return { queryRows, contextRows: new Int32Array(0), candidates, persist: persistWhere(queryRows, settledPrompt) };
    }
    const query = (this.query ??= new RowSet(length));
    query.clear();
    for (let row = 0; row < length; row++) if (canvas.isFill(row) || !store.isValid(row)) query.add(row);
    addPredictorRows(query, candidates, logitShift);
    const queryRows = query.sorted();
    return { queryRows, contextRows: complement(length, query), candidates, persist: persistWhere(queryRows, settledPrompt) };
  }
}

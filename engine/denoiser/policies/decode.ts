/**
 * `decode`: dKV-Cache-Decode (Ma et al. 2025). Refresh steps (step 0, then every N) compute the whole canvas;
 * cached steps compute only
 *   the rows that predict a masked position (their logits are read)  ∪  the rows with no K/V in the store
 *   ∪  the rows whose own token was committed at or after the step their stored K/V were computed in,
 * against every other row from the store. After each call, every computed row that predicts no masked position
 * is stored. So a token committed at step i, whose row was computed from the mask input, is recomputed at step
 * i+1 and cached from then on: dKV-Cache's delayed caching.
 *
 * Without a logit shift the predictor rows are the masked rows, so only decoded tokens are ever cached, as in
 * the paper's LLaDA code. With a shift (Dream) row p predicts p+1: a masked row whose right neighbour is decoded
 * predicts nothing and is cached from its mask input, as dKV-Cache's Dream code does (its default 'un' shift
 * type); unlike that code, the row is recomputed once its own token is committed, so no decoded token keeps
 * mask-input K/V until the next refresh.
 *
 * `pd` (policies/pd.ts) is this policy with refreshes after step 0 that leave the prompt alone.
 */
import {
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
import { predictsMaskedPosition } from '../logitShift';

export class DecodePolicy implements CachePolicy {
  readonly usesStore = true;
  private query: RowSet | null = null;
  /** Per row, the step whose graph call computed the K/V now in the store (-1: none yet). */
  private storedAtStep: Int32Array | null = null;

  constructor(private readonly refreshInterval: number, cacheName = 'decode') {
    if (!Number.isInteger(refreshInterval) || refreshInterval < 1) {
      throw new RangeError(`${cacheName} needs a refresh interval >= 1, got ${refreshInterval}`);
    }
  }

  plan(view: StepView): StepPlan {
    const { canvas, step, logitShift } = view;
    const store = view.store!;
    const length = canvas.length;
    const storedAtStep = (this.storedAtStep ??= new Int32Array(length).fill(-1));
    const candidates = blockCandidates(view);
    const predicts = (row: number) => predictsMaskedPosition(canvas, row, logitShift);
    const persistAndRecord = (queryRows: Int32Array) => {
      const persist = persistWhere(queryRows, (row) => !predicts(row));
      for (let i = 0; i < queryRows.length; i++) if (persist[i]) storedAtStep[queryRows[i]] = step;
      return persist;
    };
    const refresh = isRefreshStep(step, this.refreshInterval);
    if (refresh && !this.refreshKeepsPrompt(step)) {
      const queryRows = allRows(length);
      return { queryRows, contextRows: new Int32Array(0), candidates, persist: persistAndRecord(queryRows) };
    }
    const query = (this.query ??= new RowSet(length));
    query.clear();
    for (let row = 0; row < length; row++) {
      const committed = canvas.committedAt(row);
      const stale = committed !== undefined && committed >= storedAtStep[row];
      if (predicts(row) || !store.isValid(row) || stale || (refresh && canvas.isFill(row))) query.add(row);
    }
    const queryRows = query.sorted();
    return { queryRows, contextRows: complement(length, query), candidates, persist: persistAndRecord(queryRows) };
  }

  /** Whether the refresh at `step` recomputes only the fill, keeping the prompt's stored K/V (false: the whole canvas). */
  protected refreshKeepsPrompt(_step: number): boolean {
    return false;
  }
}

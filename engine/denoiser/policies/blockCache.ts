/**
 * `block-prefix` and `block-dual`: Fast-dLLM's block-level K/V caches (Wu et al. 2025, `generate_with_prefix_cache`
 * and `generate_with_dual_cache`), for semi-autoregressive blocks.
 *
 * The first step of every block is a full pass: it computes the whole canvas, stores every row (masks included)
 * and already commits that block's first tokens, as Fast-dLLM fuses the cache fill with the block's first decode
 * step. The block's later steps compute
 * - `block-prefix` (PrefixCache): the block and everything right of it, against the stored rows left of the block;
 * - `block-dual` (DualCache): only the block, against every other row stored (left and right of it),
 * and store nothing: the cache stays the block-start pass, as in Fast-dLLM. With refreshInterval N > 0 a full
 * pass also runs every N steps into a block (N = 1: every step, which is `none` exactly); N = 0 refreshes only
 * at block starts (Fast-dLLM's setting).
 *
 * Logit shift: Fast-dLLM's Dream code decodes the block's first token from the block-start pass because the row
 * before the block is not fed afterwards. Here the predictor row of every candidate is queried instead (row
 * `start - 1` while the block's first position is masked), so any schedule works unchanged, `threshold`
 * (Fast-dLLM's parallel decoding) included.
 */
import {
  addPredictorRows,
  allRows,
  blockCandidates,
  complement,
  RowSet,
  type CachePolicy,
  type StepPlan,
  type StepView,
} from '../cachePolicy';

export type BlockCacheKind = 'prefix' | 'dual';

export class BlockCachePolicy implements CachePolicy {
  readonly usesStore = true;
  private query: RowSet | null = null;
  private blockIndex = -1;
  private blockFirstStep = 0;

  constructor(
    private readonly kind: BlockCacheKind,
    private readonly refreshInterval: number,
  ) {
    if (!Number.isInteger(refreshInterval) || refreshInterval < 0) {
      throw new RangeError(`block-${kind} needs a refresh interval >= 0, got ${refreshInterval}`);
    }
  }

  plan(view: StepView): StepPlan {
    const { canvas, step, logitShift } = view;
    const { block } = view.schedule;
    const length = canvas.length;
    if (block.index !== this.blockIndex) {
      this.blockIndex = block.index;
      this.blockFirstStep = step;
    }
    const candidates = blockCandidates(view);
    const intoBlock = step - this.blockFirstStep;
    if (intoBlock === 0 || (this.refreshInterval > 0 && intoBlock % this.refreshInterval === 0)) {
      const queryRows = allRows(length);
      return { queryRows, contextRows: new Int32Array(0), candidates, persist: new Uint8Array(length).fill(1) };
    }
    const query = (this.query ??= new RowSet(length));
    query.clear();
    const end = this.kind === 'prefix' ? length : block.end;
    for (let row = block.start; row < end; row++) query.add(row);
    addPredictorRows(query, candidates, logitShift);
    const queryRows = query.sorted();
    return { queryRows, contextRows: complement(length, query), candidates, persist: new Uint8Array(queryRows.length) };
  }
}

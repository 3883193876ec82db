/** `none`: every step computes the whole canvas; nothing is cached. */
import { allRows, blockCandidates, type CachePolicy, type StepPlan, type StepView } from '../cachePolicy';

export class NoCachePolicy implements CachePolicy {
  readonly usesStore = false;
  private rows: Int32Array | null = null;

  plan(view: StepView): StepPlan {
    const length = view.canvas.length;
    this.rows ??= allRows(length);
    return {
      queryRows: this.rows,
      contextRows: new Int32Array(0),
      candidates: blockCandidates(view),
      persist: new Uint8Array(length),
    };
  }
}

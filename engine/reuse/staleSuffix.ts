/**
 * Stale suffix rows: the leading rows of a request's suffix that its document's previous request also had,
 * with the K/V it computed for them (keys already moved to this request's positions). A call that runs in
 * stale mode does not compute them: their stored K/V stand in, unless the call reads a row's prediction.
 */
import type { KvArray, StepFeeds } from '../graph/stepContract';
import { allocate, copyRows } from './kvRows';
import type { ReusableSuffix } from './reuseHarvest';

export class StaleSuffixRows {
  /** Stale rows available: the suffix's leading `count` rows. */
  readonly count: number;

  constructor(
    private readonly stale: ReusableSuffix | null,
    /** The request's suffix, and its first row's position in the denoiser's canvas and in the whole canvas. */
    suffixIds: readonly number[],
    private readonly suffixStart: number,
    absoluteSuffixStart: number,
    private readonly geometry: { numKvHeads: number; headDim: number },
  ) {
    this.count = stale?.ids.length ?? 0;
    if (!stale) return;
    if (stale.ids.length > suffixIds.length || stale.ids.some((id, i) => id !== suffixIds[i])) {
      throw new Error('the stale suffix rows are not the leading rows of this suffix');
    }
    if (stale.start !== absoluteSuffixStart) {
      throw new Error(`the stale suffix rows' keys are for position ${stale.start}, the suffix starts at ${absoluteSuffixStart}`);
    }
  }

  /** A stale-mode call's rows: those computed, and the stale ones answered from the store (both in call order). */
  partition(feeds: StepFeeds): { computed: number[]; stale: number[] } {
    const readRows = new Set(Array.from(feeds.logitsIndex, Number));
    const computed: number[] = [];
    const stale: number[] = [];
    for (let i = 0; i < feeds.inputIds.length; i++) {
      const suffixRow = Number(feeds.positionIds[i]) - this.suffixStart;
      const useStale = suffixRow >= 0 && suffixRow < this.count && !readRows.has(i);
      (useStale ? stale : computed).push(i);
    }
    return { computed, stale };
  }

  /** `[Hkv, u, D]` keys (or values) of one layer for the call rows `rows` (all stale), in their order. */
  keys(layer: number, feeds: StepFeeds, rows: readonly number[]): KvArray {
    return this.gather(this.stale?.keys[layer], feeds, rows);
  }

  values(layer: number, feeds: StepFeeds, rows: readonly number[]): KvArray {
    return this.gather(this.stale?.values[layer], feeds, rows);
  }

  private gather(source: KvArray | undefined, feeds: StepFeeds, rows: readonly number[]): KvArray {
    const { numKvHeads: heads, headDim: dim } = this.geometry;
    if (!source || rows.length === 0) return new Float32Array(0);
    const out = allocate(source instanceof Uint16Array ? 'float16' : 'float32', heads * rows.length * dim);
    const suffixRows = rows.map((row) => Number(feeds.positionIds[row]) - this.suffixStart);
    copyRows(source, this.count, suffixRows, out, rows.length, 0, heads, dim);
    return out;
  }
}

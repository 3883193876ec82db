/**
 * The harvest side of prefix reuse: while a request runs, what its calls computed is collected for the next
 * request of the same document, which finds it in the store (prefixStore.ts). Per layer it keeps the K/V of
 * every row of the denoiser's canvas outside the fill (the prefix rows after the shared ones, the "tail", and the
 * suffix rows), each from its earliest computation in the request: the next request's first call sees its fill
 * all masked, and the earliest values were computed with the fill least decoded. Of the tail rows it also keeps
 * the hidden states entering the harvested depths (depth-wise calls only), which a depth-wise refresh starts from;
 * with depths to harvest, a tail row is passed on only with them.
 *
 * Suffix rows taken from the store for the request (stale rows) count as held without being computed: the
 * harvest passes them on as they were given, until a call computes them.
 */
import type { CacheDtype, KvArray, StepFeeds, StepResult } from '../graph/stepContract';
import { allocate, concatRows, copyRows, leadingRows } from './kvRows';

/** K/V of canvas rows 0..n-1 and their hidden states at some depths, as an earlier request computed them. */
export interface ReusablePrefix {
  ids: number[];
  /** Per layer `[Hkv, n, D]`, keys after RoPE. */
  keys: KvArray[];
  values: KvArray[];
  /** Per depth d (0 < d < L): the hidden states entering layer d, `[n, H]`. */
  hidden: Map<number, KvArray>;
}

/** K/V of the leading rows of a request's suffix, as an earlier request computed them. */
export interface ReusableSuffix {
  ids: number[];
  /** Canvas position of the first row (its keys are rotated for it). */
  start: number;
  keys: KvArray[];
  values: KvArray[];
}

/** What a request leaves for the next one of its document. */
export interface ReuseHarvest {
  /** Prefix rows [0, n) with K/V and hidden states at the harvested depths; n = s + the tail rows computed. */
  prefix: ReusablePrefix;
  suffix: ReusableSuffix | null;
}

export interface HarvestGeometry {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
  cacheDtype: CacheDtype;
}

/** The denoiser's canvas as the harvest sees it: `[tail][fill][suffix]` at positions 0.. . */
export interface HarvestLayout {
  tailIds: number[];
  fillLength: number;
  suffixIds: number[];
  /** Depths whose hidden states are kept. */
  depths: number[];
}

export class RequestHarvest {
  private readonly tailLength: number;
  private readonly suffixStart: number;
  private readonly suffixLength: number;
  private readonly tailKeys: KvArray[];
  private readonly tailValues: KvArray[];
  private readonly tailHave: Uint8Array;
  private readonly tailHidden = new Map<number, KvArray>();
  private readonly tailHiddenHave: Uint8Array;
  private readonly suffixKeys: KvArray[];
  private readonly suffixValues: KvArray[];
  /** Suffix rows holding K/V (stale from the store, or computed), and those computed in this request. */
  private readonly suffixHave: Uint8Array;
  private readonly suffixComputed: Uint8Array;

  constructor(
    private readonly geometry: HarvestGeometry,
    private readonly layout: HarvestLayout,
  ) {
    const { numLayers: L, numKvHeads: heads, headDim: dim, hiddenSize, cacheDtype } = geometry;
    this.tailLength = layout.tailIds.length;
    this.suffixStart = this.tailLength + layout.fillLength;
    this.suffixLength = layout.suffixIds.length;
    const perLayer = (rows: number) => Array.from({ length: L }, () => allocate(cacheDtype, heads * rows * dim));
    this.tailKeys = perLayer(this.tailLength);
    this.tailValues = perLayer(this.tailLength);
    this.tailHave = new Uint8Array(this.tailLength);
    this.tailHiddenHave = new Uint8Array(this.tailLength);
    for (const d of layout.depths) this.tailHidden.set(d, allocate(cacheDtype, this.tailLength * hiddenSize));
    this.suffixKeys = perLayer(this.suffixLength);
    this.suffixValues = perLayer(this.suffixLength);
    this.suffixHave = new Uint8Array(this.suffixLength);
    this.suffixComputed = new Uint8Array(this.suffixLength);
  }

  /**
   * Holds suffix rows from the store (keys at this request's positions), rows `at`.. of the suffix, until a call
   * computes them.
   */
  seedSuffix(stored: ReusableSuffix, at = 0): void {
    const { numLayers: L, numKvHeads: heads, headDim: dim } = this.geometry;
    const u = stored.ids.length;
    const rows = Array.from({ length: u }, (_, i) => i);
    for (let l = 0; l < L; l++) {
      copyRows(stored.keys[l], u, rows, this.suffixKeys[l], this.suffixLength, at, heads, dim);
      copyRows(stored.values[l], u, rows, this.suffixValues[l], this.suffixLength, at, heads, dim);
    }
    this.suffixHave.fill(1, at, at + u);
  }

  /** Whether a call at these positions computes a tail or suffix row whose K/V the harvest does not have yet. */
  wants(positionIds: BigInt64Array): boolean {
    for (const position of positionIds) {
      const p = Number(position);
      if (p < this.tailLength ? !this.tailHave[p] : p >= this.suffixStart && !this.suffixComputed[p - this.suffixStart]) return true;
    }
    return false;
  }

  /** The K/V of every tail and suffix row the call computed for the first time in this request; `skip`: call rows not computed. */
  recordKv(feeds: StepFeeds, result: StepResult, skip: ReadonlySet<number>): void {
    const q = feeds.inputIds.length;
    const { numLayers: L, numKvHeads: heads, headDim: dim } = this.geometry;
    for (let i = 0; i < q; i++) {
      if (skip.has(i)) continue;
      const p = Number(feeds.positionIds[i]);
      const tail = p < this.tailLength;
      const suffixRow = p - this.suffixStart;
      if (!tail && suffixRow < 0) continue;
      const [keys, values, rows, at, computed] = tail
        ? [this.tailKeys, this.tailValues, this.tailLength, p, this.tailHave]
        : [this.suffixKeys, this.suffixValues, this.suffixLength, suffixRow, this.suffixComputed];
      if (computed[at]) continue;
      for (let l = 0; l < L; l++) {
        copyRows(result.newKeys[l], q, [i], keys[l], rows, at, heads, dim);
        copyRows(result.newValues[l], q, [i], values[l], rows, at, heads, dim);
      }
      computed[at] = 1;
      if (!tail) this.suffixHave[at] = 1;
    }
  }

  /**
   * The hidden states entering `layer` of the tail rows among a depth-wise call's computed rows: call row
   * `computed[i]` is row `offset + i` of `hidden`.
   */
  recordHidden(positionIds: BigInt64Array, computed: readonly number[], layer: number, hidden: KvArray, offset: number): void {
    const target = this.tailHidden.get(layer);
    const H = this.geometry.hiddenSize;
    computed.forEach((row, i) => {
      const p = Number(positionIds[row]);
      if (p >= this.tailLength || this.tailHiddenHave[p]) return;
      if (target) target.set(hidden.subarray((offset + i) * H, (offset + i + 1) * H), p * H);
      if (layer === this.geometry.numLayers - 1) this.tailHiddenHave[p] = 1;
    });
  }

  /**
   * What the next request of the document can reuse: the shared rows (`shared`, with the K/V the harvest keeps
   * for them per layer), then the leading tail rows held with K/V and hidden states, and the leading suffix rows
   * held with K/V. Only depths the shared rows have hidden states for are kept (all of them when none are shared).
   */
  harvest(shared: ReusablePrefix | null, sharedKeys: readonly KvArray[], sharedValues: readonly KvArray[]): ReuseHarvest {
    const { numLayers: L, numKvHeads: heads, headDim: dim, hiddenSize: H, cacheDtype } = this.geometry;
    const s = shared?.ids.length ?? 0;
    let t = 0;
    const needsHidden = this.layout.depths.length > 0;
    while (t < this.tailLength && this.tailHave[t] && (!needsHidden || this.tailHiddenHave[t])) t++;
    const n = s + t;
    const depths = this.layout.depths.filter((d) => s === 0 || shared!.hidden.has(d));
    const hidden = new Map<number, KvArray>();
    for (const d of depths) {
      const joined = allocate(cacheDtype, n * H);
      if (s > 0) joined.set(shared!.hidden.get(d)!.subarray(0, s * H), 0);
      joined.set(this.tailHidden.get(d)!.subarray(0, t * H), s * H);
      hidden.set(d, joined);
    }
    const keys: KvArray[] = [];
    const values: KvArray[] = [];
    for (let l = 0; l < L; l++) {
      const join = (sharedRows: KvArray | undefined, tailRows: KvArray) =>
        concatRows(allocate(cacheDtype, heads * n * dim), [
          ...(sharedRows ? [{ data: sharedRows, rows: s }] : []),
          { data: leadingRows(tailRows, this.tailLength, t, heads, dim), rows: t },
        ], heads, dim);
      keys.push(join(sharedKeys[l], this.tailKeys[l]));
      values.push(join(sharedValues[l], this.tailValues[l]));
    }
    const prefix: ReusablePrefix = { ids: [...(shared?.ids ?? []), ...this.layout.tailIds.slice(0, t)], keys, values, hidden };

    let m = 0;
    while (m < this.suffixLength && this.suffixHave[m]) m++;
    const suffix: ReusableSuffix | null =
      m === 0
        ? null
        : {
            ids: this.layout.suffixIds.slice(0, m),
            start: s + this.suffixStart,
            keys: this.suffixKeys.map((k) => leadingRows(k, this.suffixLength, m, heads, dim)),
            values: this.suffixValues.map((v) => leadingRows(v, this.suffixLength, m, heads, dim)),
          };
    return { prefix, suffix };
  }
}

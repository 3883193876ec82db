/**
 * Cross-request prefix reuse (BiCache, Go et al. 2026, tuned to typing) as a StepModel the denoiser runs
 * unchanged. The rows [0, s) of the canvas that an earlier request of the same document also had (its shared
 * prefix) are taken out of the denoiser's canvas: the denoiser sees `[rest of the prefix][MASK x n][suffix]` at
 * positions 0.., and this model adds s to every position and the shared rows' K/V to every call's context, in
 * every layer. So every cache policy works with reuse as it is, on a shorter canvas.
 *
 * The shared rows' K/V come from the store (prefixStore.ts). BiCache's finding: in the layers below a safe
 * depth b (profiled per prefix ratio, depthProfile.ts) K/V of a prefix computed without the rest of the canvas
 * match their in-context values, the deeper ones do not. Hence, per call j of the request:
 * - j = 0, the first partial result: with `staleFirstCall`, the shared rows' K/V of every layer come from the
 *   store (the deep ones as the previous request left them, one keystroke old), and the leading suffix rows the
 *   previous request also had are taken from the store too, their keys moved to the new positions; only the
 *   other rows are computed. Without it, call 0 is a refresh (below), as in BiCache.
 * - refresh calls (j = 1, then every `refreshEvery` calls; 0, k, 2k, ... without `staleFirstCall`): depth-wise
 *   through the segment graphs. Layers [0, b) compute the call's rows against the shared rows' stored K/V;
 *   at layer b the shared rows re-enter from their stored hidden state (the input of layer b) and layers
 *   [b, L) compute them with the call's rows, refreshing their deep K/V for the following calls.
 * - other calls: the monolithic step graph, with the shared rows' current K/V as extra context.
 * Call 0 always runs depth-wise, so the hidden states of the prefix rows it computes are harvested, with the
 * K/V of every prefix and suffix row, for the store's next entry (`harvest`). The harvest keeps each row's
 * earliest computation in the request (the shared rows' deep layers: their first refresh): the next request's
 * first call sees its fill all masked, and the earliest values were computed with the fill least decoded.
 *
 * With b = 0 and no stale first call every call recomputes the shared rows in every layer from their
 * embeddings: the tokens of the monolithic path exactly (test/engine/reuse-depthwise.test.ts).
 */
import type { CacheDtype, HeadKind, KvArray, RowPredictions, StepFeeds, StepModel, StepResult, StepRunOptions } from '../graph/stepContract';
import type { SegmentedStepModel } from './segmentedModel';
import { allocate, concatRows, copyRows, leadingRows, type RowBlock } from './kvRows';

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

export interface PrefixReuseSetup {
  /** The shared rows [0, s) (s = shared.ids.length), or null when nothing is reused. */
  shared: ReusablePrefix | null;
  /** The leading rows of this request's suffix known from the previous request, keys at this request's positions. */
  staleSuffix: ReusableSuffix | null;
  /** Refresh depth b; the shared rows' hidden state entering layer b must be in `shared.hidden` unless b is 0. */
  depth: number;
  staleFirstCall: boolean;
  refreshEvery: number;
  /** Depths whose hidden states are harvested for the next entry. */
  harvestDepths: number[];
  /** The canvas as the denoiser sees it: the prefix after the shared rows, the fill length, the suffix. */
  tailIds: number[];
  fillLength: number;
  suffixIds: number[];
}

export interface ReuseHarvest {
  /** Prefix rows [0, n) with K/V and hidden states at `harvestDepths`; n = s + the prefix rows computed here. */
  prefix: ReusablePrefix;
  suffix: ReusableSuffix | null;
}

export interface ReuseCallStats {
  /** Calls that ran depth-wise, and of them the ones that refreshed the shared rows. */
  depthwiseCalls: number;
  refreshCalls: number;
  /** Rows computed per layer, summed over layers and calls, over the number of layers (a full-pass row = 1). */
  rowsComputed: number;
}

type CallMode = 'stale' | 'refresh' | 'plain';

export class PrefixReuseModel implements StepModel {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly cacheDtype: CacheDtype;
  readonly head: HeadKind;
  readonly stats: ReuseCallStats = { depthwiseCalls: 0, refreshCalls: 0, rowsComputed: 0 };
  private readonly s: number;
  private readonly hiddenSize: number;
  private calls = 0;
  /** The shared rows' current K/V per layer (deep layers replaced at each refresh). */
  private readonly sharedKeys: KvArray[];
  private readonly sharedValues: KvArray[];
  /** Per layer, the shared rows' K/V after their first refresh in this request (what the harvest keeps). */
  private readonly firstRefreshKeys: (KvArray | undefined)[];
  private readonly firstRefreshValues: (KvArray | undefined)[];
  private readonly tailLength: number;
  private readonly suffixStart: number;
  private readonly suffixLength: number;
  /** Harvest: earliest computed K/V of the tail and suffix rows, per layer `[Hkv, rows, D]`, and which rows have one. */
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
  /** Rows of the current call answered from stale suffix K/V, not computed. */
  private readonly staleRowsOfCall = new Set<number>();
  /** Per-layer context buffers, grown as needed. */
  private readonly contextKeys: KvArray[];
  private readonly contextValues: KvArray[];

  constructor(
    private readonly monolithic: StepModel,
    private readonly segments: SegmentedStepModel,
    private readonly setup: PrefixReuseSetup,
  ) {
    const L = monolithic.numLayers;
    this.numLayers = L;
    this.numKvHeads = monolithic.numKvHeads;
    this.headDim = monolithic.headDim;
    this.cacheDtype = monolithic.cacheDtype;
    this.head = monolithic.head;
    this.hiddenSize = segments.hiddenSize;
    const shared = setup.shared;
    this.s = shared?.ids.length ?? 0;
    if (setup.depth < 0 || setup.depth > L) throw new RangeError(`reuse depth ${setup.depth} is outside 0..${L}`);
    if (this.s > 0 && setup.depth > 0 && setup.depth < L && !shared!.hidden.has(setup.depth)) {
      throw new Error(`the shared prefix has no hidden states for depth ${setup.depth}`);
    }
    if (!(Number.isInteger(setup.refreshEvery) && setup.refreshEvery >= 1)) throw new RangeError(`refreshEvery must be >= 1, got ${setup.refreshEvery}`);
    this.sharedKeys = shared ? [...shared.keys] : [];
    this.sharedValues = shared ? [...shared.values] : [];
    this.firstRefreshKeys = new Array(L);
    this.firstRefreshValues = new Array(L);

    const { numKvHeads: heads, headDim: dim } = this;
    this.tailLength = setup.tailIds.length;
    this.suffixStart = this.tailLength + setup.fillLength;
    this.suffixLength = setup.suffixIds.length;
    const perLayer = (rows: number) => Array.from({ length: L }, () => allocate(this.cacheDtype, heads * rows * dim));
    this.tailKeys = perLayer(this.tailLength);
    this.tailValues = perLayer(this.tailLength);
    this.tailHave = new Uint8Array(this.tailLength);
    this.tailHiddenHave = new Uint8Array(this.tailLength);
    for (const d of setup.harvestDepths) this.tailHidden.set(d, allocate(this.cacheDtype, this.tailLength * this.hiddenSize));
    this.suffixKeys = perLayer(this.suffixLength);
    this.suffixValues = perLayer(this.suffixLength);
    this.suffixHave = new Uint8Array(this.suffixLength);
    this.suffixComputed = new Uint8Array(this.suffixLength);
    const stale = setup.staleSuffix;
    if (stale) {
      if (stale.ids.length > this.suffixLength || stale.ids.some((id, i) => id !== setup.suffixIds[i])) {
        throw new Error('the stale suffix rows are not the leading rows of this suffix');
      }
      if (stale.start !== this.s + this.suffixStart) {
        throw new Error(`the stale suffix rows' keys are for position ${stale.start}, the suffix starts at ${this.s + this.suffixStart}`);
      }
      for (let l = 0; l < L; l++) {
        copyRows(stale.keys[l], stale.ids.length, range(stale.ids.length), this.suffixKeys[l], this.suffixLength, 0, heads, dim);
        copyRows(stale.values[l], stale.ids.length, range(stale.ids.length), this.suffixValues[l], this.suffixLength, 0, heads, dim);
      }
      this.suffixHave.fill(1, 0, stale.ids.length);
    }
    this.contextKeys = perLayer(0);
    this.contextValues = perLayer(0);
  }

  /**
   * Runs one call. K/V come back on the host (this model keeps none on a device); a caller that needs none
   * (`newKv: 'none'`) is passed on to the step graph unless the call computes rows still to harvest.
   */
  async run(feeds: StepFeeds, options?: StepRunOptions): Promise<StepResult> {
    const call = this.calls++;
    const mode = this.modeOf(call);
    this.staleRowsOfCall.clear();
    const skipKv = options?.newKv === 'none' && !this.harvests(feeds);
    const result = mode === 'plain' ? await this.runMonolithic(feeds, skipKv) : await this.runDepthwise(feeds, mode);
    if (!skipKv) this.harvestKv(feeds, result);
    return result;
  }

  /** Whether the call computes a tail or suffix row whose K/V the harvest does not have yet. */
  private harvests(feeds: StepFeeds): boolean {
    for (const position of feeds.positionIds) {
      const p = Number(position);
      if (p < this.tailLength ? !this.tailHave[p] : p >= this.suffixStart && !this.suffixComputed[p - this.suffixStart]) return true;
    }
    return false;
  }

  private modeOf(call: number): CallMode {
    const { staleFirstCall, refreshEvery } = this.setup;
    if (call === 0) return staleFirstCall || this.s === 0 ? 'stale' : 'refresh';
    if (this.s === 0) return 'plain';
    const due = staleFirstCall ? (call - 1) % refreshEvery === 0 : call % refreshEvery === 0;
    return due ? 'refresh' : 'plain';
  }

  /** The monolithic graph with the shared rows as extra context in every layer. */
  private async runMonolithic(feeds: StepFeeds, skipKv: boolean): Promise<StepResult> {
    const q = feeds.inputIds.length;
    const c = feeds.contextLength;
    this.stats.rowsComputed += q;
    const options: StepRunOptions = { newKv: skipKv ? 'none' : 'host' };
    if (this.s === 0) return this.monolithic.run(feeds, options);
    const s = this.s;
    const pastKeys: KvArray[] = [];
    const pastValues: KvArray[] = [];
    for (let l = 0; l < this.numLayers; l++) {
      pastKeys.push(this.context(this.contextKeys, l, [{ data: this.sharedKeys[l], rows: s }, { data: feeds.pastKeys[l], rows: c }]));
      pastValues.push(this.context(this.contextValues, l, [{ data: this.sharedValues[l], rows: s }, { data: feeds.pastValues[l], rows: c }]));
    }
    const bias = allocate(this.cacheDtype, q * (s + c + q));
    for (let i = 0; i < q; i++) bias.set(feeds.attentionBias.subarray(i * (c + q), (i + 1) * (c + q)), i * (s + c + q) + s);
    return this.monolithic.run({
      inputIds: feeds.inputIds,
      positionIds: this.absolute(feeds.positionIds),
      attentionBias: bias,
      logitsIndex: feeds.logitsIndex,
      pastKeys,
      pastValues,
      contextLength: s + c,
    }, options);
  }

  /**
   * One call through the segments. `stale`: the shared rows are context in every layer and the stale suffix
   * rows are not computed (their stored K/V stand in); `refresh`: the shared rows are context below the depth
   * and queries from it up.
   */
  private async runDepthwise(feeds: StepFeeds, mode: 'stale' | 'refresh'): Promise<StepResult> {
    const { numLayers: L, numKvHeads: heads, headDim: dim, hiddenSize: H, s } = this;
    const q = feeds.inputIds.length;
    const c = feeds.contextLength;
    const F = this.cacheDtype;
    const b = mode === 'refresh' ? this.setup.depth : L;
    this.stats.depthwiseCalls++;
    if (mode === 'refresh') this.stats.refreshCalls++;

    // Which of the call's rows are computed (the rest are stale suffix rows, stale mode only).
    const readRows = new Set(Array.from(feeds.logitsIndex, Number));
    const computed: number[] = [];
    const stale: number[] = [];
    for (let i = 0; i < q; i++) {
      const suffixRow = Number(feeds.positionIds[i]) - this.suffixStart;
      const useStale = mode === 'stale' && this.setup.staleSuffix !== null && suffixRow >= 0 &&
        suffixRow < this.setup.staleSuffix.ids.length && !readRows.has(i);
      (useStale ? stale : computed).push(i);
    }
    const qc = computed.length;
    const u = stale.length;
    for (const row of stale) this.staleRowsOfCall.add(row);
    const staleKeys = (l: number) => this.gatherSuffix(this.suffixKeys[l], stale);
    const staleValues = (l: number) => this.gatherSuffix(this.suffixValues[l], stale);

    // Attention bias of the lower layers (queries: computed rows; keys: shared, stale, context, computed) and
    // of the upper ones (queries: shared then computed rows; keys: stale, context, shared, computed).
    const feedsBias = (row: number, col: number) => feeds.attentionBias[row * (c + q) + col];
    const lowerKeys = s + u + c + qc;
    const lowerBias = allocate(F, qc * lowerKeys);
    computed.forEach((row, i) => {
      const at = i * lowerKeys;
      stale.forEach((k, j) => (lowerBias[at + s + j] = feedsBias(row, c + k)));
      for (let j = 0; j < c; j++) lowerBias[at + s + u + j] = feedsBias(row, j);
      computed.forEach((k, j) => (lowerBias[at + s + u + c + j] = feedsBias(row, c + k)));
    });
    const upperRows = s + qc;
    const upperKeys = u + c + upperRows;
    let upperBias: KvArray | null = null;
    if (b < L) {
      upperBias = allocate(F, upperRows * upperKeys);
      computed.forEach((row, i) => {
        const at = (s + i) * upperKeys;
        stale.forEach((k, j) => (upperBias![at + j] = feedsBias(row, c + k)));
        for (let j = 0; j < c; j++) upperBias![at + u + j] = feedsBias(row, j);
        computed.forEach((k, j) => (upperBias![at + u + c + s + j] = feedsBias(row, c + k)));
      });
    }

    const computedIds = BigInt64Array.from(computed, (i) => feeds.inputIds[i]);
    const computedPositions = BigInt64Array.from(computed, (i) => feeds.positionIds[i] + BigInt(s));
    const upperPositions = new BigInt64Array(upperRows);
    for (let p = 0; p < s; p++) upperPositions[p] = BigInt(p);
    upperPositions.set(computedPositions, s);

    const newKeys: KvArray[] = [];
    const newValues: KvArray[] = [];
    let hidden: KvArray;
    if (b === 0 && s > 0) {
      const both = new BigInt64Array(upperRows);
      this.setup.shared!.ids.forEach((id, p) => (both[p] = BigInt(id)));
      both.set(computedIds, s);
      hidden = await this.segments.embed(both);
    } else {
      hidden = await this.segments.embed(computedIds);
    }

    for (let l = 0; l < L; l++) {
      const upper = l >= b;
      if (upper && l === b && b > 0 && s > 0) {
        const joined = allocate(F, upperRows * H);
        joined.set(this.setup.shared!.hidden.get(b)!.subarray(0, s * H), 0);
        joined.set(hidden.subarray(0, qc * H), s * H);
        hidden = joined;
      }
      const rows = upper ? upperRows : qc;
      const offset = upper ? s : 0; // index of the first computed row among this layer's queries
      this.harvestHidden(feeds, computed, l, hidden, offset);
      const blocks: RowBlock[] = upper
        ? [{ data: staleKeys(l), rows: u }, { data: feeds.pastKeys[l], rows: c }]
        : [{ data: this.sharedKeys[l], rows: s }, { data: staleKeys(l), rows: u }, { data: feeds.pastKeys[l], rows: c }];
      const valueBlocks: RowBlock[] = upper
        ? [{ data: staleValues(l), rows: u }, { data: feeds.pastValues[l], rows: c }]
        : [{ data: this.sharedValues[l], rows: s }, { data: staleValues(l), rows: u }, { data: feeds.pastValues[l], rows: c }];
      const contextRows = blocks.reduce((n, blk) => n + blk.rows, 0);
      const out = await this.segments.layer(l, {
        hidden,
        positionIds: upper ? upperPositions : computedPositions,
        attentionBias: upper ? upperBias! : lowerBias,
        pastKey: this.context(this.contextKeys, l, blocks),
        pastValue: this.context(this.contextValues, l, valueBlocks),
        contextLength: contextRows,
      });
      this.stats.rowsComputed += rows / L;
      hidden = out.hidden;
      if (upper && s > 0) this.refreshShared(l, out.newKey, out.newValue, rows);
      // The call's rows in its own order: computed ones from the layer, stale ones from the store.
      const keys = allocate(F, heads * q * dim);
      const values = allocate(F, heads * q * dim);
      for (let h = 0; h < heads; h++) {
        computed.forEach((row, i) => {
          const src = (h * rows + offset + i) * dim;
          keys.set(out.newKey.subarray(src, src + dim), (h * q + row) * dim);
          values.set(out.newValue.subarray(src, src + dim), (h * q + row) * dim);
        });
      }
      if (u > 0) {
        const k = staleKeys(l);
        const v = staleValues(l);
        for (let h = 0; h < heads; h++) {
          stale.forEach((row, j) => {
            const src = (h * u + j) * dim;
            keys.set(k.subarray(src, src + dim), (h * q + row) * dim);
            values.set(v.subarray(src, src + dim), (h * q + row) * dim);
          });
        }
      }
      newKeys.push(keys);
      newValues.push(values);
    }

    const finalRows = b < L ? upperRows : qc;
    const finalOffset = b < L ? s : 0;
    const indexInComputed = new Map(computed.map((row, i) => [row, i]));
    const logitsIndex = BigInt64Array.from(feeds.logitsIndex, (row) => BigInt(finalOffset + indexInComputed.get(Number(row))!));
    const predictions: RowPredictions = await this.segments.predict(hidden, finalRows, logitsIndex);
    return { predictions, newKeys, newValues };
  }

  /** The shared rows' new deep K/V (the first `s` query rows of an upper layer). */
  private refreshShared(layer: number, newKey: KvArray, newValue: KvArray, rows: number): void {
    const { s, numKvHeads: heads, headDim: dim } = this;
    // New arrays each time: the stored entry and the first refresh (kept for the harvest) share the old ones.
    this.sharedKeys[layer] = leadingRows(newKey, rows, s, heads, dim).slice();
    this.sharedValues[layer] = leadingRows(newValue, rows, s, heads, dim).slice();
    this.firstRefreshKeys[layer] ??= this.sharedKeys[layer];
    this.firstRefreshValues[layer] ??= this.sharedValues[layer];
  }

  /** Context `[Hkv, Σrows, D]` for one layer in a reused buffer. */
  private context(buffers: KvArray[], layer: number, blocks: RowBlock[]): KvArray {
    const size = this.numKvHeads * blocks.reduce((n, b) => n + b.rows, 0) * this.headDim;
    if (buffers[layer].length < size) buffers[layer] = allocate(this.cacheDtype, size);
    return concatRows(buffers[layer], blocks, this.numKvHeads, this.headDim);
  }

  private gatherSuffix(source: KvArray, stale: number[]): KvArray {
    // Stale rows are the leading suffix rows, in canvas order: rows 0..u-1 of the harvest buffer.
    return stale.length === 0 ? source.subarray(0, 0) : leadingRows(source, this.suffixLength, stale.length, this.numKvHeads, this.headDim);
  }

  private absolute(positions: BigInt64Array): BigInt64Array {
    const s = BigInt(this.s);
    return BigInt64Array.from(positions, (p) => p + s);
  }

  /** Hidden states entering layer `layer` of the tail rows among `computed` (depth-wise calls only). */
  private harvestHidden(feeds: StepFeeds, computed: number[], layer: number, hidden: KvArray, offset: number): void {
    const target = this.tailHidden.get(layer);
    const H = this.hiddenSize;
    computed.forEach((row, i) => {
      const p = Number(feeds.positionIds[row]);
      if (p >= this.tailLength || this.tailHiddenHave[p]) return;
      if (target) target.set(hidden.subarray((offset + i) * H, (offset + i + 1) * H), p * H);
      if (layer === this.numLayers - 1) this.tailHiddenHave[p] = 1;
    });
  }

  /** The K/V of every tail and suffix row the call computed for the first time in this request. */
  private harvestKv(feeds: StepFeeds, result: StepResult): void {
    const q = feeds.inputIds.length;
    const { numKvHeads: heads, headDim: dim } = this;
    for (let i = 0; i < q; i++) {
      if (this.staleRowsOfCall.has(i)) continue;
      const p = Number(feeds.positionIds[i]);
      const tail = p < this.tailLength;
      const suffixRow = p - this.suffixStart;
      if (!tail && suffixRow < 0) continue;
      const [keys, values, rows, at, computed] = tail
        ? [this.tailKeys, this.tailValues, this.tailLength, p, this.tailHave]
        : [this.suffixKeys, this.suffixValues, this.suffixLength, suffixRow, this.suffixComputed];
      if (computed[at]) continue;
      for (let l = 0; l < this.numLayers; l++) {
        copyRows(result.newKeys[l], q, [i], keys[l], rows, at, heads, dim);
        copyRows(result.newValues[l], q, [i], values[l], rows, at, heads, dim);
      }
      computed[at] = 1;
      if (!tail) this.suffixHave[at] = 1;
    }
  }

  /**
   * What the next request of the document can reuse: the prefix rows with K/V and hidden states (the shared
   * rows, then the leading tail rows this request computed depth-wise), and the leading suffix rows with K/V.
   */
  harvest(): ReuseHarvest {
    const { numKvHeads: heads, headDim: dim, hiddenSize: H, s } = this;
    const shared = this.setup.shared;
    let t = 0;
    while (t < this.tailLength && this.tailHave[t] && this.tailHiddenHave[t]) t++;
    const n = s + t;
    const depths = this.setup.harvestDepths.filter((d) => s === 0 || shared!.hidden.has(d));
    const hidden = new Map<number, KvArray>();
    for (const d of depths) {
      const joined = allocate(this.cacheDtype, n * H);
      if (s > 0) joined.set(shared!.hidden.get(d)!.subarray(0, s * H), 0);
      joined.set(this.tailHidden.get(d)!.subarray(0, t * H), s * H);
      hidden.set(d, joined);
    }
    const keys: KvArray[] = [];
    const values: KvArray[] = [];
    for (let l = 0; l < this.numLayers; l++) {
      const join = (sharedRows: KvArray | undefined, tailRows: KvArray) =>
        concatRows(allocate(this.cacheDtype, heads * n * dim), [
          ...(sharedRows ? [{ data: sharedRows, rows: s }] : []),
          { data: leadingRows(tailRows, this.tailLength, t, heads, dim), rows: t },
        ], heads, dim);
      keys.push(join(this.firstRefreshKeys[l] ?? this.sharedKeys[l], this.tailKeys[l]));
      values.push(join(this.firstRefreshValues[l] ?? this.sharedValues[l], this.tailValues[l]));
    }
    const prefix: ReusablePrefix = { ids: [...(shared?.ids ?? []), ...this.setup.tailIds.slice(0, t)], keys, values, hidden };

    let m = 0;
    while (m < this.suffixLength && this.suffixHave[m]) m++;
    const suffix: ReusableSuffix | null =
      m === 0
        ? null
        : {
            ids: this.setup.suffixIds.slice(0, m),
            start: s + this.suffixStart,
            keys: this.suffixKeys.map((k) => leadingRows(k, this.suffixLength, m, heads, dim)),
            values: this.suffixValues.map((v) => leadingRows(v, this.suffixLength, m, heads, dim)),
          };
    return { prefix, suffix };
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

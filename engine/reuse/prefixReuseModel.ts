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
 * K/V of every prefix and suffix row, for the store's next entry (`harvest`, reuseHarvest.ts; of the shared
 * rows' deep layers it keeps their first refresh). Stale suffix rows are handled by staleSuffix.ts.
 *
 * With b = 0 and no stale first call every call recomputes the shared rows in every layer from their
 * embeddings: the tokens of the monolithic path exactly (test/engine/reuse-depthwise.test.ts).
 */
import type { CacheDtype, HeadKind, KvArray, StepFeeds, StepModel, StepResult, StepRunOptions } from '../graph/stepContract';
import type { SegmentedStepModel } from './segmentedModel';
import { PromptComputationCancelled } from './carriedPromptModel';
import { allocate, concatRows, leadingRows, type RowBlock } from './kvRows';
import { RequestHarvest, type ReusablePrefix, type ReusableSuffix, type ReuseHarvest } from './reuseHarvest';
import { StaleSuffixRows } from './staleSuffix';

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

export interface ReuseCallStats {
  /** Calls that ran depth-wise, and of them the ones that refreshed the shared rows. */
  depthwiseCalls: number;
  refreshCalls: number;
  /** Rows computed per layer, summed over layers and calls, over the number of layers (a full-pass row = 1). */
  rowsComputed: number;
}

type CallMode = 'stale' | 'refresh' | 'plain';

/** A depth-wise call's rows: the computed ones (in call order) and the stale suffix rows standing in for the rest. */
interface DepthwiseRows {
  computed: number[];
  stale: number[];
  /** Queries of the layers from the depth up: the shared rows, then the computed ones. */
  upperRows: number;
}

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
  private readonly staleSuffix: StaleSuffixRows;
  private readonly harvested: RequestHarvest;
  /** Rows of the current call answered from stale suffix K/V, not computed. */
  private readonly staleRowsOfCall = new Set<number>();
  /** Per-layer context buffers, grown as needed. */
  private readonly contextKeys: KvArray[];
  private readonly contextValues: KvArray[];
  /** While a warm-up runs: whether to stop, asked between the layers of a depth-wise call. */
  private stopCheck: (() => boolean) | undefined;

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

    const suffixStart = setup.tailIds.length + setup.fillLength;
    this.staleSuffix = new StaleSuffixRows(setup.staleSuffix, setup.suffixIds, suffixStart, this.s + suffixStart, this);
    const geometry = { numLayers: L, numKvHeads: this.numKvHeads, headDim: this.headDim, hiddenSize: this.hiddenSize, cacheDtype: this.cacheDtype };
    this.harvested = new RequestHarvest(geometry, { tailIds: setup.tailIds, fillLength: setup.fillLength, suffixIds: setup.suffixIds, depths: setup.harvestDepths });
    if (setup.staleSuffix) this.harvested.seedSuffix(setup.staleSuffix);
    this.contextKeys = Array.from({ length: L }, () => allocate(this.cacheDtype, 0));
    this.contextValues = Array.from({ length: L }, () => allocate(this.cacheDtype, 0));
  }

  /**
   * Runs one call. K/V come back on the host (this model keeps none on a device); a caller that needs none
   * (`newKv: 'none'`) is passed on to the step graph unless the call computes rows still to harvest.
   */
  async run(feeds: StepFeeds, options?: StepRunOptions): Promise<StepResult> {
    const call = this.calls++;
    const mode = this.modeOf(call);
    this.staleRowsOfCall.clear();
    const skipKv = options?.newKv === 'none' && !this.harvested.wants(feeds.positionIds);
    const result = mode === 'plain' ? await this.runMonolithic(feeds, skipKv) : await this.runDepthwise(feeds, mode);
    if (!skipKv) this.harvested.recordKv(feeds, result, this.staleRowsOfCall);
    return result;
  }

  /**
   * Runs the request's first call (depth-wise) for its harvest only (a background warm-up), stopping between
   * layers with PromptComputationCancelled once `isCancelled()` says so.
   */
  async computePrompt(feeds: StepFeeds, isCancelled: () => boolean): Promise<void> {
    if (this.calls > 0) throw new Error('the prompt is computed by the first call only');
    this.stopCheck = isCancelled;
    try {
      await this.run(feeds);
    } finally {
      this.stopCheck = undefined;
    }
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
    const { numLayers: L, s } = this;
    const b = mode === 'refresh' ? this.setup.depth : L;
    this.stats.depthwiseCalls++;
    if (mode === 'refresh') this.stats.refreshCalls++;
    const split = mode === 'stale' ? this.staleSuffix.partition(feeds) : { computed: Array.from(feeds.inputIds, (_, i) => i), stale: [] };
    const rows: DepthwiseRows = { ...split, upperRows: s + split.computed.length };
    for (const row of rows.stale) this.staleRowsOfCall.add(row);
    const { lower, upper } = this.depthwiseBiases(feeds, rows, b < L);
    const computedPositions = BigInt64Array.from(rows.computed, (i) => feeds.positionIds[i] + BigInt(s));
    const upperPositions = new BigInt64Array(rows.upperRows);
    for (let p = 0; p < s; p++) upperPositions[p] = BigInt(p);
    upperPositions.set(computedPositions, s);

    let hidden = await this.embedRows(feeds, rows, b);
    const newKeys: KvArray[] = [];
    const newValues: KvArray[] = [];
    for (let l = 0; l < L; l++) {
      if (this.stopCheck?.()) throw new PromptComputationCancelled('the prompt computation was cancelled');
      const isUpper = l >= b;
      if (isUpper && l === b && b > 0 && s > 0) hidden = this.withSharedHidden(hidden, rows, b);
      const queryRows = isUpper ? rows.upperRows : rows.computed.length;
      const offset = isUpper ? s : 0; // index of the first computed row among this layer's queries
      this.harvested.recordHidden(feeds.positionIds, rows.computed, l, hidden, offset);
      const context = this.layerContext(feeds, rows, l, isUpper);
      const out = await this.segments.layer(l, {
        hidden,
        positionIds: isUpper ? upperPositions : computedPositions,
        attentionBias: isUpper ? upper! : lower,
        ...context,
      });
      this.stats.rowsComputed += queryRows / L;
      hidden = out.hidden;
      if (isUpper && s > 0) this.refreshShared(l, out.newKey, out.newValue, queryRows);
      const callKv = this.callRowsKv(feeds, rows, l, out.newKey, out.newValue, queryRows, offset);
      newKeys.push(callKv.keys);
      newValues.push(callKv.values);
    }

    const finalRows = b < L ? rows.upperRows : rows.computed.length;
    const finalOffset = b < L ? s : 0;
    const indexInComputed = new Map(rows.computed.map((row, i) => [row, i]));
    const logitsIndex = BigInt64Array.from(feeds.logitsIndex, (row) => BigInt(finalOffset + indexInComputed.get(Number(row))!));
    const predictions = await this.segments.predict(hidden, finalRows, logitsIndex);
    return { predictions, newKeys, newValues };
  }

  /**
   * Attention bias of the lower layers (queries: computed rows; keys: shared, stale, context, computed) and, when
   * some layers are refreshed, of the upper ones (queries: shared then computed rows; keys: stale, context,
   * shared, computed). The shared rows are visible to all; the rest as the call's own bias says.
   */
  private depthwiseBiases(feeds: StepFeeds, { computed, stale, upperRows }: DepthwiseRows, withUpper: boolean): { lower: KvArray; upper: KvArray | null } {
    const { s } = this;
    const q = feeds.inputIds.length;
    const c = feeds.contextLength;
    const u = stale.length;
    const feedsBias = (row: number, col: number) => feeds.attentionBias[row * (c + q) + col];
    const lowerKeys = s + u + c + computed.length;
    const lower = allocate(this.cacheDtype, computed.length * lowerKeys);
    computed.forEach((row, i) => {
      const at = i * lowerKeys;
      stale.forEach((k, j) => (lower[at + s + j] = feedsBias(row, c + k)));
      for (let j = 0; j < c; j++) lower[at + s + u + j] = feedsBias(row, j);
      computed.forEach((k, j) => (lower[at + s + u + c + j] = feedsBias(row, c + k)));
    });
    if (!withUpper) return { lower, upper: null };
    const upperKeys = u + c + upperRows;
    const upper = allocate(this.cacheDtype, upperRows * upperKeys);
    computed.forEach((row, i) => {
      const at = (s + i) * upperKeys;
      stale.forEach((k, j) => (upper[at + j] = feedsBias(row, c + k)));
      for (let j = 0; j < c; j++) upper[at + u + j] = feedsBias(row, j);
      computed.forEach((k, j) => (upper[at + u + c + s + j] = feedsBias(row, c + k)));
    });
    return { lower, upper };
  }

  /** Embeddings of the computed rows, preceded by the shared rows' when every layer refreshes them (b = 0). */
  private async embedRows(feeds: StepFeeds, { computed, upperRows }: DepthwiseRows, b: number): Promise<KvArray> {
    const computedIds = BigInt64Array.from(computed, (i) => feeds.inputIds[i]);
    if (b > 0 || this.s === 0) return this.segments.embed(computedIds);
    const both = new BigInt64Array(upperRows);
    this.setup.shared!.ids.forEach((id, p) => (both[p] = BigInt(id)));
    both.set(computedIds, this.s);
    return this.segments.embed(both);
  }

  /** The shared rows re-enter at depth b from their stored hidden state, ahead of the computed rows. */
  private withSharedHidden(hidden: KvArray, { computed, upperRows }: DepthwiseRows, b: number): KvArray {
    const { s, hiddenSize: H } = this;
    const joined = allocate(this.cacheDtype, upperRows * H);
    joined.set(this.setup.shared!.hidden.get(b)!.subarray(0, s * H), 0);
    joined.set(hidden.subarray(0, computed.length * H), s * H);
    return joined;
  }

  /** One layer's context: the stale rows and the denoiser's context, after the shared rows below the depth. */
  private layerContext(feeds: StepFeeds, { stale }: DepthwiseRows, l: number, isUpper: boolean): { pastKey: KvArray; pastValue: KvArray; contextLength: number } {
    const u = stale.length;
    const c = feeds.contextLength;
    const staleKeys: RowBlock = { data: this.staleSuffix.keys(l, feeds, stale), rows: u };
    const staleValues: RowBlock = { data: this.staleSuffix.values(l, feeds, stale), rows: u };
    const keys: RowBlock[] = [staleKeys, { data: feeds.pastKeys[l], rows: c }];
    const values: RowBlock[] = [staleValues, { data: feeds.pastValues[l], rows: c }];
    if (!isUpper) {
      keys.unshift({ data: this.sharedKeys[l], rows: this.s });
      values.unshift({ data: this.sharedValues[l], rows: this.s });
    }
    return {
      pastKey: this.context(this.contextKeys, l, keys),
      pastValue: this.context(this.contextValues, l, values),
      contextLength: keys.reduce((n, block) => n + block.rows, 0),
    };
  }

  /** The call's rows' K/V of one layer in its own order: computed ones from the layer, stale ones from the store. */
  private callRowsKv(
    feeds: StepFeeds,
    { computed, stale }: DepthwiseRows,
    l: number,
    newKey: KvArray,
    newValue: KvArray,
    layerRows: number,
    offset: number,
  ): { keys: KvArray; values: KvArray } {
    const { numKvHeads: heads, headDim: dim } = this;
    const q = feeds.inputIds.length;
    const keys = allocate(this.cacheDtype, heads * q * dim);
    const values = allocate(this.cacheDtype, heads * q * dim);
    for (let h = 0; h < heads; h++) {
      computed.forEach((row, i) => {
        const src = (h * layerRows + offset + i) * dim;
        keys.set(newKey.subarray(src, src + dim), (h * q + row) * dim);
        values.set(newValue.subarray(src, src + dim), (h * q + row) * dim);
      });
    }
    const u = stale.length;
    if (u > 0) {
      const k = this.staleSuffix.keys(l, feeds, stale);
      const v = this.staleSuffix.values(l, feeds, stale);
      for (let h = 0; h < heads; h++) {
        stale.forEach((row, j) => {
          const src = (h * u + j) * dim;
          keys.set(k.subarray(src, src + dim), (h * q + row) * dim);
          values.set(v.subarray(src, src + dim), (h * q + row) * dim);
        });
      }
    }
    return { keys, values };
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

  private absolute(positions: BigInt64Array): BigInt64Array {
    const s = BigInt(this.s);
    return BigInt64Array.from(positions, (p) => p + s);
  }

  /**
   * What the next request of the document can reuse: the prefix rows with K/V and hidden states (the shared
   * rows, then the leading tail rows this request computed depth-wise), and the leading suffix rows with K/V.
   */
  harvest(): ReuseHarvest {
    const keys = this.sharedKeys.map((k, l) => this.firstRefreshKeys[l] ?? k);
    const values = this.sharedValues.map((v, l) => this.firstRefreshValues[l] ?? v);
    return this.harvested.harvest(this.setup.shared, keys, values);
  }
}

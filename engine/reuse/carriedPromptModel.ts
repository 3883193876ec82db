/**
 * Full-depth prompt reuse across keystrokes, as a StepModel the denoiser runs unchanged. dKV-Cache-Prefill
 * freezes a request's prompt K/V after its first step; this carries them on to the document's next request:
 * every prompt row whose token and position are unchanged keeps the K/V an earlier request computed for it, in
 * every layer. Two runs of rows are carried: the shared prefix [0, s) (same tokens at the same positions) and a
 * run of the suffix's rows [a, a + u) (same tokens, moved by the number of tokens typed: their keys come already
 * rotated to the new positions, prefixStore.ts `suffixRowsAt`); the rows next to the cursor, the tail and the
 * suffix's first a rows, are computed (promptCarry.ts `CarryWindows`). The denoiser sees only the computed rows,
 * `[tail][MASK x n][suffix rows before a][suffix rows after a + u]` at positions 0.., and this model maps its
 * positions to the canvas and adds the carried rows' K/V to every call's context in every layer. So every cache policy works with the carry as it is, on a canvas of a
 * few rows: a keystroke computes the tokens it changed, the fill and what its cache policy recomputes.
 *
 * Approximate like every cache: a carried row's deeper K/V were computed in an earlier canvas (before the last
 * keystrokes, with the fill masked). BiCache's depth-wise refresh (prefixReuseModel.ts) is the more exact
 * alternative. What this request computes of the tail and the rest of the suffix is harvested (reuseHarvest.ts)
 * for the next request.
 *
 * `computePrompt` runs the first call without predictions (a background warm-up): as one graph call, or layer
 * by layer through the depth-wise segments so that a cancel is honoured between layers.
 */
import type { CacheDtype, HeadKind, KvArray, StepFeeds, StepModel, StepResult, StepRunOptions } from '../graph/stepContract';
import { allocate, concatRows, type RowBlock } from './kvRows';
import { RequestHarvest, type ReusablePrefix, type ReusableSuffix, type ReuseHarvest } from './reuseHarvest';
import type { SegmentedStepModel } from './segmentedModel';

export interface CarrySetup {
  /** The carried prefix rows [0, s), or null. Their hidden states are not used. */
  shared: ReusablePrefix | null;
  /** Carried suffix rows, keys rotated for this request's positions: rows `carriedSuffixFrom`.. of the suffix. */
  carriedSuffix: ReusableSuffix | null;
  /** Suffix rows before the carried ones, computed (the window next to the cursor). */
  carriedSuffixFrom: number;
  /** The prefix after the shared rows. */
  tailIds: number[];
  fillLength: number;
  /** The whole suffix. */
  suffixIds: number[];
}

/** Depth-wise execution for a background warm-up: the segments, and whether to stop (checked between layers). */
export interface LayeredRun {
  segments: SegmentedStepModel;
  isCancelled(): boolean;
}

/** A warm-up stopped between layers because it was cancelled. */
export class PromptComputationCancelled extends Error {
  override name = 'PromptComputationCancelled';
}

export class CarriedPromptModel implements StepModel {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly cacheDtype: CacheDtype;
  readonly head: HeadKind;
  /** Rows carried into every call: prefix rows, then suffix rows. */
  readonly carriedPrefixRows: number;
  readonly carriedSuffixRows: number;
  /** Rows computed over all calls. */
  rowsComputed = 0;
  private readonly carriedKeys: KvArray[];
  private readonly carriedValues: KvArray[];
  /** Denoiser positions below this are tail, fill and suffix rows before the carried ones; from it on, suffix rows after them. */
  private readonly restStart: number;
  private readonly harvested: RequestHarvest;
  /** Per-layer context buffers, grown as needed. */
  private readonly contextKeys: KvArray[];
  private readonly contextValues: KvArray[];

  constructor(
    private readonly monolithic: StepModel,
    private readonly setup: CarrySetup,
    hiddenSize: number,
  ) {
    const L = monolithic.numLayers;
    this.numLayers = L;
    this.numKvHeads = monolithic.numKvHeads;
    this.headDim = monolithic.headDim;
    this.cacheDtype = monolithic.cacheDtype;
    this.head = monolithic.head;
    const { shared, carriedSuffix, carriedSuffixFrom: from, tailIds, fillLength, suffixIds } = setup;
    const s = shared?.ids.length ?? 0;
    const u = carriedSuffix?.ids.length ?? 0;
    if (carriedSuffix) {
      if (from + u > suffixIds.length || carriedSuffix.ids.some((id, i) => id !== suffixIds[from + i])) {
        throw new Error(`the carried suffix rows are not rows ${from}.. of this suffix`);
      }
      const start = s + tailIds.length + fillLength + from;
      if (carriedSuffix.start !== start) {
        throw new Error(`the carried suffix rows' keys are for position ${carriedSuffix.start}, they are at ${start}`);
      }
    }
    this.carriedPrefixRows = s;
    this.carriedSuffixRows = u;
    this.restStart = tailIds.length + fillLength + from;
    const { numKvHeads: heads, headDim: dim } = this;
    const join = (prefix: KvArray | undefined, suffix: KvArray | undefined) =>
      concatRows(allocate(this.cacheDtype, heads * (s + u) * dim), [
        ...(prefix ? [{ data: prefix, rows: s }] : []),
        ...(suffix ? [{ data: suffix, rows: u }] : []),
      ], heads, dim);
    this.carriedKeys = Array.from({ length: L }, (_, l) => join(shared?.keys[l], carriedSuffix?.keys[l]));
    this.carriedValues = Array.from({ length: L }, (_, l) => join(shared?.values[l], carriedSuffix?.values[l]));
    const geometry = { numLayers: L, numKvHeads: heads, headDim: dim, hiddenSize, cacheDtype: this.cacheDtype };
    this.harvested = new RequestHarvest(geometry, { tailIds, fillLength, suffixIds, depths: [] });
    if (carriedSuffix) this.harvested.seedSuffix(carriedSuffix, from);
    this.contextKeys = Array.from({ length: L }, () => allocate(this.cacheDtype, 0));
    this.contextValues = Array.from({ length: L }, () => allocate(this.cacheDtype, 0));
  }

  /** The carried rows' K/V are context in every layer; a caller that needs no new K/V gets none unless the harvest does. */
  async run(feeds: StepFeeds, options?: StepRunOptions): Promise<StepResult> {
    const harvestFeeds = this.inHarvestOrder(feeds);
    const skipKv = options?.newKv === 'none' && !this.harvested.wants(harvestFeeds.positionIds);
    const result = await this.monolithic.run(this.withCarriedRows(feeds), { newKv: skipKv ? 'none' : 'host' });
    this.rowsComputed += feeds.inputIds.length;
    if (!skipKv) this.harvested.recordKv(harvestFeeds, result, NO_ROWS);
    return result;
  }

  /**
   * Computes the K/V of every row of the denoiser's canvas (`feeds`: a full pass over it, the fill masked) for the
   * harvest, reading one prediction row: what the request's first call would compute. With `layered`, the call
   * runs layer by layer through the segments and stops between layers once `isCancelled()` says so.
   */
  async computePrompt(feeds: StepFeeds, layered?: LayeredRun): Promise<void> {
    const harvestFeeds = this.inHarvestOrder(feeds);
    const full = this.withCarriedRows(feeds);
    const result = layered ? await this.runLayered(full, layered) : await this.monolithic.run(full, { newKv: 'host' });
    this.rowsComputed += feeds.inputIds.length;
    this.harvested.recordKv(harvestFeeds, result, NO_ROWS);
  }

  private async runLayered(feeds: StepFeeds, { segments, isCancelled }: LayeredRun): Promise<StepResult> {
    const { newKeys, newValues } = await segments.forward(feeds, () => {
      if (isCancelled()) throw new PromptComputationCancelled('the prompt computation was cancelled');
    });
    return { predictions: { kind: 'logits', rows: 0, vocabSize: 0, logits: new Float32Array(0) }, newKeys, newValues };
  }

  /** The call with the carried rows prepended to its context in every layer and its positions on the canvas. */
  private withCarriedRows(feeds: StepFeeds): StepFeeds {
    const carried = this.carriedPrefixRows + this.carriedSuffixRows;
    const q = feeds.inputIds.length;
    const c = feeds.contextLength;
    const positionIds = BigInt64Array.from(feeds.positionIds, (p) => BigInt(this.absolute(Number(p))));
    if (carried === 0) return { ...feeds, positionIds };
    const pastKeys: KvArray[] = [];
    const pastValues: KvArray[] = [];
    for (let l = 0; l < this.numLayers; l++) {
      pastKeys.push(this.context(this.contextKeys, l, [{ data: this.carriedKeys[l], rows: carried }, { data: feeds.pastKeys[l], rows: c }]));
      pastValues.push(this.context(this.contextValues, l, [{ data: this.carriedValues[l], rows: carried }, { data: feeds.pastValues[l], rows: c }]));
    }
    // The carried rows are visible to every query row; the rest as the denoiser's bias says.
    const width = carried + c + q;
    const bias = allocate(this.cacheDtype, q * width);
    for (let i = 0; i < q; i++) bias.set(feeds.attentionBias.subarray(i * (c + q), (i + 1) * (c + q)), i * width + carried);
    return { ...feeds, positionIds, attentionBias: bias, pastKeys, pastValues, contextLength: carried + c };
  }

  /** A denoiser position on the canvas: after the shared rows, and past the carried suffix rows for the rest of the suffix. */
  private absolute(position: number): number {
    return this.carriedPrefixRows + this.inHarvest(position);
  }

  /** A denoiser position in the harvest's canvas `[tail][fill][whole suffix]`. */
  private inHarvest(position: number): number {
    return position < this.restStart ? position : position + this.carriedSuffixRows;
  }

  private inHarvestOrder(feeds: StepFeeds): StepFeeds {
    if (this.carriedSuffixRows === 0) return feeds;
    return { ...feeds, positionIds: BigInt64Array.from(feeds.positionIds, (p) => BigInt(this.inHarvest(Number(p)))) };
  }

  /** Context `[Hkv, Σrows, D]` for one layer in a reused buffer. */
  private context(buffers: KvArray[], layer: number, blocks: RowBlock[]): KvArray {
    const size = this.numKvHeads * blocks.reduce((n, b) => n + b.rows, 0) * this.headDim;
    if (buffers[layer].length < size) buffers[layer] = allocate(this.cacheDtype, size);
    return concatRows(buffers[layer], blocks, this.numKvHeads, this.headDim);
  }

  /**
   * What the next request of the document can reuse: the carried prefix rows and the tail rows computed here,
   * and the suffix's leading rows held with K/V (carried or computed), keys at this request's positions.
   */
  harvest(): ReuseHarvest {
    const shared = this.setup.shared;
    return this.harvested.harvest(shared, shared?.keys ?? [], shared?.values ?? []);
  }
}

const NO_ROWS: ReadonlySet<number> = new Set();

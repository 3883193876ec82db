/**
 * Depth-wise (BiCache) prefix reuse for one loaded model (in its worker): the store, the depth profile and the
 * segment sessions, and the planning of a request against the store: the longest token prefix it shares with its
 * document's entry (capped so a shifted model's last prefix row, which predicts the first fill position, stays
 * in the denoiser's canvas), the safe depth for that prefix's ratio of the canvas, and the leading suffix rows
 * the entry also holds (their keys moved to the new positions). After the request, cancelled or not, its harvest
 * becomes the document's entry; a warm-up's only when it completes.
 */
import * as fs from 'node:fs';
import { fullPassFeeds, type CacheDtype, type StepModel } from '../graph/stepContract';
import type { ModelArchitecture } from '../architecture/architecture';
import type { GraphVariant } from '../model/manifest';
import { denoise, type DenoiseHooks, type DenoiseRequest, type DenoiseResult, type DenoiseSpec } from '../denoiser/denoiser';
import { readDepthProfile, safeDepthFor, usedDepths, type DepthProfile } from './depthProfile';
import { PrefixReuseModel, type PrefixReuseSetup } from './prefixReuseModel';
import type { ReusableSuffix } from './reuseHarvest';
import { leadingPrefix, PrefixStore, sharedPrefixLength, storeKey, suffixRowsAt, type StoredEntry } from './prefixStore';
import { hasSegmentGraphs } from './segmentFiles';
import type { SegmentedStepModel } from './segmentedModel';

export interface ReuseTuning {
  /** Stored tokens (prefix and suffix rows) over all documents. */
  budgetTokens: number;
  /** Answer a request's first call from stored K/V only: the first partial result computes only new rows. */
  staleFirstCall: boolean;
  /** Refresh the shared rows' deep layers every N calls (BiCache's intra-request interval). */
  refreshEvery: number;
}

/** Memory the store may take by default, and its most tokens (BiCache keeps 5,000 for one system prompt). */
export const DEFAULT_STORE_BYTES = 256 * 1024 ** 2;
export const MAX_STORE_TOKENS = 16384;

/**
 * The default tuning: the first partial result from stored K/V, BiCache's refresh interval (16), and as many
 * tokens as DEFAULT_STORE_BYTES holds (K and V of every layer, plus a hidden state per stored depth): about
 * 16k tokens for the built-in model, 3.7k for a 7B Dream in fp16.
 */
export function defaultReuseTuning(arch: ModelArchitecture, dtype: CacheDtype, storedDepths: number): ReuseTuning {
  const element = dtype === 'float16' ? 2 : 4;
  const bytesPerToken = element * (2 * arch.numLayers * arch.numKvHeads * arch.headDim + storedDepths * arch.hiddenSize);
  return { budgetTokens: Math.min(MAX_STORE_TOKENS, Math.floor(DEFAULT_STORE_BYTES / bytesPerToken)), staleFirstCall: true, refreshEvery: 16 };
}

export interface ReusePlanStats {
  /** Prefix rows taken from the store. */
  sharedTokens: number;
  /** Leading suffix rows taken from the store for the first call. */
  staleSuffixTokens: number;
  /** Shared rows over the canvas, and the depth it allows. */
  ratio: number;
  depth: number;
}

export type ReuseStats = ReusePlanStats & PrefixReuseModel['stats'];

/** What of a request can come from `entry`, as the setup of its reuse model. */
export function planReuse(
  entry: StoredEntry | null,
  request: Pick<DenoiseRequest, 'prefixIds' | 'suffixIds' | 'length'>,
  profile: DepthProfile,
  arch: ModelArchitecture,
  tuning: ReuseTuning,
): { setup: PrefixReuseSetup; stats: ReusePlanStats } {
  const { prefixIds, suffixIds, length } = request;
  const L = arch.numLayers;
  const maxShared = arch.logitShift ? Math.max(0, prefixIds.length - 1) : prefixIds.length;
  const s = entry ? Math.min(sharedPrefixLength(entry.prefix.ids, prefixIds), maxShared) : 0;
  const ratio = s / (prefixIds.length + length + suffixIds.length);
  let depth = safeDepthFor(profile, ratio);
  if (s > 0 && depth > 0 && depth < L && !entry!.prefix.hidden.has(depth)) {
    // A depth whose hidden states the entry lacks: refresh from the deepest stored one above it (or all layers).
    depth = Math.max(0, ...[...entry!.prefix.hidden.keys()].filter((d) => d < depth));
  }
  const shared = s > 0 ? leadingPrefix(entry!.prefix, s, arch) : null;

  let staleSuffix: ReusableSuffix | null = null;
  if (tuning.staleFirstCall && entry?.suffix) {
    const u = sharedPrefixLength(entry.suffix.ids, suffixIds);
    if (u > 0) staleSuffix = suffixRowsAt(entry.suffix, 0, u, prefixIds.length + length, arch);
  }
  return {
    setup: {
      shared,
      staleSuffix,
      depth,
      staleFirstCall: tuning.staleFirstCall,
      refreshEvery: tuning.refreshEvery,
      harvestDepths: usedDepths(profile, L),
      tailIds: prefixIds.slice(s),
      fillLength: length,
      suffixIds,
    },
    stats: { sharedTokens: s, staleSuffixTokens: staleSuffix?.ids.length ?? 0, ratio, depth },
  };
}

/** Why a model folder cannot reuse prefixes, or null when it can. */
export function reuseUnavailableReason(modelDir: string, arch: ModelArchitecture, variant: GraphVariant): string | null {
  if (!hasSegmentGraphs(modelDir, variant, arch.numLayers) || !fs.existsSync(modelDir)) {
    return `the model folder has no depth-wise segments for ${variant.file}; run 'dlm profile-depth ${modelDir}'`;
  }
  try {
    if (!readDepthProfile(modelDir, arch.numLayers)) return `the model folder has no depth profile; run 'dlm profile-depth ${modelDir}'`;
  } catch (error) {
    return (error as Error).message;
  }
  return null;
}

export class PrefixReuser {
  readonly store: PrefixStore;

  constructor(
    private readonly monolithic: StepModel,
    private readonly segments: SegmentedStepModel,
    private readonly profile: DepthProfile,
    private readonly arch: ModelArchitecture,
    /** Names the loaded model and variant in store keys. */
    private readonly modelKey: string,
    private readonly tuning: ReuseTuning,
    /** Where entries are kept; by default a store of its own with the tuning's budget. */
    store?: PrefixStore,
  ) {
    this.store = store ?? new PrefixStore(tuning.budgetTokens, arch);
  }

  /** Denoises `request` reusing what `document`'s entry shares with it; the store gets this request's harvest even when it is cancelled. */
  async denoise(
    spec: DenoiseSpec,
    request: DenoiseRequest,
    document: string,
    hooks: DenoiseHooks = {},
  ): Promise<{ result: DenoiseResult; reuse: ReuseStats }> {
    const key = storeKey(this.modelKey, request.options, document);
    const { setup, stats } = planReuse(this.store.lookup(key), request, this.profile, this.arch, this.tuning);
    const model = new PrefixReuseModel(this.monolithic, this.segments, setup);
    try {
      const result = await denoise(model, spec, { ...request, prefixIds: setup.tailIds }, hooks);
      return { result, reuse: { ...stats, ...model.stats } };
    } finally {
      this.store.put(key, model.harvest());
    }
  }

  /**
   * Computes and stores what `request`'s first call would (the prompt rows' K/V and hidden states), so the
   * request finds them when it comes; stops between layers with PromptComputationCancelled once `isCancelled()`
   * says so, the store then untouched.
   */
  async warm(spec: DenoiseSpec, request: DenoiseRequest, document: string, isCancelled: () => boolean): Promise<ReusePlanStats & PrefixReuseModel['stats']> {
    const key = storeKey(this.modelKey, request.options, document);
    const { setup, stats } = planReuse(this.store.lookup(key), request, this.profile, this.arch, this.tuning);
    const model = new PrefixReuseModel(this.monolithic, this.segments, setup);
    const canvas = [...setup.tailIds, ...new Array<number>(request.length).fill(spec.tokens.mask), ...request.suffixIds];
    await model.computePrompt(fullPassFeeds(model, canvas, [canvas.length - 1]), isCancelled);
    this.store.put(key, model.harvest());
    return { ...stats, ...model.stats };
  }
}

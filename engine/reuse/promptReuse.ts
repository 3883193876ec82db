/**
 * Cross-request prompt reuse for one loaded model, in its worker: full-depth carry (promptCarry.ts), which works
 * with any model folder, and BiCache's depth-wise reuse (prefixReuse.ts), which needs a folder readied by
 * `dlm profile-depth`. Both keep their entries in one store (the mode is part of the key) under one budget,
 * the tokens that DEFAULT_STORE_BYTES holds at the larger of the two entries' sizes per token (depth-wise
 * entries also hold hidden states). The depth-wise segments, when the folder has them, are loaded once at their
 * first use and shared: depth-wise reuse runs on them, and a full-depth warm-up runs layer by layer on them so
 * that a request stops it between layers.
 */
import type { StepModel } from '../graph/stepContract';
import type { ModelArchitecture } from '../architecture/architecture';
import type { ExecutionDevice, GraphVariant } from '../model/manifest';
import type { PromptReuseMode } from '../../common/protocol';
import type { DenoiseHooks, DenoiseRequest, DenoiseResult, DenoiseSpec } from '../denoiser/denoiser';
import { readDepthProfile, usedDepths } from './depthProfile';
import { defaultReuseTuning, PrefixReuser, reuseUnavailableReason } from './prefixReuse';
import { PromptCarry } from './promptCarry';
import { PrefixStore } from './prefixStore';
import { hasSegmentGraphs } from './segmentFiles';
import { SegmentedStepModel } from './segmentedModel';

/** What a request (or warm-up) reused and computed. */
export interface ReuseSummary {
  mode: PromptReuseMode;
  /** Prompt rows of the request, and of them the rows whose K/V came from the store: prefix rows, leading suffix rows. */
  promptTokens: number;
  prefixTokens: number;
  suffixTokens: number;
  /** Layers the prefix rows were reused in for the whole request (full-depth: all of them). */
  depth: number;
  /** Rows computed, summed over graph calls (a depth-wise row counts the share of layers it ran through). */
  rowsComputed: number;
}

/** A depth-wise request on a folder that is not readied for it. */
export class ReuseUnavailableError extends Error {
  override name = 'ReuseUnavailableError';
}

export class PromptReuse {
  readonly store: PrefixStore;
  private readonly carry: PromptCarry;
  private depthwise: Promise<PrefixReuser> | undefined;
  private segments: Promise<SegmentedStepModel | null> | undefined;

  constructor(
    private readonly modelDir: string,
    private readonly arch: ModelArchitecture,
    private readonly variant: GraphVariant,
    private readonly device: ExecutionDevice,
    private readonly monolithic: StepModel,
  ) {
    // The profile's depths size the store for depth-wise entries (a folder readied later keeps this budget).
    let profile = null;
    try {
      profile = readDepthProfile(modelDir, arch.numLayers);
    } catch {
      // A malformed profile is reported when a depth-wise request needs it.
    }
    const depths = profile ? usedDepths(profile, arch.numLayers).length : 0;
    this.store = new PrefixStore(defaultReuseTuning(arch, variant.cacheDtype, depths).budgetTokens, arch);
    this.carry = new PromptCarry(monolithic, arch, this.modelKey('full-depth'), this.store);
  }

  /** Denoises `request` reusing what `document`'s entry for `mode` shares with it. */
  async denoise(
    spec: DenoiseSpec,
    request: DenoiseRequest,
    document: string,
    mode: PromptReuseMode,
    hooks: DenoiseHooks,
  ): Promise<{ result: DenoiseResult; reuse: ReuseSummary }> {
    const promptTokens = request.prefixIds.length + request.suffixIds.length;
    if (mode === 'full-depth') {
      const { result, carry } = await this.carry.denoise(spec, request, document, hooks);
      const reuse = { mode, promptTokens, prefixTokens: carry.sharedTokens, suffixTokens: carry.carriedSuffixTokens, depth: this.arch.numLayers, rowsComputed: carry.rowsComputed };
      return { result, reuse };
    }
    const reuser = await this.depthwiseReuser();
    const { result, reuse: stats } = await reuser.denoise(spec, request, document, hooks);
    return { result, reuse: { mode, promptTokens, prefixTokens: stats.sharedTokens, suffixTokens: stats.staleSuffixTokens, depth: stats.depth, rowsComputed: stats.rowsComputed } };
  }

  /**
   * Computes and stores `request`'s prompt K/V for `mode`, stopping with PromptComputationCancelled between
   * layers once `isCancelled()` says so (a full-depth warm-up without segments runs as one call).
   */
  async warm(spec: DenoiseSpec, request: DenoiseRequest, document: string, mode: PromptReuseMode, isCancelled: () => boolean): Promise<ReuseSummary> {
    const promptTokens = request.prefixIds.length + request.suffixIds.length;
    if (mode === 'full-depth') {
      const carry = await this.carry.warm(spec, request, document, { segments: await this.segmentModel(), isCancelled });
      return { mode, promptTokens, prefixTokens: carry.sharedTokens, suffixTokens: carry.carriedSuffixTokens, depth: this.arch.numLayers, rowsComputed: carry.rowsComputed };
    }
    const reuser = await this.depthwiseReuser();
    const stats = await reuser.warm(spec, request, document, isCancelled);
    return { mode, promptTokens, prefixTokens: stats.sharedTokens, suffixTokens: stats.staleSuffixTokens, depth: stats.depth, rowsComputed: stats.rowsComputed };
  }

  async release(): Promise<void> {
    this.store.clear();
    const segments = await this.segments?.catch(() => null);
    await segments?.release();
  }

  /** Names the loaded model, its variant and the mode in store keys. */
  private modelKey(mode: PromptReuseMode): string {
    return `${this.modelDir}#${this.variant.file}#${mode}`;
  }

  /** The segments of the folder, or null when it has none. A failed load is not kept (the folder may be readied meanwhile). */
  private segmentModel(): Promise<SegmentedStepModel | null> {
    this.segments ??= (async () => {
      if (!hasSegmentGraphs(this.modelDir, this.variant, this.arch.numLayers)) return null;
      return SegmentedStepModel.load(this.modelDir, this.arch, this.variant, this.device);
    })().catch((error: unknown) => {
      this.segments = undefined;
      throw error;
    });
    return this.segments.then((segments) => {
      // Segments written after a first look (`dlm profile-depth` while the engine runs) are found next time.
      if (segments === null) this.segments = undefined;
      return segments;
    });
  }

  /** The depth-wise reuser, or ReuseUnavailableError saying why the folder cannot have one. */
  private depthwiseReuser(): Promise<PrefixReuser> {
    this.depthwise ??= (async () => {
      const reason = reuseUnavailableReason(this.modelDir, this.arch, this.variant);
      if (reason) throw new ReuseUnavailableError(reason);
      const profile = readDepthProfile(this.modelDir, this.arch.numLayers)!;
      const segments = (await this.segmentModel())!;
      const tuning = defaultReuseTuning(this.arch, this.variant.cacheDtype, usedDepths(profile, this.arch.numLayers).length);
      return new PrefixReuser(this.monolithic, segments, profile, this.arch, this.modelKey('depthwise'), tuning, this.store);
    })().catch((error: unknown) => {
      this.depthwise = undefined;
      throw error;
    });
    return this.depthwise;
  }
}

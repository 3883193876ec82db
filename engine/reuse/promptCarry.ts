/**
 * Full-depth prompt reuse for one loaded model (in its worker): the store of what each document's last request
 * (or warm-up) computed, and the planning of a request against it. A request carries the longest token prefix it
 * shares with its document's entry (capped so a shifted model's last prefix row, which predicts the first fill
 * position, stays in the denoiser's canvas) and the leading suffix rows the entry also holds, their keys rotated
 * to the positions they moved to; it computes the rest (carriedPromptModel.ts). After the request, cancelled or
 * not, its harvest becomes the document's entry; a warm-up's only when it completes.
 *
 * Safety is the store's (prefixStore.ts): an entry is offered only to the same model, decoding options and
 * document, and only rows whose tokens equal the request's, so an edit before the cursor ends the carried prefix
 * at the edit and an edit after it ends the carried suffix there.
 */
import { fullPassFeeds, type CacheDtype, type StepModel } from '../graph/stepContract';
import type { ModelArchitecture } from '../architecture/architecture';
import { denoise, type DenoiseHooks, type DenoiseRequest, type DenoiseResult, type DenoiseSpec } from '../denoiser/denoiser';
import { CarriedPromptModel, type CarrySetup, type LayeredRun } from './carriedPromptModel';
import { DEFAULT_STORE_BYTES, MAX_STORE_TOKENS } from './prefixReuse';
import { leadingPrefix, PrefixStore, sharedPrefixLength, storeKey, suffixRowsAt, type StoredEntry } from './prefixStore';
import type { SegmentedStepModel } from './segmentedModel';

export interface CarryStats {
  /** Prompt rows whose K/V came from the store: prefix rows, and leading suffix rows. */
  sharedTokens: number;
  carriedSuffixTokens: number;
  /** Prompt rows of the request (prefix + suffix). */
  promptTokens: number;
  /** Rows the request's graph calls computed, summed over calls. */
  rowsComputed: number;
}

/** Stored tokens that fit DEFAULT_STORE_BYTES with K and V of every layer (no hidden states), capped at MAX_STORE_TOKENS. */
export function carryBudgetTokens(arch: ModelArchitecture, dtype: CacheDtype): number {
  const bytesPerToken = (dtype === 'float16' ? 2 : 4) * 2 * arch.numLayers * arch.numKvHeads * arch.headDim;
  return Math.min(MAX_STORE_TOKENS, Math.floor(DEFAULT_STORE_BYTES / bytesPerToken));
}

/**
 * Prompt rows next to the cursor that every request computes afresh even when they are stored: the prefix's
 * last and the suffix's first. They are the rows whose stored K/V are the most out of date (computed while the
 * text typed since was masks or not there), and the ones the fill attends to most. The suffix's first rows matter
 * most: on the built-in model's typing replay (`dlm bench --typing --model builtin --sessions 4`, README "Prompt
 * reuse across keystrokes") windows of 16 prefix and 32 suffix rows agree with no reuse on 98.0 % of fill tokens
 * with the prefill cache, against 89.2 % for 16 and 0.
 */
export interface CarryWindows {
  prefix: number;
  suffix: number;
}

export const DEFAULT_CARRY_WINDOWS: Readonly<CarryWindows> = Object.freeze({ prefix: 16, suffix: 32 });

/** What of a request can be carried from `entry`, as the setup of its carried-prompt model. */
export function planCarry(
  entry: StoredEntry | null,
  request: Pick<DenoiseRequest, 'prefixIds' | 'suffixIds' | 'length'>,
  arch: ModelArchitecture,
  windows: CarryWindows = DEFAULT_CARRY_WINDOWS,
): { setup: CarrySetup; stats: Omit<CarryStats, 'rowsComputed'> } {
  const { prefixIds, suffixIds, length } = request;
  const maxShared = arch.logitShift ? Math.max(0, prefixIds.length - 1) : prefixIds.length;
  const s = entry ? Math.max(0, Math.min(sharedPrefixLength(entry.prefix.ids, prefixIds), maxShared, prefixIds.length - windows.prefix)) : 0;
  const matched = entry?.suffix ? sharedPrefixLength(entry.suffix.ids, suffixIds) : 0;
  const from = Math.min(windows.suffix, matched);
  const setup: CarrySetup = {
    shared: s > 0 ? leadingPrefix(entry!.prefix, s, arch) : null,
    carriedSuffix: matched > from ? suffixRowsAt(entry!.suffix!, from, matched, prefixIds.length + length, arch) : null,
    carriedSuffixFrom: from,
    tailIds: prefixIds.slice(s),
    fillLength: length,
    suffixIds,
  };
  return { setup, stats: { sharedTokens: s, carriedSuffixTokens: matched - from, promptTokens: prefixIds.length + suffixIds.length } };
}

export class PromptCarry {
  readonly store: PrefixStore;

  constructor(
    private readonly monolithic: StepModel,
    private readonly arch: ModelArchitecture,
    /** Names the loaded model and variant in store keys. */
    private readonly modelKey: string,
    /** Where entries are kept; by default a store of its own sized by carryBudgetTokens. */
    store?: PrefixStore,
    private readonly windows: CarryWindows = DEFAULT_CARRY_WINDOWS,
  ) {
    this.store = store ?? new PrefixStore(carryBudgetTokens(arch, monolithic.cacheDtype), arch);
  }

  /** Denoises `request` carrying what `document`'s entry shares with it. */
  async denoise(
    spec: DenoiseSpec,
    request: DenoiseRequest,
    document: string,
    hooks: DenoiseHooks = {},
  ): Promise<{ result: DenoiseResult; carry: CarryStats }> {
    const key = storeKey(this.modelKey, request.options, document);
    const { setup, stats } = planCarry(this.store.lookup(key), request, this.arch, this.windows);
    const model = new CarriedPromptModel(this.monolithic, setup, this.arch.hiddenSize);
    try {
      const result = await denoise(model, spec, { ...request, prefixIds: setup.tailIds, suffixIds: computedSuffix(setup) }, hooks);
      return { result, carry: { ...stats, rowsComputed: model.rowsComputed } };
    } finally {
      this.store.put(key, model.harvest());
    }
  }

  /**
   * Computes and stores what `request`'s first call would: the K/V of its prompt rows not yet in the store (with
   * its fill masked), so that the request, when it comes, finds them carried. With `layered` the computation runs
   * layer by layer and throws PromptComputationCancelled between layers once cancelled; the store is then untouched.
   */
  async warm(spec: DenoiseSpec, request: DenoiseRequest, document: string, layered?: Omit<LayeredRun, 'segments'> & { segments: SegmentedStepModel | null }): Promise<CarryStats> {
    const key = storeKey(this.modelKey, request.options, document);
    const { setup, stats } = planCarry(this.store.lookup(key), request, this.arch, this.windows);
    const model = new CarriedPromptModel(this.monolithic, setup, this.arch.hiddenSize);
    const canvas = [...setup.tailIds, ...new Array<number>(request.length).fill(spec.tokens.mask), ...computedSuffix(setup)];
    const run = layered?.segments ? { segments: layered.segments, isCancelled: layered.isCancelled } : undefined;
    await model.computePrompt(fullPassFeeds(model, canvas, [canvas.length - 1]), run);
    this.store.put(key, model.harvest());
    return { ...stats, rowsComputed: model.rowsComputed };
  }
}

/** The suffix rows the denoiser's canvas holds: all but the carried ones. */
function computedSuffix(setup: CarrySetup): number[] {
  const carried = setup.carriedSuffix?.ids.length ?? 0;
  return [...setup.suffixIds.slice(0, setup.carriedSuffixFrom), ...setup.suffixIds.slice(setup.carriedSuffixFrom + carried)];
}

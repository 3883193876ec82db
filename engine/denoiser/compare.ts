/**
 * Cache modes against `none` on the same model and canvas: token agreement and the rows each mode computes.
 * Mocha-independent, for benchmarks and `rowsReport.ts`; every run goes to completion (no early stop at an
 * end token) so the modes do equal work and their fills compare position by position.
 */
import type { StepModel } from '../graph/stepContract';
import type { DecodingOptions } from '../../common/decodingOptions';
import { denoise, type DenoiseRequest, type DenoiseSpec, type DenoiseStats } from './denoiser';

export interface ModeComparison {
  options: DecodingOptions;
  /** The untrimmed fill after the last step. */
  fill: number[];
  /** Share of fill positions holding the same token as the `none` run's. */
  agreementVsNone: number;
  /** Rows computed over the request, relative to `none` (the bound on the speedup from computing fewer rows). */
  rowsRatioVsNone: number;
  stats: DenoiseStats;
}

export interface Comparison {
  none: ModeComparison;
  modes: ModeComparison[];
}

/**
 * Share of the `length` fill positions where two fills agree; a position past a fill's end (it ended early
 * with an end-of-text token) compares as "ended", so two fills that end at the same place agree there.
 */
export function agreement(fill: readonly number[], reference: readonly number[], length = Math.max(fill.length, reference.length)): number {
  if (length === 0) return 1;
  let same = 0;
  for (let i = 0; i < length; i++) if ((fill[i] ?? -1) === (reference[i] ?? -1)) same++;
  return same / length;
}

/**
 * Runs `request` once with `cache: 'none'` and once per entry of `modes` (each overriding `request.options`),
 * and compares each against the `none` run.
 */
export async function compareWithNone(
  model: StepModel,
  spec: DenoiseSpec,
  request: DenoiseRequest,
  modes: Partial<DecodingOptions>[],
): Promise<Comparison> {
  const runOne = async (options: DecodingOptions) => {
    let fill: number[] = [];
    const result = await denoise(model, spec, { ...request, options, runToCompletion: true }, {
      onProgress: (p) => (fill = Array.from(p.fill)),
    });
    return { options, fill, stats: result.stats };
  };
  const base = await runOne({ ...request.options, cache: 'none' });
  const none: ModeComparison = { ...base, agreementVsNone: 1, rowsRatioVsNone: 1 };
  const compared: ModeComparison[] = [];
  for (const mode of modes) {
    const r = await runOne({ ...request.options, ...mode });
    compared.push({ ...r, agreementVsNone: agreement(r.fill, base.fill), rowsRatioVsNone: r.stats.rowsComputed / base.stats.rowsComputed });
  }
  return { none, modes: compared };
}

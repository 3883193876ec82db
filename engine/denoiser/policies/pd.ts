/**
 * `pd`: dKV-Cache-PD (Ma et al. 2025; the paper's Dream runs, `PrefillDynamicCache`): Prefill and Decode
 * together. The first step computes the whole canvas, and the prompt (prefix and suffix) keeps those K/V for the
 * whole request, as in `prefill`; decoded tokens are cached one step after their commit, as in `decode`; the
 * refresh every N steps recomputes every fill row, decoded or masked, and never the prompt. So a refresh costs
 * the fill, not the canvas: on a 600-token context with a 16-token fill, 17 rows instead of 617.
 *
 * Exact relations (tested): with N = 1 every later step recomputes the whole fill against the stored prompt,
 * which is `prefill` with N = 0; with N at least the number of steps it never refreshes after step 0, which is
 * `decode` with that N.
 */
import { DecodePolicy } from './decode';

export class PrefillDecodePolicy extends DecodePolicy {
  constructor(refreshInterval: number) {
    super(refreshInterval, 'pd');
  }

  protected override refreshKeepsPrompt(step: number): boolean {
    return step > 0;
  }
}

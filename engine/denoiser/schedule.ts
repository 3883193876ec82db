/**
 * How many masked positions are committed per step, and where they may be.
 *
 * The fill is tiled into blocks of `blockLength` (one block when blockLength >= the fill); only the current
 * block's masked positions are candidates, and the next block starts when the current one is complete
 * (LLaDA's semi-autoregressive sampling, Fast-dLLM's blocks). Within a block:
 * - `blocks`: LLaDA's `get_num_transfer_tokens` over the block's steps (the same count each step, the first
 *   `n % steps` steps one more);
 * - `timesteps`: Dream's `k = int(n_mask * (1 - s/t))` over `linspace(1, eps, steps + 1)`, the last step taking
 *   every remaining mask, computed in float32 as Dream's torch code does (Fast-dLLM's block variant when there
 *   are several blocks);
 * - `threshold`: Fast-dLLM's rule: every candidate whose probability is >= the threshold, at least the best one.
 *
 * Rounding rules (instead of LLaDA's asserts, so any length works): `steps` above the fill length is lowered
 * to it (a step could commit nothing otherwise); the last block may be shorter than `blockLength`; the steps are
 * split over the blocks like tokens over steps (the first `steps % blocks` blocks one more), each block getting
 * at most as many steps as it has positions. Fewer steps than blocks is an error for `blocks` and `timesteps`
 * (`threshold` ignores `steps` but for its progress estimate).
 */
import type { ScheduleKind } from '../../common/decodingOptions';
import type { TokenCanvas } from './tokenCanvas';

/** A block of fill positions, as canvas positions [start, end). */
export interface Block {
  index: number;
  start: number;
  end: number;
}

export interface ScheduleStep {
  block: Block;
  /** Positions to commit this step; null when the threshold decides. */
  count: number | null;
}

export interface Schedule {
  readonly kind: ScheduleKind;
  readonly blocks: readonly Block[];
  /** Steps planned; for `threshold` an upper estimate (it stops when the fill is complete). */
  readonly plannedSteps: number;
  /** The next step's block and count, or null when the fill is complete. Call once per step. */
  next(canvas: TokenCanvas): ScheduleStep | null;
}

export interface ScheduleOptions {
  schedule: ScheduleKind;
  steps: number;
  blockLength: number;
}

/** Dream's default `eps` of `linspace(1, eps, steps + 1)`. */
export const DREAM_EPS = 1e-3;

/** `n` split into `parts` as evenly as possible, the first `n % parts` parts one larger (LLaDA's rule). */
export function splitEvenly(n: number, parts: number): number[] {
  const base = Math.floor(n / parts);
  const remainder = n % parts;
  return Array.from({ length: parts }, (_, i) => base + (i < remainder ? 1 : 0));
}

/** LLaDA's `get_num_transfer_tokens` for one block: tokens to commit at each of `steps` steps. */
export function numTransferTokens(maskCount: number, steps: number): number[] {
  return splitEvenly(maskCount, steps);
}

/** `torch.linspace(start, end, count)` in float32, with the CPU kernel's two-sided formula. */
export function linspaceFloat32(start: number, end: number, count: number): number[] {
  const f = Math.fround;
  const s = f(start);
  const e = f(end);
  if (count === 1) return [s];
  const step = f(f(e - s) / (count - 1));
  const halfway = Math.floor(count / 2);
  return Array.from({ length: count }, (_, i) => (i < halfway ? f(s + f(step * i)) : f(e - f(step * (count - i - 1)))));
}

/**
 * Dream's per-step transfer counts for a block of `maskCount` masks over `steps` steps, committing exactly
 * the count each step: `int(n_mask * (1 - s/t))` in float32, all remaining masks at the last step.
 */
export function dreamTransferCounts(maskCount: number, steps: number, eps = DREAM_EPS): number[] {
  const f = Math.fround;
  const t = linspaceFloat32(1, eps, steps + 1);
  const counts: number[] = [];
  let remaining = maskCount;
  for (let i = 0; i < steps; i++) {
    const k = i < steps - 1 ? Math.trunc(f(remaining * f(1 - f(t[i + 1] / t[i])))) : remaining;
    counts.push(k);
    remaining -= k;
  }
  return counts;
}

/** The fill [fillStart, fillStart + fillLength) tiled into blocks; the last one may be shorter. */
export function tileBlocks(fillStart: number, fillLength: number, blockLength: number): Block[] {
  const size = Math.min(blockLength, fillLength);
  const blocks: Block[] = [];
  for (let start = fillStart, index = 0; start < fillStart + fillLength; start += size, index++) {
    blocks.push({ index, start, end: Math.min(start + size, fillStart + fillLength) });
  }
  return blocks;
}

/** Steps per block by the rounding rules above. */
export function stepsPerBlock(blocks: readonly Block[], steps: number): number[] {
  const fillLength = blocks.reduce((n, b) => n + b.end - b.start, 0);
  const total = Math.min(steps, fillLength);
  if (total < blocks.length) {
    throw new RangeError(`steps (${steps}) must be at least the number of blocks (${blocks.length})`);
  }
  return splitEvenly(total, blocks.length).map((s, i) => Math.min(s, blocks[i].end - blocks[i].start));
}

/** A fixed plan: per block, the count of every step (zero-count steps are dropped: they cannot change the canvas). */
class CountSchedule implements Schedule {
  readonly plannedSteps: number;
  private readonly plan: ScheduleStep[] = [];
  private cursor = 0;

  constructor(readonly kind: ScheduleKind, readonly blocks: readonly Block[], countsPerBlock: number[][]) {
    blocks.forEach((block, b) => {
      for (const count of countsPerBlock[b]) if (count > 0) this.plan.push({ block, count });
    });
    this.plannedSteps = this.plan.length;
  }

  next(canvas: TokenCanvas): ScheduleStep | null {
    const step = this.plan[this.cursor++];
    if (step === undefined) return null;
    const masked = canvas.maskedIn(step.block.start, step.block.end).length;
    if (step.count! > masked) throw new Error(`schedule wants ${step.count} commits in block ${step.block.index} but only ${masked} are masked`);
    return step;
  }
}

class ThresholdSchedule implements Schedule {
  readonly kind = 'threshold' as const;

  constructor(readonly blocks: readonly Block[], readonly plannedSteps: number) {}

  next(canvas: TokenCanvas): ScheduleStep | null {
    for (const block of this.blocks) {
      if (canvas.maskedIn(block.start, block.end).length > 0) return { block, count: null };
    }
    return null;
  }
}

export function createSchedule(options: ScheduleOptions, canvas: TokenCanvas): Schedule {
  const blocks = tileBlocks(canvas.fillStart, canvas.fillLength, options.blockLength);
  switch (options.schedule) {
    case 'blocks': {
      const perBlock = stepsPerBlock(blocks, options.steps);
      return new CountSchedule('blocks', blocks, blocks.map((b, i) => numTransferTokens(b.end - b.start, perBlock[i])));
    }
    case 'timesteps': {
      const perBlock = stepsPerBlock(blocks, options.steps);
      return new CountSchedule('timesteps', blocks, blocks.map((b, i) => dreamTransferCounts(b.end - b.start, perBlock[i])));
    }
    case 'threshold':
      // `steps` only sets the progress estimate: each block takes at least one step, the fill at most n.
      return new ThresholdSchedule(blocks, Math.max(blocks.length, Math.min(options.steps, canvas.fillLength)));
  }
}

/** A candidate as the sampler scored it. */
export interface ScoredCandidate {
  position: number;
  token: number;
  /** Un-noised probability of `token`. */
  probability: number;
  /** The algorithm's ranking score (higher commits first). */
  score: number;
}

/**
 * The candidates to commit: the `count` best by score (ties: lower position first), or with `count` null
 * every candidate whose probability is >= `threshold`, and at least the best one.
 */
export function selectCommits(candidates: readonly ScoredCandidate[], count: number | null, threshold: number): ScoredCandidate[] {
  const ranked = [...candidates].sort((a, b) => b.score - a.score || a.position - b.position);
  if (count !== null) {
    if (count > ranked.length) throw new Error(`asked to commit ${count} of ${ranked.length} candidates`);
    return ranked.slice(0, count);
  }
  const passing = ranked.filter((c) => c.probability >= threshold);
  return passing.length > 0 ? passing : ranked.slice(0, 1);
}

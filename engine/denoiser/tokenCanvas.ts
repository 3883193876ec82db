/**
 * The canvas of one request: `[prefix][MASK x n][suffix]` at positions 0..L-1. Only the n fill positions are
 * ever written, each exactly once (mask -> token); the prefix and the suffix are final from the start and
 * cannot be changed through this class.
 */

/** Thrown when prefix + fill + suffix exceed the model's positions; the engine answers `CanvasTooLong`. */
export class CanvasTooLongError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CanvasTooLongError';
  }
}

/** Rejects a canvas the model cannot hold, naming the numbers. */
export function checkCanvasFits(prefixTokens: number, fillLength: number, suffixTokens: number, maxPositions: number): void {
  const total = prefixTokens + fillLength + suffixTokens;
  if (total > maxPositions) {
    throw new CanvasTooLongError(
      `The canvas is ${total} tokens (prefix ${prefixTokens} + fill ${fillLength} + suffix ${suffixTokens}); ` +
        `the model takes at most ${maxPositions}.`,
    );
  }
}

/** `committedStep` of a position that is final from the start (prefix, suffix). */
const PRESET = -1;
/** `committedStep` of a still-masked position. */
const MASKED = 0x7fffffff;

export class TokenCanvas {
  readonly length: number;
  readonly prefixLength: number;
  readonly fillLength: number;
  readonly suffixLength: number;
  /** First fill position. */
  readonly fillStart: number;
  /** One past the last fill position (= first suffix position). */
  readonly fillEnd: number;
  readonly maskId: number;
  private readonly tokenIds: Int32Array;
  private readonly committedStep: Int32Array;
  /** Per fill position: the probability the token was committed with, NaN while masked. */
  private readonly fillConfidence: Float32Array;
  private masked: number;

  constructor(prefixIds: readonly number[], fillLength: number, suffixIds: readonly number[], maskId: number) {
    if (!Number.isInteger(fillLength) || fillLength < 1) throw new RangeError(`fill length must be a positive integer, got ${fillLength}`);
    this.prefixLength = prefixIds.length;
    this.fillLength = fillLength;
    this.suffixLength = suffixIds.length;
    this.length = this.prefixLength + fillLength + this.suffixLength;
    this.fillStart = this.prefixLength;
    this.fillEnd = this.prefixLength + fillLength;
    this.maskId = maskId;
    this.tokenIds = new Int32Array(this.length);
    this.tokenIds.set(prefixIds, 0);
    this.tokenIds.fill(maskId, this.fillStart, this.fillEnd);
    this.tokenIds.set(suffixIds, this.fillEnd);
    this.committedStep = new Int32Array(this.length).fill(PRESET);
    this.committedStep.fill(MASKED, this.fillStart, this.fillEnd);
    this.fillConfidence = new Float32Array(fillLength).fill(NaN);
    this.masked = fillLength;
  }

  token(position: number): number {
    return this.tokenIds[position];
  }

  isFill(position: number): boolean {
    return position >= this.fillStart && position < this.fillEnd;
  }

  isMasked(position: number): boolean {
    return this.committedStep[position] === MASKED;
  }

  /** True when the token at `position` was final before step `step` began (prefix/suffix: always). */
  wasFinalBefore(position: number, step: number): boolean {
    return this.committedStep[position] < step;
  }

  /** The step that committed a fill position; -1 for prefix/suffix; undefined while masked. */
  committedAt(position: number): number | undefined {
    const s = this.committedStep[position];
    return s === MASKED ? undefined : s;
  }

  get maskedCount(): number {
    return this.masked;
  }

  /** Commits a token at a masked fill position; anything else is a bug in the caller. */
  commit(position: number, token: number, confidence: number, step: number): void {
    if (!this.isFill(position)) throw new Error(`position ${position} is not in the fill [${this.fillStart}, ${this.fillEnd})`);
    if (!this.isMasked(position)) throw new Error(`position ${position} was already committed at step ${this.committedStep[position]}`);
    this.tokenIds[position] = token;
    this.committedStep[position] = step;
    this.fillConfidence[position - this.fillStart] = confidence;
    this.masked--;
  }

  /** Masked positions in [start, end), ascending. */
  maskedIn(start: number, end: number): number[] {
    const out: number[] = [];
    for (let p = start; p < end; p++) if (this.committedStep[p] === MASKED) out.push(p);
    return out;
  }

  /** A copy of the fill tokens (the mask id where still masked). */
  fillTokens(): Int32Array {
    return this.tokenIds.slice(this.fillStart, this.fillEnd);
  }

  /** A copy of the per-fill-token confidences (NaN where still masked). */
  fillConfidences(): Float32Array {
    return this.fillConfidence.slice();
  }

  /** A copy of the whole canvas. */
  allTokens(): Int32Array {
    return this.tokenIds.slice();
  }
}

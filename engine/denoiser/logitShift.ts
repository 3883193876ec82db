/**
 * Which graph row predicts which canvas position. Dream-family models keep the autoregressive alignment: the
 * logits of row p-1 predict the token at p. LLaDA reads row p for p. Position 0 of a shifted model has no row
 * before it and reads row 0, exactly as Dream's `cat([logits[:, :1], logits[:, :-1]])` does (it only matters for
 * a canvas with an empty prefix).
 */
import type { TokenCanvas } from './tokenCanvas';

/** The row whose prediction is read for canvas position `position`. */
export function predictorRow(position: number, logitShift: boolean): number {
  return logitShift && position > 0 ? position - 1 : position;
}

/**
 * A row is settled before `step` when its token was final before the step and, for a shifted model, it is no
 * longer needed as the predictor of a masked position (dKV-Cache's 'un' shift type: row p-1 stays live while
 * p is masked). Only settled rows' K/V are cached by the policies that cache decoded tokens.
 */
export function isSettledBefore(canvas: TokenCanvas, row: number, logitShift: boolean, step: number): boolean {
  if (!canvas.wasFinalBefore(row, step)) return false;
  if (!logitShift) return true;
  // Row r predicts r + 1 (and row 0 also predicts position 0, whose finality was just checked).
  return row + 1 >= canvas.length || canvas.wasFinalBefore(row + 1, step);
}

/**
 * Whether `row` is the predictor of a position that is masked now (at the start of the current step): such a
 * row must be computed every step, since its logits are read.
 */
export function predictsMaskedPosition(canvas: TokenCanvas, row: number, logitShift: boolean): boolean {
  if (!logitShift) return canvas.isMasked(row);
  return (row + 1 < canvas.length && canvas.isMasked(row + 1)) || (row === 0 && canvas.isMasked(0));
}

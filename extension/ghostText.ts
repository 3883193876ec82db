/**
 * What the ghost text shows while the engine denoises: the fill so far, each still-masked token drawn as a
 * faint placeholder glyph (a light shade block, fainter than any letter in the already faint ghost text).
 * Pure text functions; the provider turns them into inline completion items.
 */
import { MASK_GLYPH, progressText, type InfillProgressParams } from '../common/protocol';
import { firstLine } from './fillTrimming';
import { normalizeLineBreaks } from './lineBreaks';

/** The placeholder drawn for a masked token: the protocol's own mask glyph. */
export const PLACEHOLDER = MASK_GLYPH;

export function hasPlaceholder(text: string): boolean {
  return text.includes(PLACEHOLDER);
}

/** The canvas before the first step: every token still masked. */
export function fullyMasked(length: number): string {
  return PLACEHOLDER.repeat(length);
}

/**
 * The ghost text of a progress report. In the middle of a line only the first line is shown, as the final
 * fill will be cut there too.
 */
export function partialGhostText(progress: Pick<InfillProgressParams, 'pieces'>, multiline: boolean): string {
  const text = normalizeLineBreaks(progressText(progress.pieces));
  return multiline ? text : firstLine(text);
}

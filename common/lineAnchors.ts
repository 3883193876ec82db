/**
 * Where to cut the code before the cursor so that consecutive requests keep the same first line.
 *
 * While the user types, the text before the cursor grows at its end; a window that always keeps "as many whole
 * lines as fit" moves its first line on every few keystrokes, and then nothing is shared with the previous
 * request (the shared-prefix cache finds no common start). So cuts prefer *anchor* lines, chosen by their
 * content, about one line in ANCHOR_SPACING: the cut stays put until the text no longer fits, then jumps to the
 * next anchor. Chosen by content, anchors also stay put when the text handed in was itself cut elsewhere.
 * Used by the extension (a byte budget) and the engine (a token budget).
 */

/** About one line in this many is an anchor. */
export const ANCHOR_SPACING = 8;

/** Offsets where the lines of `text` start; the first is 0. */
export function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1 && i + 1 < text.length; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

/** FNV-1a over a line's characters. */
function lineHash(text: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Only complete lines are anchors: the line at the cursor changes with every keystroke. */
export function isAnchorLine(text: string, start: number): boolean {
  const newline = text.indexOf('\n', start);
  return newline !== -1 && lineHash(text, start, newline) % ANCHOR_SPACING === 0;
}

/**
 * The line start (after the first line) from which the rest of `text` fits, preferring anchor lines and, among
 * them or else among all lines, the earliest (the most text kept); undefined when no line start fits.
 * `fits(start, line)` gets the offset and the index of the line in `lineStarts(text)`.
 */
export function tailCut(text: string, fits: (start: number, line: number) => boolean, starts = lineStarts(text)): number | undefined {
  for (const onlyAnchors of [true, false]) {
    for (let i = 1; i < starts.length; i++) {
      if ((!onlyAnchors || isAnchorLine(text, starts[i])) && fits(starts[i], i)) return starts[i];
    }
  }
  return undefined;
}

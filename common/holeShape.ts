/**
 * Whether a hole may be filled with several lines, decided by what follows it on its line: in the middle of a
 * line only the rest of that line is filled. Shared by the extension's canvases and the CLI's server path.
 */

/** Characters that may follow the cursor without making it "mid-line": closers an editor auto-inserts. */
const TRAILING_CLOSERS = /^[\s)\]}>;,:'"`]*$/;

/** Multi-line completion is allowed when the rest of the line is empty or only closing punctuation. */
export function allowsMultiline(restOfLine: string): boolean {
  return TRAILING_CLOSERS.test(restOfLine);
}

/** `allowsMultiline` for the code after a hole (the rest of its line is what comes before the first line break). */
export function holeAllowsMultiline(suffix: string): boolean {
  const newline = suffix.indexOf('\n');
  return allowsMultiline(newline === -1 ? suffix : suffix.slice(0, newline));
}

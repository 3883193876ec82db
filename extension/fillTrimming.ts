/**
 * What of a finished fill is offered to the user: one line in the middle of a line, no trailing blank
 * lines where the document already ends the line, and no text that only repeats what follows the cursor
 * (a diffusion model sees the suffix and sometimes writes its start again, e.g. a closing bracket).
 */
import { normalizeLineBreaks } from './lineBreaks';

export interface FillContext {
  /** The code after the cursor. */
  suffix: string;
  /** False in the middle of a line: only the first line of the fill is kept. */
  multiline: boolean;
}

/** Closing punctuation a fill may repeat from the suffix without meaning it twice. */
const CLOSERS_ONLY = /^[)\]}>;,'"`]+$/;

export function firstLine(text: string): string {
  const newline = text.indexOf('\n');
  return newline === -1 ? text : text.slice(0, newline);
}

/** Drops the end of `fill` when it repeats the start of the line after the cursor. */
function trimRepeatedLineSuffix(fill: string, suffixLine: string): string {
  const rest = suffixLine.trimEnd();
  if (rest === '') return fill;
  for (let k = Math.min(rest.length, fill.length); k > 0; k--) {
    const head = rest.slice(0, k);
    if (fill.endsWith(head) && (k === rest.length || CLOSERS_ONLY.test(head))) {
      return fill.slice(0, fill.length - k);
    }
  }
  return fill;
}

/** Drops the last lines of `fill` when they equal the next lines of the document after the cursor's line. */
function trimRepeatedLines(fill: string, suffix: string): string {
  const fillLines = fill.split('\n');
  const nextLines = suffix
    .split('\n')
    .slice(1)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  for (let k = Math.min(fillLines.length - 1, nextLines.length); k > 0; k--) {
    const tail = fillLines.slice(fillLines.length - k).map((line) => line.trim());
    if (tail.every((line, i) => line !== '' && line === nextLines[i])) {
      return fillLines.slice(0, fillLines.length - k).join('\n');
    }
  }
  return fill;
}

/** The text to insert for a finished fill; '' when nothing useful is left. */
export function trimFill(fill: string, context: FillContext): string {
  let text = normalizeLineBreaks(fill);
  if (!context.multiline) text = firstLine(text);
  const suffixLine = firstLine(context.suffix).replace(/\r$/, '');
  if (context.multiline) {
    text = trimRepeatedLines(text, normalizeLineBreaks(context.suffix));
    // The document already ends the cursor's line: trailing blank lines would only push the code below down.
    if (suffixLine.trim() === '') text = text.trimEnd();
  }
  text = trimRepeatedLineSuffix(text, suffixLine);
  return text.trim() === '' ? '' : text;
}

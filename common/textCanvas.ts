/**
 * The canvas of an inline completion: the code around the cursor, cut to a byte budget on line boundaries,
 * with `length` masks at the cursor. Whether the fill may span lines is decided by what is right of the
 * cursor: in the middle of a line only that line is completed. The engine then fits the canvas to the model's
 * token limit (`fitToModel`), so the byte budget only bounds what is sent.
 */
import { holeAllowsMultiline } from '../common/holeShape';
import { tailCut } from './lineAnchors';

export interface TextCanvasOptions {
  /** Budget of prefix + suffix in UTF-8 bytes. */
  contextBytes: number;
  /** Masks when the fill may span several lines. */
  fillLength: number;
  /** Masks in the middle of a line. */
  lineFillLength: number;
}

export interface TextCanvas {
  prefix: string;
  suffix: string;
  length: number;
  multiline: boolean;
}

const utf8Length = (text: string) => Buffer.byteLength(text, 'utf8');

/**
 * The longest tail of `text` within `budget` bytes that starts at an anchor line (so it keeps its first line
 * while the user types: lineAnchors.ts), else at any line start, or, when even the line touching
 * the cursor is longer than the budget, the tail of that line.
 */
function prefixWithin(text: string, budget: number): string {
  if (utf8Length(text) <= budget) return text;
  const start = tailCut(text, (offset) => utf8Length(text.slice(offset)) <= budget);
  return start !== undefined ? text.slice(start) : tailWithin(text, budget);
}

/** The longest head of `text` within `budget` bytes that ends at a line end (or a cut of the first line). */
function suffixWithin(text: string, budget: number): string {
  if (utf8Length(text) <= budget) return text;
  let end = 0;
  for (;;) {
    const newline = text.indexOf('\n', end);
    const lineEnd = newline === -1 ? text.length : newline + 1;
    if (lineEnd <= end || utf8Length(text.slice(0, lineEnd)) > budget) break;
    end = lineEnd;
  }
  if (end > 0) return text.slice(0, end);
  return headWithin(text, budget);
}

function tailWithin(text: string, budget: number): string {
  let start = text.length;
  let bytes = 0;
  while (start > 0) {
    const width = start >= 2 && isLowSurrogate(text.charCodeAt(start - 1)) && isHighSurrogate(text.charCodeAt(start - 2)) ? 2 : 1;
    const size = utf8Length(text.slice(start - width, start));
    if (bytes + size > budget) break;
    bytes += size;
    start -= width;
  }
  return text.slice(start);
}

function headWithin(text: string, budget: number): string {
  let end = 0;
  let bytes = 0;
  while (end < text.length) {
    const width = isHighSurrogate(text.charCodeAt(end)) && isLowSurrogate(text.charCodeAt(end + 1)) ? 2 : 1;
    const size = utf8Length(text.slice(end, end + width));
    if (bytes + size > budget) break;
    bytes += size;
    end += width;
  }
  return text.slice(0, end);
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/**
 * The code either side of a hole within `budget` bytes: split 3:1 between before and after (the code before
 * predicts more), either side's unused share going to the other.
 */
export function contextAround(before: string, after: string, budget: number): { prefix: string; suffix: string } {
  const suffixBytes = Math.min(utf8Length(after), Math.floor(Math.max(0, budget) / 4));
  const prefix = prefixWithin(before, Math.max(0, budget - suffixBytes));
  const suffix = suffixWithin(after, Math.max(0, budget - utf8Length(prefix)));
  return { prefix, suffix };
}

/** The canvas of an inline completion at the cursor, `before` and `after` being the code either side of it. */
export function buildTextCanvas(before: string, after: string, options: TextCanvasOptions): TextCanvas {
  const multiline = holeAllowsMultiline(after);
  const length = multiline ? options.fillLength : options.lineFillLength;
  const { prefix, suffix } = contextAround(before, after, options.contextBytes);
  return { prefix, suffix, length, multiline };
}

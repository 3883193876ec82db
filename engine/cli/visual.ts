/**
 * `dlm infill --visual`: the canvas redrawn in the terminal at every denoising step (after
 * llama-diffusion-cli's visual mode): the context dim, still-masked tokens as MASK_GLYPH, committed tokens
 * coloured by the confidence they were committed with, and a status line with step, progress and speed.
 * When the output is not a terminal it prints one plain line per step instead.
 */
import { MASK_GLYPH, progressText } from '../../common/protocol';
import type { InfillProgress } from '../service/engine';

const ESC = '\x1b[';
const RESET = `${ESC}0m`;
const DIM = `${ESC}2m`;
const MASK_STYLE = `${ESC}90m`;
const CLEAR_SCREEN = `${ESC}H${ESC}2J`;
const HIDE_CURSOR = `${ESC}?25l`;
const SHOW_CURSOR = `${ESC}?25h`;

/**
 * Control characters a model writes (an escape would restyle or move the cursor) drawn as their Unicode
 * control pictures; newlines and tabs stay.
 */
function printable(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => String.fromCharCode(c === '\x7f' ? 0x2421 : 0x2400 + c.charCodeAt(0)));
}

/** Green when sure, through yellow, to red when the model hardly preferred the token. */
function confidenceStyle(confidence: number | null): string {
  if (confidence === null) return '';
  if (confidence >= 0.9) return `${ESC}32m`;
  if (confidence >= 0.6) return `${ESC}36m`;
  if (confidence >= 0.3) return `${ESC}33m`;
  return `${ESC}31m`;
}

export interface CanvasContext {
  prefix: string;
  suffix: string;
}

export interface ProgressView {
  update(progress: InfillProgress): void;
  /** Called once the fill is done (or failed); leaves the terminal as it found it. */
  close(): void;
}

export function createProgressView(
  stream: NodeJS.WriteStream,
  context: CanvasContext,
  fallback: NodeJS.WritableStream,
): ProgressView {
  return stream.isTTY ? new TerminalCanvas(stream, context) : new ProgressLines(fallback);
}

class TerminalCanvas implements ProgressView {
  private readonly started = performance.now();
  private cursorHidden = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly context: CanvasContext,
  ) {}

  update(progress: InfillProgress): void {
    if (!this.cursorHidden) {
      this.out.write(HIDE_CURSOR);
      this.cursorHidden = true;
    }
    this.out.write(CLEAR_SCREEN + this.frame(progress));
  }

  close(): void {
    if (this.cursorHidden) this.out.write(SHOW_CURSOR);
    this.cursorHidden = false;
  }

  private frame(progress: InfillProgress): string {
    const fill = progress.pieces
      .map((piece, i) =>
        piece === null
          ? `${MASK_STYLE}${MASK_GLYPH}${RESET}`
          : `${confidenceStyle(progress.confidence[i])}${printable(piece)}${RESET}`,
      )
      .join('');
    // Show as much context as fits around the fill, favouring the lines next to it.
    const rows = this.out.rows || 24;
    const columns = this.out.columns || 80;
    const fillRows = visualRows(progressText(progress.pieces), columns);
    const budget = Math.max(2, rows - fillRows - 3);
    const prefixLines = this.context.prefix.split('\n');
    const suffixLines = this.context.suffix.split('\n');
    const suffixShown = suffixLines.slice(0, Math.max(1, Math.min(suffixLines.length, Math.floor(budget / 2))));
    const prefixShown = tail(prefixLines, Math.max(1, budget - suffixShown.length));
    const committed = progress.pieces.filter((p) => p !== null).length;
    const seconds = (performance.now() - this.started) / 1000;
    const status =
      `step ${progress.step}/${progress.totalSteps} | ${committed}/${progress.pieces.length} tokens | ` +
      `${(committed / Math.max(seconds, 1e-3)).toFixed(1)} tokens/s | ${seconds.toFixed(1)} s`;
    return `${DIM}${prefixShown.join('\n')}${RESET}${fill}${DIM}${suffixShown.join('\n')}${RESET}\n\n${ESC}1m${status}${RESET}\n`;
  }
}

function tail(lines: string[], count: number): string[] {
  return count >= lines.length ? lines : lines.slice(lines.length - count);
}

/** Terminal rows `text` takes at this width (a rough count: one column per character). */
function visualRows(text: string, columns: number): number {
  return text.split('\n').reduce((rows, line) => rows + Math.max(1, Math.ceil([...line].length / columns)), 0);
}

class ProgressLines implements ProgressView {
  constructor(private readonly out: NodeJS.WritableStream) {}

  update(progress: InfillProgress): void {
    const committed = progress.pieces.filter((p) => p !== null).length;
    this.out.write(
      `step ${progress.step}/${progress.totalSteps} (${committed}/${progress.pieces.length} tokens): ${JSON.stringify(progressText(progress.pieces))}\n`,
    );
  }

  close(): void {}
}

/**
 * An infill's text as the token ids either side of the masks: tokenized with the model's tokenizer, framed as
 * the model expects (a leading BOS, from its manifest), and with `fitToModel` first cut by whole lines to fit
 * the model's canvas (contextFit.ts). The engine runs this off its main thread (engine/service/textWorker.ts):
 * a megabyte of text takes seconds to tokenize.
 */
import type { SpecialTokens } from '../architecture/architecture';
import { fitContext } from './contextFit';
import { canvasPrefix } from './prompting';
import type { Tokenizer } from './tokenizer';

export interface CanvasText {
  prefix: string;
  suffix: string;
  /** The fill's length in tokens (what the fit leaves room for). */
  length: number;
  fitToModel?: boolean;
}

export interface CanvasIds {
  prefixIds: number[];
  suffixIds: number[];
}

export function canvasTokenIds(tokenizer: Tokenizer, tokens: SpecialTokens, maxCanvasTokens: number, text: CanvasText): CanvasIds {
  let { prefix, suffix } = text;
  if (text.fitToModel && Number.isInteger(text.length) && text.length >= 1) {
    const framing = canvasPrefix(tokens, []).length;
    ({ prefix, suffix } = fitContext(prefix, suffix, maxCanvasTokens - text.length - framing, tokenizer));
  }
  return { prefixIds: canvasPrefix(tokens, tokenizer.encode(prefix)), suffixIds: tokenizer.encode(suffix) };
}

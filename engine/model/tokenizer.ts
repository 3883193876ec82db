/**
 * The model folder's Hugging Face `tokenizer.json`, wrapped for the engine: exact encode/decode of code, and
 * per-token text for progress while part of the fill is still masked.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { readJsonFile } from './jsonFile';

/** What a decoder emits for bytes that are not (yet) a whole UTF-8 character. */
const REPLACEMENT_CHARACTER = '\uFFFD';

export class Tokenizer {
  private constructor(private readonly hf: HfTokenizer) {}

  /**
   * Loads `tokenizer.json`; a `tokenizer_config.json` beside it, when present, supplies the options
   * tokenizers.js reads from it (e.g. `remove_space`).
   */
  static load(file: string): Tokenizer {
    const json = readJsonFile(file, 'tokenizer') as object;
    const configFile = path.join(path.dirname(file), 'tokenizer_config.json');
    const config = existsSync(configFile) ? (readJsonFile(configFile, 'tokenizer config') as object) : {};
    try {
      return new Tokenizer(new HfTokenizer(json, config));
    } catch (error) {
      throw new Error(`Cannot build the tokenizer from ${file}: ${(error as Error).message}`);
    }
  }

  /** Ids of `text` with no special tokens added; special tokens written in the text are single ids. */
  encode(text: string): number[] {
    if (text.length === 0) return [];
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  /** Exact inverse of `encode` for text the tokenizer can represent (no clean-up of spaces: this is code). */
  decode(ids: readonly number[]): string {
    if (ids.length === 0) return '';
    return this.hf.decode(ids as number[], { clean_up_tokenization_spaces: false });
  }

  /** The id of a token string (e.g. a special token), or undefined when the vocabulary lacks it. */
  tokenId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /**
   * One entry per id: the text that token adds, or null where the id is `maskId`. Each run of committed
   * tokens is decoded as a whole and its text attributed token by token, so the pieces of a run concatenate
   * to the run's decoded text and a character split over several tokens is given to the token that
   * completes it (the earlier ones get ''). Bytes of a character cut by a mask (the end of a run a mask
   * follows, the start of a run a mask precedes) are not shown until the mask is filled.
   */
  pieces(ids: ArrayLike<number>, maskId: number): (string | null)[] {
    const out: (string | null)[] = new Array(ids.length).fill(null);
    let i = 0;
    while (i < ids.length) {
      if (ids[i] === maskId) {
        i++;
        continue;
      }
      let end = i;
      while (end < ids.length && ids[end] !== maskId) end++;
      const run = Array.from({ length: end - i }, (_, k) => ids[i + k]);
      this.attributeRun(run, i, i > 0, end < ids.length, out);
      i = end;
    }
    return out;
  }

  /**
   * Incremental detokenisation of one run (the prefix/read offsets of Hugging Face's text streamers): the
   * text of token k is decode(window + k) minus decode(window), where the window is the last emitted token
   * or two, so decoders that depend on context (leading spaces) see it; emission waits while the text ends
   * in an incomplete character.
   */
  private attributeRun(
    run: number[],
    offset: number,
    maskPrecedes: boolean,
    maskFollows: boolean,
    out: (string | null)[],
  ): void {
    let prefixStart = 0;
    let readStart = 0;
    // Continuation bytes whose lead byte is still masked decode to replacement characters: not text yet.
    let dropLeadingOrphans = maskPrecedes;
    const emit = (k: number, text: string) => {
      if (dropLeadingOrphans) {
        text = text.replace(/^\uFFFD+/u, '');
        dropLeadingOrphans = text.length === 0;
      }
      out[offset + k] = text;
    };
    for (let k = 0; k < run.length; k++) {
      const prefixText = this.decode(run.slice(prefixStart, readStart));
      const text = this.decode(run.slice(prefixStart, k + 1));
      const complete = !text.endsWith(REPLACEMENT_CHARACTER) && text.startsWith(prefixText);
      if (complete && text.length > prefixText.length) {
        emit(k, text.slice(prefixText.length));
        prefixStart = readStart;
        readStart = k + 1;
      } else {
        out[offset + k] = '';
      }
    }
    if (readStart < run.length) {
      // Text held back at the end of the run.
      const prefixText = this.decode(run.slice(prefixStart, readStart));
      const text = this.decode(run.slice(prefixStart));
      const rest = text.startsWith(prefixText) ? text.slice(prefixText.length) : text;
      emit(run.length - 1, maskFollows ? rest.replace(/\uFFFD+$/u, '') : rest);
    }
  }
}

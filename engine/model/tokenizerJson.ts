/**
 * The Hugging Face `tokenizer.json` of a byte-level BPE tokenizer, as the engine writes it for the models it
 * makes (synthetic models; checkpoints that ship only a slow tokenizer). One skeleton, so every tokenizer the
 * project writes is loaded by `@huggingface/tokenizers` the same way.
 */

export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** An added special token with the defaults `tokenizers` gives one. */
export function specialToken(id: number, content: string): AddedToken {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

export interface ByteLevelBpe {
  vocab: Record<string, number>;
  /** `"left right"` pairs, highest priority first. */
  merges: string[];
  addedTokens: AddedToken[];
  /** The text split before byte-level mapping: GPT-2's built-in regex, or a model's own (Qwen2's). */
  split: { gpt2: true } | { regex: string };
  /** Unicode normalisation applied first (Qwen2: NFC). */
  nfc: boolean;
}

export function byteLevelBpeTokenizerJson({ vocab, merges, addedTokens, split, nfc }: ByteLevelBpe) {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: 'gpt2' in split };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: nfc ? { type: 'NFC' } : null,
    pre_tokenizer:
      'gpt2' in split
        ? byteLevel
        : {
            type: 'Sequence',
            pretokenizers: [{ type: 'Split', pattern: { Regex: split.regex }, behavior: 'Isolated', invert: false }, byteLevel],
          },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

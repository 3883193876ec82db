/**
 * The special tokens of a checkpoint, read from its own files, never hard-coded: the mask id from
 * `config.json` (`mask_token_id`) or else the tokenizer's mask token; end-of-fill tokens from config and
 * generation_config eos ids plus the family's end tokens that the tokenizer has; pad from the config; bos
 * only when the tokenizer itself adds it before a text (see prompting.ts).
 */
import type { SpecialTokens } from '../architecture/architecture';
import { MASK_TOKEN_CONTENTS, endTokenContents } from '../model/prompting';
import type { CheckpointFamilyId } from '../architecture/architecture';
import { ConversionError, type HfConfig } from './families';
import { leadingSpecialTokens, tokenId, type TokenizerJson } from './tokenizerFiles';

function ids(value: unknown): number[] {
  if (Number.isInteger(value)) return [value as number];
  if (Array.isArray(value)) return value.filter((v) => Number.isInteger(v)) as number[];
  return [];
}

/** `tokenizer_config.json`/`special_tokens_map.json` give tokens as a string or `{content}`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

export interface TokenSources {
  family: CheckpointFamilyId;
  config: HfConfig;
  generationConfig?: HfConfig;
  tokenizerConfig?: HfConfig;
  specialTokensMap?: HfConfig;
  tokenizer: TokenizerJson;
  vocabSize: number;
}

export function findSpecialTokens(s: TokenSources): SpecialTokens {
  const inVocab = (id: number) => id >= 0 && id < s.vocabSize;
  const mask = findMask(s);
  if (!inVocab(mask)) throw new ConversionError(`mask token id ${mask} is outside the vocabulary (${s.vocabSize} rows)`);

  const eos: number[] = [];
  const addEos = (id: number | undefined) => {
    if (id !== undefined && inVocab(id) && id !== mask && !eos.includes(id)) eos.push(id);
  };
  for (const id of [...ids(s.config.eos_token_id), ...ids(s.generationConfig?.eos_token_id)]) addEos(id);
  for (const content of endTokenContents(s.family)) addEos(tokenId(s.tokenizer, content));
  if (eos.length === 0) {
    throw new ConversionError('no end-of-text token: config.json has no eos_token_id and the tokenizer has none of ' +
      `${endTokenContents(s.family).join(', ')}; add "eos_token_id" to config.json`);
  }
  const padIds = [...ids(s.config.pad_token_id), ...ids(s.generationConfig?.pad_token_id)].filter(inVocab);
  const leading = leadingSpecialTokens(s.tokenizer).filter(inVocab);
  return { mask, eos, pad: padIds[0] ?? null, bos: leading[0] ?? null };
}

function findMask(s: TokenSources): number {
  const fromConfig = ids(s.config.mask_token_id)[0] ?? ids(s.generationConfig?.mask_token_id)[0];
  if (fromConfig !== undefined) return fromConfig;
  const named = [tokenContent(s.tokenizerConfig?.mask_token), tokenContent(s.specialTokensMap?.mask_token)];
  for (const content of [...named, ...MASK_TOKEN_CONTENTS]) {
    if (content === undefined) continue;
    const id = tokenId(s.tokenizer, content);
    if (id !== undefined) return id;
  }
  throw new ConversionError(
    'no mask token: config.json has no "mask_token_id" and the tokenizer has no mask token ' +
      `(looked for ${MASK_TOKEN_CONTENTS.join(', ')}). Is this a diffusion model? If it is, add ` +
      '"mask_token_id": <id> to config.json',
  );
}

/**
 * The checkpoint's tokenizer as one Hugging Face `tokenizer.json`, plus lookups the converter needs
 * (token ids by content, the special tokens the tokenizer itself adds around a text).
 *
 * Most checkpoints ship `tokenizer.json`. Dream, Dream-Coder and DiffuCoder ship a slow tokenizer
 * (`DreamTokenizer`, a copy of `Qwen2Tokenizer`: `vocab.json` + `merges.txt` + added tokens in
 * `tokenizer_config.json`); for those the file is built exactly as transformers' Qwen2 fast-tokenizer
 * conversion builds it (NFC, the Qwen2 pre-tokenization regex, byte-level BPE).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { byteLevelBpeTokenizerJson, specialToken, type AddedToken } from '../model/tokenizerJson';
import { ConversionError } from './families';

export interface TokenizerJson {
  added_tokens?: AddedToken[];
  model?: { type?: string; vocab?: Record<string, number> | [string, number][]; [key: string]: unknown };
  post_processor?: PostProcessor | null;
  [key: string]: unknown;
}

type TemplatePiece = { SpecialToken?: { id: string }; Sequence?: { id: string } };
interface PostProcessor {
  type: string;
  single?: TemplatePiece[];
  special_tokens?: Record<string, { id: string; ids: number[] }>;
  processors?: PostProcessor[];
}

export interface CheckpointTokenizer {
  json: TokenizerJson;
  /** Serialized `tokenizer.json` for the model folder. */
  text: string;
  /** Where it came from, for messages. */
  origin: 'tokenizer.json' | 'vocab.json + merges.txt';
}

/** Pre-tokenization of Qwen2Tokenizer (transformers `tokenization_qwen2.PRETOKENIZE_REGEX`). */
const QWEN2_PRETOKENIZE_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Slow tokenizer classes that are Qwen2's byte-level BPE under another name. */
const QWEN2_STYLE_CLASSES = ['Qwen2Tokenizer', 'Qwen2TokenizerFast', 'DreamTokenizer'];

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConversionError(`${file} is not valid JSON (${(error as Error).message})`);
  }
}

function readJsonIfPresent(file: string): Record<string, unknown> | undefined {
  return fs.existsSync(file) ? (readJson(file) as Record<string, unknown>) : undefined;
}

export function loadCheckpointTokenizer(dir: string): CheckpointTokenizer {
  const file = path.join(dir, 'tokenizer.json');
  if (fs.existsSync(file)) {
    const text = fs.readFileSync(file, 'utf8');
    let json: TokenizerJson;
    try {
      json = JSON.parse(text) as TokenizerJson;
    } catch (error) {
      throw new ConversionError(`${file} is not valid JSON (${(error as Error).message})`);
    }
    if (!json.model) throw new ConversionError(`${file} has no "model"; it is not a Hugging Face tokenizer.json`);
    return { json, text, origin: 'tokenizer.json' };
  }
  const vocabFile = path.join(dir, 'vocab.json');
  const mergesFile = path.join(dir, 'merges.txt');
  if (!fs.existsSync(vocabFile) || !fs.existsSync(mergesFile)) {
    throw new ConversionError(
      `${dir} has no tokenizer.json (nor vocab.json + merges.txt to build one from); copy the model's ` +
        'tokenizer.json from its Hugging Face repository into the folder',
    );
  }
  const config = readJsonIfPresent(path.join(dir, 'tokenizer_config.json')) ?? {};
  const tokenizerClass = String(config.tokenizer_class ?? '');
  const autoMap = JSON.stringify(config.auto_map ?? '');
  if (!QWEN2_STYLE_CLASSES.includes(tokenizerClass) && !/tokenization_dream/.test(autoMap)) {
    throw new ConversionError(
      `${dir} has no tokenizer.json, and its tokenizer_class "${tokenizerClass || 'unknown'}" is not one the converter ` +
        `can rebuild from vocab.json + merges.txt (${QWEN2_STYLE_CLASSES.join(', ')}); add the model's tokenizer.json`,
    );
  }
  const json = qwen2TokenizerJson(
    readJson(vocabFile) as Record<string, number>,
    fs.readFileSync(mergesFile, 'utf8'),
    addedTokens(config, readJsonIfPresent(path.join(dir, 'added_tokens.json'))),
  );
  return { json, text: JSON.stringify(json), origin: 'vocab.json + merges.txt' };
}

/** Added tokens of a slow tokenizer: `tokenizer_config.json` `added_tokens_decoder`, then `added_tokens.json`. */
function addedTokens(config: Record<string, unknown>, addedTokensJson: Record<string, unknown> | undefined): AddedToken[] {
  const byId = new Map<number, AddedToken>();
  const decoder = (config.added_tokens_decoder ?? {}) as Record<string, Partial<AddedToken> & { content?: string }>;
  for (const [id, t] of Object.entries(decoder)) {
    if (typeof t.content !== 'string') continue;
    byId.set(Number(id), {
      id: Number(id),
      content: t.content,
      single_word: t.single_word ?? false,
      lstrip: t.lstrip ?? false,
      rstrip: t.rstrip ?? false,
      normalized: t.normalized ?? false,
      special: t.special ?? true,
    });
  }
  for (const [content, id] of Object.entries(addedTokensJson ?? {})) {
    if (typeof id === 'number' && !byId.has(id)) {
      byId.set(id, specialToken(id, content));
    }
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/** The `tokenizer.json` transformers' Qwen2 converter would write for these files. */
export function qwen2TokenizerJson(vocab: Record<string, number>, mergesText: string, added: AddedToken[]): TokenizerJson {
  const merges = mergesText
    .split('\n')
    .filter((line, i) => line.trim() !== '' && !(i === 0 && line.startsWith('#version')));
  return byteLevelBpeTokenizerJson({ vocab, merges, addedTokens: added, split: { regex: QWEN2_PRETOKENIZE_REGEX }, nfc: true });
}

/** The id of a token by its exact content: added tokens first, then the model vocabulary. */
export function tokenId(tokenizer: TokenizerJson, content: string): number | undefined {
  const added = tokenizer.added_tokens?.find((t) => t.content === content);
  if (added) return added.id;
  const vocab = tokenizer.model?.vocab;
  if (!vocab) return undefined;
  if (Array.isArray(vocab)) {
    const index = vocab.findIndex(([piece]) => piece === content);
    return index >= 0 ? index : undefined;
  }
  return vocab[content];
}

/**
 * The special tokens the tokenizer puts before a text when asked to add special tokens (its
 * TemplateProcessing `single` template), e.g. LLaDA's BOS; empty for Qwen2-style tokenizers.
 */
export function leadingSpecialTokens(tokenizer: TokenizerJson): number[] {
  const find = (p: PostProcessor | null | undefined): PostProcessor | undefined => {
    if (!p) return undefined;
    if (p.type === 'TemplateProcessing') return p;
    if (p.type === 'Sequence') return p.processors?.map(find).find((x) => x !== undefined);
    return undefined;
  };
  const template = find(tokenizer.post_processor);
  if (!template?.single) return [];
  const ids: number[] = [];
  for (const piece of template.single) {
    if (piece.Sequence) break;
    const name = piece.SpecialToken?.id;
    if (name !== undefined) ids.push(...(template.special_tokens?.[name]?.ids ?? []));
  }
  return ids;
}

/**
 * What each model expects around an infill, as data: the canvas, the tokens that end a fill early, and the
 * decoding defaults from the model's own generation code. The converter stores the outcome in the manifest
 * (`tokens`, `decoding`), so the engine needs no per-model code at run time.
 *
 * Canvas: `[bos?] prefix [MASK × n] suffix`. `tokens.bos` is set only when the model's tokenizer itself puts
 * a token before every text (its `add_special_tokens` template, as the models' infill and chat code encode
 * the prompt); Qwen2-style tokenizers (Dream, Dream-Coder, DiffuCoder, Open-dCoder, CoDA) add none, so their
 * `bos` is null even where `config.json` names a bos_token_id. Nothing follows the suffix (Open-dCoder's
 * infill evaluation encodes the suffix without special tokens).
 */
import type { CheckpointFamilyId } from '../../common/modelFamilies';
import type { DecodingOptions } from '../../common/decodingOptions';
import type { ModelArchitecture, SpecialTokens } from '../architecture/architecture';

/** The tokens that end a fill, per family: shared with the server prompts (common/modelFamilies.ts). */
export { endTokenContents } from '../../common/modelFamilies';

/** Contents that mark a mask token, for tokenizers whose config.json does not give its id. */
export const MASK_TOKEN_CONTENTS = ['<|mask|>', '<|mdm_mask|>', '<M>', '<mask>', '[MASK]'];

/** `blockLength` of pure-diffusion models: one block spanning the whole fill (the canvas bounds any fill). */
const WHOLE_FILL = 'whole-fill';
type Defaults = Omit<Partial<DecodingOptions>, 'blockLength'> & { blockLength?: number | typeof WHOLE_FILL };

interface ModelDefaults {
  /** Matched against the Hugging Face id, the folder name or config `_name_or_path`. */
  pattern: RegExp;
  defaults: Defaults;
}

/**
 * From each model's README / generation code on Hugging Face. `steps` above the fill length
 * is lowered to it by the denoiser, so `steps = max_new_tokens` of the README means one token per step.
 * top_p has no equivalent in the engine's options and is left out.
 */
const FAMILY_DEFAULTS: Record<CheckpointFamilyId, Defaults> = {
  // Dream README: steps = max_new_tokens = 512, alg "entropy", temperature 0.2.
  dream: { schedule: 'timesteps', blockLength: WHOLE_FILL, steps: 512, algorithm: 'entropy', temperature: 0.2 },
  // Open-dCoder infill evaluation: steps 64, temperature 0.6 (its "p2" algorithm has no equivalent; MDMGenerationConfig's default alg is entropy).
  qwen2: { schedule: 'timesteps', blockLength: WHOLE_FILL, steps: 64, algorithm: 'entropy', temperature: 0.6 },
  // CoDA serving defaults: steps 128, block 32, alg entropy, temperature 0.
  coda: { schedule: 'blocks', blockLength: 32, steps: 128, algorithm: 'entropy', temperature: 0 },
  // LLaDA generate(): steps = gen_length = 128, low_confidence remasking, temperature 0; chat.py block_length 32.
  llada: { schedule: 'blocks', blockLength: 32, steps: 128, algorithm: 'confidence', temperature: 0 },
};

const MODEL_DEFAULTS: ModelDefaults[] = [
  // Dream-Coder README: max_new_tokens = steps = 768, temperature 0.1, alg entropy.
  { pattern: /dream-?coder/i, defaults: { steps: 768, temperature: 0.1 } },
  // DiffuCoder README: Base steps 256, temperature 0.2; Instruct and cpGRPO temperature 0.4.
  { pattern: /diffucoder.*(instruct|cpgrpo)/i, defaults: { steps: 256, temperature: 0.4 } },
  { pattern: /diffucoder/i, defaults: { steps: 256, temperature: 0.2 } },
];

/** The decoding defaults to store in a converted model's manifest. */
export function decodingDefaults(family: CheckpointFamilyId, names: string[], arch: ModelArchitecture): Partial<DecodingOptions> {
  const specific = MODEL_DEFAULTS.find((m) => names.some((n) => m.pattern.test(n)));
  const merged: Defaults = { ...FAMILY_DEFAULTS[family], ...specific?.defaults };
  const { blockLength, ...rest } = merged;
  return { ...rest, ...(blockLength === undefined ? {} : { blockLength: blockLength === WHOLE_FILL ? arch.maxPositions : blockLength }) };
}

/**
 * The token ids before the fill: the model's leading token (if its tokenizer adds one) and the prefix. The
 * canvas is then `canvasPrefix(...) [MASK × n] suffix`.
 */
export function canvasPrefix(tokens: SpecialTokens, prefixIds: readonly number[]): number[] {
  return tokens.bos === null ? [...prefixIds] : [tokens.bos, ...prefixIds];
}

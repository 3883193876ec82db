/**
 * What the engine's converter and the server prompts (common/teamServer/infillPrompts.ts) both know about the checkpoint
 * families the local engine runs: their ids and the tokens that end a model's answer. One list, so a family's end
 * of text means the same whether the fill is denoised locally or asked of a server.
 *
 * - `dream`: Dream, Dream-Coder, DiffuCoder (model_type "Dream").
 * - `qwen2`: Open-dCoder and other Qwen2 masked-diffusion models.
 * - `coda`: Salesforce CoDA.
 * - `llada`: LLaDA, LLaDA 1.5.
 */
export type CheckpointFamilyId = 'dream' | 'qwen2' | 'coda' | 'llada';

/**
 * Tokens that end a fill when the model writes them (besides config/generation_config eos ids), where the
 * tokenizer has them: `<|dlm_pad|>` is what DiffuCoder-Instruct pads with after its answer, `<|im_end|>` ends an
 * instruct turn, `<|eot_id|>` is LLaDA's end of turn (its generate() suppresses it with EOS).
 */
const END_TOKEN_CONTENTS: Record<CheckpointFamilyId, readonly string[]> = {
  dream: ['<|endoftext|>', '<|im_end|>', '<|dlm_pad|>'],
  qwen2: ['<|endoftext|>', '<|im_end|>'],
  coda: ['<|endoftext|>', '<|im_end|>'],
  llada: ['<|endoftext|>', '<|eot_id|>'],
};

export function endTokenContents(family: CheckpointFamilyId): readonly string[] {
  return END_TOKEN_CONTENTS[family];
}

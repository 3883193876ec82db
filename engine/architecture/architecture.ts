/**
 * What a model *is*, independent of where its weights come from: the geometry the step graph is built
 * for, and the canonical names of its weights. Every producer of weights (the Hugging Face converter, the
 * synthetic random models, the built-in model) maps onto these names; every consumer (the graph builder,
 * the reference forward) reads only these names.
 */

/** `dream` covers Dream, Dream-Coder, DiffuCoder and Open-dCoder (Qwen2 layout); `llada` is LLaDA's layout. */
export type ModelFamily = 'dream' | 'llada';

export interface ModelArchitecture {
  family: ModelFamily;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** Equal to numHeads when the model has no grouped-query attention (LLaDA). */
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  ropeTheta: number;
  rmsNormEps: number;
  /** Largest canvas (prefix + fill + suffix) the model accepts; sizes the RoPE tables. */
  maxPositions: number;
  /** The LM head reuses the embedding table (no `lm_head.weight`). */
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2/Dream). */
  qkvBias: boolean;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3-style). */
  qkNorm: boolean;
  /** Dream family: the prediction for canvas position p is read from row p-1. */
  logitShift: boolean;
}

export interface SpecialTokens {
  mask: number;
  /** Tokens that end a fill early; everything from the first one on is trimmed. */
  eos: number[];
  pad: number | null;
  bos: number | null;
}

/**
 * Canonical weight names: Hugging Face's Qwen2 names. Linear weights are `[out_features, in_features]`,
 * as `nn.Linear` stores them.
 */
export const WeightNames = {
  embedTokens: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  layer(l: number) {
    const p = `model.layers.${l}`;
    return {
      inputNorm: `${p}.input_layernorm.weight`,
      qProj: `${p}.self_attn.q_proj.weight`,
      qBias: `${p}.self_attn.q_proj.bias`,
      kProj: `${p}.self_attn.k_proj.weight`,
      kBias: `${p}.self_attn.k_proj.bias`,
      vProj: `${p}.self_attn.v_proj.weight`,
      vBias: `${p}.self_attn.v_proj.bias`,
      qNorm: `${p}.self_attn.q_norm.weight`,
      kNorm: `${p}.self_attn.k_norm.weight`,
      oProj: `${p}.self_attn.o_proj.weight`,
      postAttentionNorm: `${p}.post_attention_layernorm.weight`,
      gateProj: `${p}.mlp.gate_proj.weight`,
      upProj: `${p}.mlp.up_proj.weight`,
      downProj: `${p}.mlp.down_proj.weight`,
    };
  },
} as const;

/** Every canonical weight an architecture needs, with its shape. */
export function expectedWeights(arch: ModelArchitecture): Map<string, number[]> {
  const { hiddenSize: h, numHeads, numKvHeads, headDim: d, intermediateSize: m, vocabSize: v } = arch;
  const shapes = new Map<string, number[]>();
  shapes.set(WeightNames.embedTokens, [v, h]);
  for (let l = 0; l < arch.numLayers; l++) {
    const w = WeightNames.layer(l);
    shapes.set(w.inputNorm, [h]);
    shapes.set(w.qProj, [numHeads * d, h]);
    shapes.set(w.kProj, [numKvHeads * d, h]);
    shapes.set(w.vProj, [numKvHeads * d, h]);
    if (arch.qkvBias) {
      shapes.set(w.qBias, [numHeads * d]);
      shapes.set(w.kBias, [numKvHeads * d]);
      shapes.set(w.vBias, [numKvHeads * d]);
    }
    if (arch.qkNorm) {
      shapes.set(w.qNorm, [d]);
      shapes.set(w.kNorm, [d]);
    }
    shapes.set(w.oProj, [h, numHeads * d]);
    shapes.set(w.postAttentionNorm, [h]);
    shapes.set(w.gateProj, [m, h]);
    shapes.set(w.upProj, [m, h]);
    shapes.set(w.downProj, [h, m]);
  }
  shapes.set(WeightNames.finalNorm, [h]);
  if (!arch.tieWordEmbeddings) shapes.set(WeightNames.lmHead, [v, h]);
  return shapes;
}

export function parameterCount(arch: ModelArchitecture): number {
  let n = 0;
  for (const shape of expectedWeights(arch).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/** The Hugging Face checkpoint family a model was converted from (engine/convert/families.ts maps each one). */
export type CheckpointFamilyId = 'dream' | 'qwen2' | 'coda' | 'llada';

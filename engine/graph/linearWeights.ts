/** A linear layer's weights as the graph builder takes them, whatever precision they are lowered to. */
export interface LinearWeights {
  /** Canonical weight name; initializers are named after it. */
  name: string;
  /** Hugging Face layout `[outFeatures, inFeatures]`. */
  weight: Float32Array;
  outFeatures: number;
  inFeatures: number;
  /** `[outFeatures]`, named `biasName`. */
  bias?: { name: string; values: Float32Array };
}

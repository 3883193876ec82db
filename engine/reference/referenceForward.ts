/**
 * An independent float64 forward pass of the step contract (stepContract.ts), straight from the model's
 * maths with plain loops: the yardstick the ONNX graphs are tested against. Tiny models only.
 *
 *   x = E[input_ids]
 *   per layer:  h = rms(x)·γ;  q,k,v = W h (+b);  [q,k per-head rms]·;  q,k = RoPE(q,k; position)
 *               a_h = Σ_j softmax_j(q_h·k_j/√D + bias_j) v_j over [past rows ⊕ this call's rows]
 *               x += W_o a;  x += W_down(silu(W_gate rms(x)γ') ⊙ W_up rms(x)γ')
 *   logits[r] = W_lm rms(x[logits_index[r]])·γ_f
 *
 * RoPE (rotate_half): for i < D/2, angle = position·θ^(-2i/D),
 *   y_i = x_i cos − x_{i+D/2} sin,  y_{i+D/2} = x_{i+D/2} cos + x_i sin.
 */
import { WeightNames, type ModelArchitecture } from '../architecture/architecture';

export interface ReferenceInputs {
  inputIds: number[];
  positionIds: number[];
  /** [Q][C+Q] additive bias; -Infinity (or any huge negative) hides a key. */
  bias: number[][];
  logitsIndex: number[];
  /** Per layer, [Hkv][C][D] flattened. */
  pastKeys: ArrayLike<number>[];
  pastValues: ArrayLike<number>[];
  contextLength: number;
}

export interface ReferenceOutputs {
  /** [R][V] */
  logits: Float64Array[];
  /** Per layer, [Hkv][Q][D] flattened (keys after RoPE). */
  newKeys: Float64Array[];
  newValues: Float64Array[];
}

type Weights = Map<string, Float32Array>;

function weight(weights: Weights, name: string): Float32Array {
  const w = weights.get(name);
  if (!w) throw new Error(`reference forward: missing weight ${name}`);
  return w;
}

function rmsNorm(x: Float64Array, gamma: Float32Array, eps: number): Float64Array {
  let sumSquares = 0;
  for (const v of x) sumSquares += v * v;
  const inv = 1 / Math.sqrt(sumSquares / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] * inv * gamma[i];
  return y;
}

/** y = W x (+ b) with W stored [out][in]. */
function matVec(w: Float32Array, x: Float64Array, out: number, bias?: Float32Array): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = bias ? bias[o] : 0;
    for (let i = 0; i < n; i++) s += w[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rotate(headVector: Float64Array, position: number, theta: number): Float64Array {
  const d = headVector.length;
  const half = d / 2;
  const y = new Float64Array(d);
  for (let i = 0; i < half; i++) {
    const angle = position * Math.pow(theta, (-2 * i) / d);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    y[i] = headVector[i] * c - headVector[i + half] * s;
    y[i + half] = headVector[i + half] * c + headVector[i] * s;
  }
  return y;
}

/** Applies per-head RMSNorm (optional) and RoPE to a [heads·D] vector. */
function headsRotated(v: Float64Array, heads: number, d: number, position: number, arch: ModelArchitecture, norm?: Float32Array): Float64Array[] {
  const out: Float64Array[] = [];
  for (let h = 0; h < heads; h++) {
    let head: Float64Array = v.slice(h * d, (h + 1) * d);
    if (norm) head = rmsNorm(head, norm, arch.rmsNormEps);
    out.push(rotate(head, position, arch.ropeTheta));
  }
  return out;
}

export function referenceForward(arch: ModelArchitecture, weights: Weights, inputs: ReferenceInputs): ReferenceOutputs {
  const { hiddenSize: hidden, numHeads, numKvHeads, headDim: d, vocabSize } = arch;
  const q = inputs.inputIds.length;
  const c = inputs.contextLength;
  const group = numHeads / numKvHeads;
  const embed = weight(weights, WeightNames.embedTokens);

  let x: Float64Array[] = inputs.inputIds.map((id) => Float64Array.from(embed.subarray(id * hidden, (id + 1) * hidden)));
  const newKeys: Float64Array[] = [];
  const newValues: Float64Array[] = [];

  for (let l = 0; l < arch.numLayers; l++) {
    const w = WeightNames.layer(l);
    const bias = (name: string) => (arch.qkvBias ? weight(weights, name) : undefined);
    const queries: Float64Array[][] = []; // [row][head] → D
    const keys: Float64Array[][] = []; // [row][kvHead] → D
    const values: Float64Array[][] = [];
    for (let row = 0; row < q; row++) {
      const h = rmsNorm(x[row], weight(weights, w.inputNorm), arch.rmsNormEps);
      const qv = matVec(weight(weights, w.qProj), h, numHeads * d, bias(w.qBias));
      const kv = matVec(weight(weights, w.kProj), h, numKvHeads * d, bias(w.kBias));
      const vv = matVec(weight(weights, w.vProj), h, numKvHeads * d, bias(w.vBias));
      const pos = inputs.positionIds[row];
      queries.push(headsRotated(qv, numHeads, d, pos, arch, arch.qkNorm ? weight(weights, w.qNorm) : undefined));
      keys.push(headsRotated(kv, numKvHeads, d, pos, arch, arch.qkNorm ? weight(weights, w.kNorm) : undefined));
      values.push(Array.from({ length: numKvHeads }, (_, kh) => vv.slice(kh * d, (kh + 1) * d)));
    }

    const layerKeys = new Float64Array(numKvHeads * q * d);
    const layerValues = new Float64Array(numKvHeads * q * d);
    for (let kh = 0; kh < numKvHeads; kh++) {
      for (let row = 0; row < q; row++) {
        layerKeys.set(keys[row][kh], (kh * q + row) * d);
        layerValues.set(values[row][kh], (kh * q + row) * d);
      }
    }
    newKeys.push(layerKeys);
    newValues.push(layerValues);

    // Key j < C is cached row j of past_*; key C + r is this call's row r.
    const pastK = inputs.pastKeys[l];
    const pastV = inputs.pastValues[l];
    const keyAt = (kh: number, j: number, i: number) => (j < c ? pastK[(kh * c + j) * d + i] : keys[j - c][kh][i]);
    const valueAt = (kh: number, j: number, i: number) => (j < c ? pastV[(kh * c + j) * d + i] : values[j - c][kh][i]);

    const next: Float64Array[] = [];
    for (let row = 0; row < q; row++) {
      const attended = new Float64Array(numHeads * d);
      for (let head = 0; head < numHeads; head++) {
        const kh = Math.floor(head / group);
        const scores = new Float64Array(c + q);
        let max = -Infinity;
        for (let j = 0; j < c + q; j++) {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += queries[row][head][i] * keyAt(kh, j, i);
          scores[j] = dot / Math.sqrt(d) + inputs.bias[row][j];
          max = Math.max(max, scores[j]);
        }
        let total = 0;
        for (let j = 0; j < c + q; j++) total += scores[j] = Math.exp(scores[j] - max);
        for (let j = 0; j < c + q; j++) {
          const p = scores[j] / total;
          for (let i = 0; i < d; i++) attended[head * d + i] += p * valueAt(kh, j, i);
        }
      }
      const afterAttention = x[row].slice();
      const o = matVec(weight(weights, w.oProj), attended, hidden);
      for (let i = 0; i < hidden; i++) afterAttention[i] += o[i];

      const h2 = rmsNorm(afterAttention, weight(weights, w.postAttentionNorm), arch.rmsNormEps);
      const gate = matVec(weight(weights, w.gateProj), h2, arch.intermediateSize);
      const up = matVec(weight(weights, w.upProj), h2, arch.intermediateSize);
      const product = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
      const down = matVec(weight(weights, w.downProj), product, hidden);
      for (let i = 0; i < hidden; i++) afterAttention[i] += down[i];
      next.push(afterAttention);
    }
    x = next;
  }

  const lmHead = weight(weights, arch.tieWordEmbeddings ? WeightNames.embedTokens : WeightNames.lmHead);
  const logits = inputs.logitsIndex.map((row) =>
    matVec(lmHead, rmsNorm(x[row], weight(weights, WeightNames.finalNorm), arch.rmsNormEps), vocabSize),
  );
  return { logits, newKeys, newValues };
}

/** Top-K probabilities (descending) and entropy of softmax(logits), in float64. */
export function referenceStats(logits: ArrayLike<number>, k: number): { topIds: number[]; topProbs: number[]; entropy: number } {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += Math.exp(logits[i] - max);
  const logTotal = Math.log(total) + max;
  let entropy = 0;
  const logProbs = Array.from(logits, (v) => v - logTotal);
  for (const lp of logProbs) entropy -= Math.exp(lp) * lp;
  const order = logProbs.map((_, i) => i).sort((a, b) => logProbs[b] - logProbs[a]).slice(0, k);
  return { topIds: order, topProbs: order.map((i) => Math.exp(logProbs[i])), entropy };
}

import { strict as assert } from 'node:assert';
import { expectedWeights, parameterCount, type ModelArchitecture } from '../../engine/architecture/architecture';

describe('model architecture', () => {
  it('counts the parameters of a Qwen2-style layout', () => {
    const arch: ModelArchitecture = {
      family: 'dream', hiddenSize: 8, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 4, intermediateSize: 16,
      vocabSize: 10, ropeTheta: 1e6, rmsNormEps: 1e-6, maxPositions: 64, tieWordEmbeddings: true, qkvBias: true,
      qkNorm: false, logitShift: true,
    };
    const perLayer = 8 + (8 * 8 + 8) + 2 * (4 * 8 + 4) + 8 * 8 + 8 + 3 * 16 * 8;
    assert.equal(parameterCount(arch), 10 * 8 + 2 * perLayer + 8);
    assert.ok(!expectedWeights(arch).has('lm_head.weight'));
  });
});

import { strict as assert } from 'node:assert';
import { addDynamicQuantizeMatMul, dequantizeInt8, quantizeInt8 } from '../../engine/graph/int8';
import type { GraphContext } from '../../engine/graph/graphContext';
import { validateStepGraphOptions } from '../../engine/graph/stepGraphBuilder';
import { matmulT, runOneLinear, seeded } from './graphTestSupport';

describe('int8 weights (DynamicQuantizeMatMul, one scale per output channel)', () => {
  it('stores W transposed as [K, N] with q = round(w / (max|w| / 127)) per output row; an all-zero row stays zero', () => {
    // rows (n = 3) x k = 2: row 0 max 127 (scale 1), row 1 all zero, row 2 max 2.54 (scale 0.02)
    const w = Float32Array.from([127, -3.4, 0, 0, 2.54, -1.01]);
    const q = quantizeInt8(w, 3, 2);
    assert.deepEqual([...q.scales].map((s) => Math.fround(s)), [1, 0, Math.fround(2.54 / 127)]);
    // column-major in the original sense: element (col, row) at col * n + row
    assert.deepEqual([...q.quantized], [127, 0, 127, -3, 0, -51]);
    const back = dequantizeInt8(q);
    for (let i = 0; i < w.length; i++) {
      const scale = q.scales[Math.floor(i / 2)];
      assert.ok(Math.abs(back[i] - w[i]) <= scale / 2 + 1e-7, `element ${i}: ${w[i]} -> ${back[i]}`);
    }
  });

  it("onnxruntime's DynamicQuantizeMatMul computes x·W^T within the activations' 8-bit quantisation", async () => {
    const m = 5;
    const n = 40;
    const k = 96;
    const w = seeded(n * k, 21, 0.3);
    const x = seeded(m * k, 22, 1);
    const y = (await runOneLinear('float32', x, { m, k, n }, (g, input) => {
      const ctx: GraphContext = { g, arch: undefined as never, compute: 'float32', precision: 'int8' };
      return addDynamicQuantizeMatMul(ctx, input, { name: 'w', weight: w, outFeatures: n, inFeatures: k });
    })) as Float32Array;
    const expected = matmulT(x, dequantizeInt8(quantizeInt8(w, n, k)), m, n, k);
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < y.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(y[i] - expected[i]));
      maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
    }
    // The activations are rounded to 255 levels over their range (2 here): at most 1/255 per element, times
    // sum |w| (< k · 0.3); a transposed or mis-scaled weight would be off by the output's own size.
    const bound = (2 / 255 / 2) * k * 0.3;
    assert.ok(maxDiff <= bound && maxDiff < 0.05 * maxAbs, `max |Δ| ${maxDiff} (bound ${bound}) over scale ${maxAbs}`);
  });

  it('needs float32 activations', () => {
    const arch = { numHeads: 4, numKvHeads: 2, headDim: 8, vocabSize: 64 } as never;
    assert.throws(
      () => validateStepGraphOptions(arch, { precision: 'int8', cacheDtype: 'float16', attention: 'decomposed', head: 'logits', topK: 0 }),
      /int8 weights need float32 activations/,
    );
  });
});

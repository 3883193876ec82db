import { strict as assert } from 'node:assert';
import { addMatMulNBits, dequantizeInt4, packInt4, INT4_BLOCK_SIZE } from '../../engine/graph/int4';
import { fromFloat16Array, toFloat16Array, fromFloat16Bits, toFloat16Bits } from '../../engine/graph/float16';
import type { GraphContext } from '../../engine/graph/graphContext';
import type { CacheDtype } from '../../engine/graph/stepContract';
import { matmulT, runOneLinear, seeded } from './graphTestSupport';

describe('int4 packing (MatMulNBits, block 32, symmetric)', () => {
  it('stores element 2j in the low nibble and 2j+1 in the high nibble, with q = round(w/scale) + 8', () => {
    // One row, one block: max |w| = 7 gives scale 1, so q = w + 8 exactly.
    const w = new Float32Array(32);
    w[0] = 1; // q 9
    w[1] = 7; // q 15
    w[2] = -7; // q 1
    w[3] = -2.6; // q round(-2.6) + 8 = 5
    const p = packInt4(w, 1, 32, 'float32');
    assert.deepEqual([...p.scales], [1]);
    assert.equal(p.packed.length, 16);
    assert.equal(p.packed[0], 9 | (15 << 4));
    assert.equal(p.packed[1], 1 | (5 << 4));
    for (let j = 2; j < 16; j++) assert.equal(p.packed[j], 8 | (8 << 4)); // zeros
  });

  it('round-trips weights that lie on the 4-bit grid exactly, including a padded last block and zero blocks', () => {
    const n = 3;
    const k = 70; // 3 blocks, the last one 6 wide
    const w = new Float32Array(n * k);
    for (let r = 0; r < n; r++) {
      for (let b = 0; b < 3; b++) {
        const scale = r === 1 && b === 1 ? 0 : 2 ** -(r + b); // one all-zero block
        const width = Math.min(INT4_BLOCK_SIZE, k - b * INT4_BLOCK_SIZE);
        for (let i = 0; i < width; i++) w[r * k + b * INT4_BLOCK_SIZE + i] = scale * (i === 0 ? 7 : ((i * 5) % 15) - 7) + 0; // + 0: no negative zeros
      }
    }
    for (const dtype of ['float32', 'float16'] as CacheDtype[]) {
      const p = packInt4(w, n, k, dtype);
      assert.equal(p.kBlocks, 3);
      assert.deepEqual(dequantizeInt4(p), w, dtype);
    }
  });

  it('errs by at most half a quantisation step on arbitrary weights; fp16 scales are stored as fp16', () => {
    const n = 5;
    const k = 96;
    const w = seeded(n * k, 3, 0.2);
    for (const dtype of ['float32', 'float16'] as CacheDtype[]) {
      const p = packInt4(w, n, k, dtype);
      if (dtype === 'float16') for (const s of p.scales) assert.equal(fromFloat16Bits(toFloat16Bits(s)), s);
      const back = dequantizeInt4(p);
      for (let i = 0; i < w.length; i++) {
        const scale = p.scales[Math.floor(i / k) * p.kBlocks + Math.floor((i % k) / INT4_BLOCK_SIZE)];
        // With an fp16-rounded scale, |w|/scale can exceed 7 by the rounding; clamping then adds at most that.
        const bound = scale / 2 + (dtype === 'float16' ? 7 * scale * 2 ** -11 : 0) + 1e-7;
        assert.ok(Math.abs(back[i] - w[i]) <= bound, `${dtype} element ${i}: ${w[i]} -> ${back[i]} (scale ${scale})`);
      }
    }
  });

  for (const compute of ['float32', 'float16'] as CacheDtype[]) {
    it(`onnxruntime's MatMulNBits computes x·W^T with the dequantiser's weights (${compute})`, async () => {
      const m = 4;
      const n = 24;
      const k = 80;
      const w = seeded(n * k, 11, 0.5);
      const x = seeded(m * k, 12, 1);
      const xData = compute === 'float16' ? toFloat16Array(x) : x;
      const data = await runOneLinear(compute, xData, { m, k, n }, (g, input) => {
        const ctx: GraphContext = { g, arch: undefined as never, compute, precision: 'int4' };
        return addMatMulNBits(ctx, input, { name: 'w', weight: w, outFeatures: n, inFeatures: k });
      });
      const y = data instanceof Uint16Array ? fromFloat16Array(data) : data;
      const xUsed = compute === 'float16' ? fromFloat16Array(xData as Uint16Array) : x;
      const expected = matmulT(xUsed, dequantizeInt4(packInt4(w, n, k, compute)), m, n, k);
      let maxDiff = 0;
      let maxAbs = 0;
      for (let i = 0; i < y.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(y[i] - expected[i]));
        maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
      }
      // float32: summation order only. float16: the output is rounded to fp16 (relative 2^-11) and the kernel
      // may accumulate in fp16; 1e-2 of the output scale stays far below a single wrong nibble (scale·1 per term).
      const tolerance = compute === 'float32' ? 1e-5 * maxAbs : 1e-2 * maxAbs;
      assert.ok(maxDiff <= tolerance, `max |Δ| ${maxDiff} over scale ${maxAbs}`);
    });
  }
});

/**
 * The step graph against the independent float64 reference forward, on onnxruntime-node's CPU provider.
 *
 * Tolerances. fp32: 1e-4 absolute on logits (|logit| ≲ 20) and K/V. float32 carries ~6e-8 relative
 * precision; a tiny model's outputs are sums of at most a few hundred products through two layers, so
 * accumulated rounding stays around 1e-5, and any semantic slip (a wrong RoPE angle, row, head group or
 * hidden key) moves logits by 0.1 or more. fp16 weights and activations round every value to 2^-11
 * relative: the bound there is 0.05 absolute on logits, plus equal argmax wherever the reference's top
 * two logits are more than 0.1 apart.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import type { ModelArchitecture } from '../../engine/architecture/architecture';
import type { ModelManifest } from '../../engine/model/manifest';
import type { VariantSpec } from '../../engine/model/modelFolder';
import { SyntheticWeights, writeSyntheticModel, type SyntheticPreset } from '../../engine/model/synthetic';
import { readAllWeights } from '../../engine/architecture/weights';
import { referenceForward, referenceStats, type ReferenceOutputs } from '../../engine/reference/referenceForward';
import { loadStepModel, type OnnxStepModel } from '../../engine/runtime/onnxStepModel';
import type { StepResult } from '../../engine/graph/stepContract';
import {
  argmaxRows,
  fromCache,
  maxAbsDiff,
  referenceBias,
  stepFeeds,
  takeRows,
  temporaryDir,
  type StepCall,
} from './graphTestSupport';

const FP32_TOLERANCE = 1e-4;
const FP16_TOLERANCE = 0.05;
const TOP_K = 8;

const VARIANTS: VariantSpec[] = [
  { precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0 },
  { precision: 'fp32', cacheDtype: 'float32', attention: 'decomposed', head: 'logits', topK: 0 },
  { precision: 'fp16', cacheDtype: 'float16', attention: 'gqa', head: 'logits', topK: 0 },
  { precision: 'fp16', cacheDtype: 'float16', attention: 'decomposed', head: 'logits', topK: 0 },
  { precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'stats', topK: TOP_K },
  { precision: 'fp32', cacheDtype: 'float32', attention: 'decomposed', head: 'stats', topK: TOP_K },
  { precision: 'fp32', cacheDtype: 'float32', attention: 'hybrid', head: 'logits', topK: 0 },
  { precision: 'fp16', cacheDtype: 'float16', attention: 'hybrid', head: 'logits', topK: 0 },
  { precision: 'fp32', cacheDtype: 'float32', attention: 'hybrid', head: 'stats', topK: TOP_K },
];
const LOWERINGS = ['gqa', 'decomposed', 'hybrid'] as const;
const fileOf = (attention: string, dtype: string, head: string) =>
  `step.${dtype === 'float16' ? 'fp16' : 'fp32'}.${dtype}.${attention}.${head === 'stats' ? `stats${TOP_K}` : 'logits'}.onnx`;

const CASES: { title: string; preset: SyntheticPreset; overrides?: Partial<ModelArchitecture> }[] = [
  { title: 'Dream family (GQA, q/k/v bias)', preset: 'tiny-dream' },
  { title: 'LLaDA family (no GQA, no bias)', preset: 'tiny-llada' },
  { title: 'Dream family with tied embeddings and qk-norm', preset: 'tiny-dream', overrides: { tieWordEmbeddings: true, qkNorm: true } },
];

// A canvas of 12 rows at positions with gaps; ids include the synthetic mask (257).
const POSITIONS = [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 14];
const IDS = [12, 257, 40, 257, 257, 99, 3, 257, 310, 257, 7, 64];
// Cached rows in shuffled order, query rows in permuted order (indices into the canvas).
const CACHED = [5, 0, 9, 2, 7, 3, 10];
const QUERIED = [8, 1, 11, 4, 6];
const READ = [2, 0, 4]; // indices into QUERIED

for (const testCase of CASES) {
  describe(`step graph vs reference forward: ${testCase.title}`, function () {
    let dir: string;
    let manifest: ModelManifest;
    let arch: ModelArchitecture;
    let weights: Map<string, Float32Array>;
    const models = new Map<string, OnnxStepModel>();

    const model = (attention: (typeof LOWERINGS)[number], dtype: 'float32' | 'float16' = 'float32', head = 'logits') => {
      const m = models.get(fileOf(attention, dtype, head));
      assert.ok(m, 'variant loaded');
      return m;
    };
    const run = async (m: OnnxStepModel, call: StepCall) => m.run(stepFeeds(m, call));
    const reference = (call: StepCall): ReferenceOutputs =>
      referenceForward(arch, weights, {
        inputIds: call.ids,
        positionIds: call.positions,
        bias: referenceBias(call.ids.length, call.pastKeys ? call.pastKeys[0].length / (arch.numKvHeads * arch.headDim) : 0, call.hidden),
        logitsIndex: call.read,
        pastKeys: call.pastKeys ?? Array.from({ length: arch.numLayers }, () => new Float32Array(0)),
        pastValues: call.pastValues ?? Array.from({ length: arch.numLayers }, () => new Float32Array(0)),
        contextLength: call.pastKeys ? call.pastKeys[0].length / (arch.numKvHeads * arch.headDim) : 0,
      });
    const logitsOf = (result: StepResult): Float32Array => {
      assert.equal(result.predictions.kind, 'logits');
      return result.predictions.logits;
    };
    const fullCall: StepCall = { ids: IDS, positions: POSITIONS, read: IDS.map((_, i) => i) };
    /** The cached call: past rows from `full`'s new K/V in CACHED order, queries in QUERIED order. */
    const cachedCall = (full: StepResult, cachedRows = CACHED): StepCall => {
      const { numKvHeads: h, headDim: d } = arch;
      return {
        ids: QUERIED.map((i) => IDS[i]),
        positions: QUERIED.map((i) => POSITIONS[i]),
        read: READ,
        pastKeys: full.newKeys.map((k) => takeRows(fromCache(k), h, IDS.length, d, cachedRows)),
        pastValues: full.newValues.map((v) => takeRows(fromCache(v), h, IDS.length, d, cachedRows)),
      };
    };

    before(async () => {
      dir = temporaryDir('graph');
      manifest = await writeSyntheticModel(dir, { preset: testCase.preset, architecture: testCase.overrides, seed: 3, variants: VARIANTS });
      arch = manifest.architecture;
      weights = await readAllWeights(arch, new SyntheticWeights(arch, 3));
      for (const v of manifest.variants) models.set(v.file, (await loadStepModel(dir, manifest, { device: 'cpu', variant: v.file })).model);
    });

    after(async () => {
      for (const m of models.values()) await m.release();
    });

    for (const attention of LOWERINGS) {
      it(`${attention}: a full pass (C = 0) gives the reference logits and post-RoPE K/V`, async () => {
        const result = await run(model(attention), fullCall);
        const expected = reference(fullCall);
        assert.ok(maxAbsDiff(logitsOf(result), expected.logits.flatMap((r) => [...r])) < FP32_TOLERANCE);
        for (let l = 0; l < arch.numLayers; l++) {
          assert.ok(maxAbsDiff(fromCache(result.newKeys[l]), expected.newKeys[l]) < FP32_TOLERANCE, `new_key.${l}`);
          assert.ok(maxAbsDiff(fromCache(result.newValues[l]), expected.newValues[l]) < FP32_TOLERANCE, `new_value.${l}`);
        }
      });

      it(`${attention}: a cached pass over shuffled past rows and permuted queries equals the full pass`, async () => {
        const full = await run(model(attention), fullCall);
        const call = cachedCall(full);
        const cached = await run(model(attention), call);
        const fullLogits = logitsOf(full);
        const v = arch.vocabSize;
        const fullRows = READ.flatMap((r) => [...fullLogits.subarray(QUERIED[r] * v, (QUERIED[r] + 1) * v)]);
        assert.ok(maxAbsDiff(logitsOf(cached), fullRows) < FP32_TOLERANCE, 'cached logits = full-pass logits');
        const expected = reference(call);
        assert.ok(maxAbsDiff(logitsOf(cached), expected.logits.flatMap((r) => [...r])) < FP32_TOLERANCE, 'cached logits = reference');
        for (let l = 0; l < arch.numLayers; l++) {
          const fullKeys = takeRows(fromCache(full.newKeys[l]), arch.numKvHeads, IDS.length, arch.headDim, QUERIED);
          assert.ok(maxAbsDiff(fromCache(cached.newKeys[l]), fullKeys) < FP32_TOLERANCE, `new_key.${l}`);
          assert.ok(maxAbsDiff(fromCache(cached.newKeys[l]), expected.newKeys[l]) < FP32_TOLERANCE, `reference new_key.${l}`);
        }
      });

      it(`${attention}: hiding a cached row through attention_bias equals leaving it out`, async () => {
        const full = await run(model(attention), fullCall);
        const hiddenColumn = 2; // CACHED[2] = canvas row 9
        const hidden = await run(model(attention), {
          ...cachedCall(full),
          hidden: QUERIED.map((_, row) => [row, hiddenColumn] as [number, number]),
        });
        const removed = await run(model(attention), cachedCall(full, CACHED.filter((_, i) => i !== hiddenColumn)));
        const shown = await run(model(attention), cachedCall(full));
        assert.ok(maxAbsDiff(logitsOf(hidden), logitsOf(removed)) < FP32_TOLERANCE);
        assert.ok(maxAbsDiff(logitsOf(hidden), logitsOf(shown)) > 1e-3, 'the hidden row mattered');
      });
    }

    it('the gqa, decomposed and hybrid lowerings agree', async () => {
      const full = await run(model('gqa'), fullCall);
      const cached = await run(model('gqa'), cachedCall(full));
      for (const other of ['decomposed', 'hybrid'] as const) {
        assert.ok(maxAbsDiff(logitsOf(full), logitsOf(await run(model(other), fullCall))) < FP32_TOLERANCE, `${other} full pass`);
        assert.ok(maxAbsDiff(logitsOf(cached), logitsOf(await run(model(other), cachedCall(full)))) < FP32_TOLERANCE, `${other} cached`);
      }
    });

    for (const attention of LOWERINGS) {
      it(`${attention}: fp16 weights and activations stay within ${FP16_TOLERANCE} of the reference`, async () => {
        const full = await run(model(attention, 'float16'), fullCall);
        assert.ok(full.newKeys[0] instanceof Uint16Array, 'fp16 K/V come back as raw halves');
        const call = cachedCall(full);
        const cached = await run(model(attention, 'float16'), call);
        const v = arch.vocabSize;
        for (const [result, expected] of [
          [full, reference(fullCall)],
          [cached, reference(call)],
        ] as const) {
          const logits = logitsOf(result);
          assert.ok(maxAbsDiff(logits, expected.logits.flatMap((r) => [...r])) < FP16_TOLERANCE);
          const argmax = argmaxRows(logits, expected.logits.length, v);
          expected.logits.forEach((row, r) => {
            const sorted = [...row].sort((a, b) => b - a);
            if (sorted[0] - sorted[1] > 0.1) assert.equal(argmax[r], row.indexOf(sorted[0]), `row ${r} argmax`);
          });
        }
      });

      it(`${attention}: the stats head gives the logits head's top-${TOP_K}, probabilities and entropy`, async () => {
        const call = { ...fullCall, read: [11, 3, 0, 7] };
        const logits = logitsOf(await run(model(attention), call));
        const stats = await run(model(attention, 'float32', 'stats'), call);
        assert.equal(stats.predictions.kind, 'stats');
        if (stats.predictions.kind !== 'stats') return;
        const { topIds, topProbs, entropy, k, rows } = stats.predictions;
        assert.equal(k, TOP_K);
        assert.equal(rows, 4);
        const v = arch.vocabSize;
        for (let r = 0; r < rows; r++) {
          const expected = referenceStats(logits.subarray(r * v, (r + 1) * v), TOP_K);
          assert.deepEqual([...topIds.subarray(r * k, (r + 1) * k)], expected.topIds);
          assert.ok(maxAbsDiff(topProbs.subarray(r * k, (r + 1) * k), expected.topProbs) < 1e-5);
          assert.ok(Math.abs(entropy[r] - expected.entropy) < 1e-4);
        }
      });
    }
  });
}

describe('step graph file', () => {
  let model: onnx.ModelProto;

  before(async () => {
    const dir = temporaryDir('graph-file');
    await writeSyntheticModel(dir, { preset: 'tiny-dream', variants: [VARIANTS[0]] });
    model = onnx.ModelProto.decode(fs.readFileSync(path.join(dir, fileOf('gqa', 'float32', 'logits'))));
  });

  it('carries the dlm.* metadata the engine reads', () => {
    const metadata = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
    assert.equal(metadata['dlm.contract'], 'denoise-v1');
    assert.equal(metadata['dlm.family'], 'dream');
    assert.equal(metadata['dlm.logit_shift'], 'true');
    assert.equal(metadata['dlm.num_kv_heads'], '2');
    assert.equal(metadata['dlm.cache_dtype'], 'float32');
    assert.equal(metadata['dlm.mask_token_id'], '257');
    assert.deepEqual(model.opsetImport.map((o) => o.domain).sort(), ['', 'com.microsoft']);
  });

  it('declares symbolic Q, C, C+Q and R dims on its I/O', () => {
    const dims = (v: onnx.IValueInfoProto) => v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
    const inputs = Object.fromEntries(model.graph!.input!.map((v) => [v.name, dims(v)]));
    const outputs = Object.fromEntries(model.graph!.output!.map((v) => [v.name, dims(v)]));
    assert.deepEqual(inputs.attention_bias, [1, 1, 'query_rows', 'key_rows']);
    assert.deepEqual(inputs['past_key.1'], [1, 2, 'context_rows', 16]);
    assert.deepEqual(outputs.logits, [1, 'read_rows', 320]);
    assert.deepEqual(outputs['new_value.0'], [1, 2, 'query_rows', 16]);
  });

  it('wires present_key/present_value on every GroupQueryAttention node (attention is silently wrong without them)', () => {
    const gqa = model.graph!.node!.filter((n) => n.opType === 'GroupQueryAttention');
    assert.equal(gqa.length, 2);
    for (const node of gqa) {
      assert.equal(node.output!.length, 3);
      assert.ok(node.output!.every((o) => o.length > 0));
      const causal = node.attribute!.find((a) => a.name === 'causal');
      assert.equal(Number(causal?.i), 0);
    }
  });
});

describe('hybrid step graph file', () => {
  it('routes each layer through an If: GroupQueryAttention on full passes, plain MatMuls with cached rows', async () => {
    const dir = temporaryDir('graph-hybrid');
    await writeSyntheticModel(dir, { preset: 'tiny-dream', variants: [VARIANTS.find((v) => v.attention === 'hybrid')!] });
    const model = onnx.ModelProto.decode(fs.readFileSync(path.join(dir, fileOf('hybrid', 'float32', 'logits'))));
    const ifs = model.graph!.node!.filter((n) => n.opType === 'If');
    assert.equal(ifs.length, 2, 'one per layer');
    assert.equal(model.graph!.node!.filter((n) => n.opType === 'GroupQueryAttention').length, 0, 'none outside the branches');
    for (const node of ifs) {
      const branch = (name: string) => node.attribute!.find((a) => a.name === name)!.g!.node!.map((n) => n.opType);
      assert.deepEqual(branch('then_branch'), ['GroupQueryAttention']);
      assert.ok(branch('else_branch').includes('MatMul') && !branch('else_branch').includes('GroupQueryAttention'));
    }
  });
});

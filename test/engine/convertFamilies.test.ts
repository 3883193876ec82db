import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { convertCheckpoint, type ConvertProgress } from '../../engine/convert/convert';
import { dequantizeInt4, packInt4 } from '../../engine/graph/int4';
import { dequantizeInt8, quantizeInt8 } from '../../engine/graph/int8';
import { fromFloat16Array, toFloat16Array } from '../../engine/graph/float16';
import { expectedWeights, WeightNames, type ModelArchitecture } from '../../engine/architecture/architecture';
import { readManifest } from '../../engine/model/manifest';
import { referenceForward } from '../../engine/reference/referenceForward';
import { loadStepModel } from '../../engine/runtime/onnxStepModel';
import type { StepGraphOptions } from '../../engine/graph/stepGraphBuilder';
import { writeFixtureCheckpoint, type Fixture, type FixtureKind } from './convertFixtures';
import { fromCache, maxAbsDiff, referenceBias, stepFeeds, temporaryDir } from './graphTestSupport';

/** A canvas-like call: prompt tokens, masks, suffix; every row read. */
const IDS = [305, 40, 256, 263, 303, 303, 303, 303, 10, 258, 41, 300];

/**
 * Runs the converted graph once (full pass, C = 0, every row read) and the float64 reference on `weights`;
 * returns the largest logit difference and the largest reference logit, for relative tolerances.
 */
async function compareWithReference(outDir: string, arch: ModelArchitecture, weights: Map<string, Float32Array>) {
  const manifest = readManifest(outDir);
  const { model } = await loadStepModel(outDir, manifest, { device: 'cpu' });
  try {
    const ids = IDS.filter((id) => id < arch.vocabSize);
    const positions = ids.map((_, i) => i);
    const read = ids.map((_, i) => i);
    const result = await model.run(stepFeeds(model, { ids, positions, read }));
    assert.equal(result.predictions.kind, 'logits');
    const logits = result.predictions.kind === 'logits' ? result.predictions.logits : new Float32Array();
    const reference = referenceForward(arch, weights, {
      inputIds: ids, positionIds: positions, bias: referenceBias(ids.length, 0), logitsIndex: read,
      pastKeys: [], pastValues: [], contextLength: 0,
    });
    const expected = new Float64Array(ids.length * arch.vocabSize);
    reference.logits.forEach((row, r) => expected.set(row, r * arch.vocabSize));
    const keyDiff = maxAbsDiff(fromCache(result.newKeys[arch.numLayers - 1]), reference.newKeys[arch.numLayers - 1]);
    return { logitDiff: maxAbsDiff(logits, expected), keyDiff, scale: Math.max(...expected.map(Math.abs)), correlation: pearson(logits, expected) };
  } finally {
    await model.release();
  }
}

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] / n;
    mb += b[i] / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

type Requantize = (w: Float32Array, n: number, k: number) => Float32Array;
const int4: Requantize = (w, n, k) => dequantizeInt4(packInt4(w, n, k, 'float32'));
const int8: Requantize = (w, n, k) => dequantizeInt8(quantizeInt8(w, n, k));

/** The weights a quantised graph computes with: every linear layer through quantise → dequantise, the embedding in fp16. */
function quantizedWeights(arch: ModelArchitecture, original: Map<string, Float32Array>, requantize: Requantize): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of expectedWeights(arch)) {
    const w = original.get(name)!;
    if (name === WeightNames.embedTokens) out.set(name, fromFloat16Array(toFloat16Array(w)));
    else if (shape.length === 2) out.set(name, requantize(w, shape[0], shape[1]));
    else out.set(name, w);
  }
  // A tied LM head is written again as a linear layer from the original table.
  if (arch.tieWordEmbeddings) {
    out.set(WeightNames.lmHead, requantize(original.get(WeightNames.embedTokens)!, arch.vocabSize, arch.hiddenSize));
  }
  return out;
}

describe('conversion of Hugging Face checkpoints, per family', function () {
  this.timeout(120_000);
  let tmp: string;
  beforeEach(() => (tmp = temporaryDir('convert')));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const cases: { kind: FixtureKind; what: string }[] = [
    { kind: 'dream', what: 'Dream / Dream-Coder (bf16, slow tokenizer files, config mask id)' },
    { kind: 'diffucoder', what: 'DiffuCoder (bf16, sharded)' },
    { kind: 'open-dcoder', what: 'Open-dCoder (qwen2, fp16, tied, "<M>" mask from the tokenizer)' },
    { kind: 'coda', what: 'CoDA (Qwen3 q/k norm, f32, tied by default)' },
    { kind: 'llada', what: 'LLaDA (its own names, bf16, sharded, BOS from the tokenizer template)' },
  ];
  for (const { kind, what } of cases) {
    it(`${what}: converts, loads, and matches the reference forward (fp32)`, async () => {
      const fixture = await writeFixtureCheckpoint(path.join(tmp, `${kind}-src`), kind);
      const out = path.join(tmp, `${kind}-model`);
      const progress: ConvertProgress[] = [];
      const result = await convertCheckpoint(fixture.dir, out, { precision: 'fp32', head: 'logits', onProgress: (p) => progress.push(p) });
      assert.equal(result.outDir, out);
      const manifest = readManifest(out);
      assert.deepEqual(manifest.architecture, fixture.architecture);
      assert.deepEqual(manifest.tokens, fixture.tokens);
      assert.match(manifest.source?.sha ?? '', /^[0-9a-f]{64}$/);
      assert.deepEqual(manifest.variants.map((v) => [v.precision, v.cacheDtype, v.head]), [['fp32', 'float32', 'logits']]);
      assert.ok(fs.existsSync(path.join(out, 'tokenizer.json')));
      const last = progress[progress.length - 1];
      assert.equal(last.tensor, last.tensors);
      assert.equal(last.bytesRead, last.totalBytes);
      // Only the model folder remains: no temporary sibling.
      assert.deepEqual(fs.readdirSync(tmp).sort(), [`${kind}-model`, `${kind}-src`]);

      const { logitDiff, keyDiff, scale } = await compareWithReference(out, fixture.architecture, fixture.weights);
      // fp32 graph vs float64 reference on identical weights: float32 rounding only.
      assert.ok(logitDiff < 1e-4 * Math.max(1, scale), `logits differ by ${logitDiff} (scale ${scale})`);
      assert.ok(keyDiff < 1e-4, `post-RoPE keys differ by ${keyDiff}`);
    });
  }

  it('writes the decoding defaults of each model\'s own generation code', async () => {
    const dream = await writeFixtureCheckpoint(path.join(tmp, 'Dream-Coder-v0-Base-7B'), 'dream');
    await convertCheckpoint(dream.dir, path.join(tmp, 'dc'), { precision: 'fp32' });
    assert.deepEqual(readManifest(path.join(tmp, 'dc')).decoding, {
      schedule: 'timesteps', blockLength: 256, steps: 768, algorithm: 'entropy', temperature: 0.1,
    });
    const llada = await writeFixtureCheckpoint(path.join(tmp, 'LLaDA-8B-Instruct'), 'llada');
    await convertCheckpoint(llada.dir, path.join(tmp, 'll'), { precision: 'fp32' });
    assert.deepEqual(readManifest(path.join(tmp, 'll')).decoding, {
      schedule: 'blocks', blockLength: 32, steps: 128, algorithm: 'confidence', temperature: 0,
    });
  });

  it('fp16: matches the reference within fp16 rounding', async () => {
    const fixture = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
    const out = path.join(tmp, 'model');
    const graph: Partial<StepGraphOptions> = { precision: 'fp16', cacheDtype: 'float16', head: 'logits' };
    await convertCheckpoint(fixture.dir, out, graph);
    assert.equal(readManifest(out).variants[0].precision, 'fp16');
    const { logitDiff, scale } = await compareWithReference(out, fixture.architecture, fixture.weights);
    // Weights and activations in fp16 (11-bit significand, relative step 2^-11 ≈ 4.9e-4). A logit is a sum over
    // 32 hidden units after two layers of such roundings; 1 % of the largest logit bounds that comfortably while
    // any real mistake (a wrong tensor, a missing bias, a wrong head) moves logits by the order of the scale.
    assert.ok(logitDiff < 1e-2 * scale, `fp16 logits differ by ${logitDiff} (scale ${scale})`);
  });

  for (const kind of ['dream', 'llada', 'open-dcoder'] as FixtureKind[]) {
    it(`int4 (${kind}): the graph computes exactly with the dequantised weights, and stays close to the original`, async () => {
      const fixture: Fixture = await writeFixtureCheckpoint(path.join(tmp, 'src'), kind);
      const out = path.join(tmp, 'model');
      await convertCheckpoint(fixture.dir, out, { precision: 'int4', cacheDtype: 'float32', head: 'logits', int4AccuracyLevel: 0 });
      // A tied head is its own int4 matrix in the graph, so the reference gets it as a separate LM head.
      const asComputed = { ...fixture.architecture, tieWordEmbeddings: false };
      const exact = await compareWithReference(out, asComputed, quantizedWeights(fixture.architecture, fixture.weights, int4));
      // MatMulNBits multiplies by (q - 8)·scale, the dequantiser's weights: only float32 summation order differs.
      assert.ok(exact.logitDiff < 1e-4 * Math.max(1, exact.scale), `int4 logits differ from the dequantised reference by ${exact.logitDiff}`);
      const original = await compareWithReference(out, fixture.architecture, fixture.weights);
      // Against the unquantised weights: on Gaussian weights a block's scale is about 0.3σ, so each weight gets
      // uniform noise of ±0.15σ (about 9 % of its spread) and logits after two layers and the head follow the
      // original closely (measured r = 0.95–0.97 on these checkpoints); a transposed or mis-packed matrix gives unrelated logits (r ≈ 0).
      assert.ok(original.correlation > 0.9, `int4 logits correlate with the original at r = ${original.correlation}`);
    });
  }

  for (const kind of ['dream', 'open-dcoder'] as FixtureKind[]) {
    it(`int8 (${kind}): float32 activations by default, close to the dequantised weights and to the original`, async () => {
      const fixture: Fixture = await writeFixtureCheckpoint(path.join(tmp, 'src'), kind);
      const out = path.join(tmp, 'model');
      await convertCheckpoint(fixture.dir, out, { precision: 'int8', head: 'logits' });
      const [variant] = readManifest(out).variants;
      assert.deepEqual([variant.file, variant.precision, variant.cacheDtype], ['step.int8.float32.hybrid.logits.onnx', 'int8', 'float32']);
      const asComputed = { ...fixture.architecture, tieWordEmbeddings: false };
      const dequantized = await compareWithReference(out, asComputed, quantizedWeights(fixture.architecture, fixture.weights, int8));
      // Activations are quantised to 8 bits per call (one range for all rows), so not exact; a wrong layout or
      // scale gives unrelated logits (r ≈ 0).
      assert.ok(dequantized.correlation > 0.99, `int8 logits correlate with the dequantised reference at r = ${dequantized.correlation}`);
      const original = await compareWithReference(out, fixture.architecture, fixture.weights);
      assert.ok(original.correlation > 0.98, `int8 logits correlate with the original at r = ${original.correlation}`);
    });
  }
  it('int8 refuses float16 activations', async () => {
    const fixture = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
    await assert.rejects(convertCheckpoint(fixture.dir, path.join(tmp, 'model'), { precision: 'int8', cacheDtype: 'float16' }), /int8 weights need float32 activations/);
  });

  it('int4 with accuracy_level 4: recorded in the graph and the manifest, and close to the dequantised reference', async () => {
    const fixture = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
    const out = path.join(tmp, 'model');
    await convertCheckpoint(fixture.dir, out, { precision: 'int4', cacheDtype: 'float32', head: 'logits', int4AccuracyLevel: 4 });
    const [variant] = readManifest(out).variants;
    assert.deepEqual([variant.file, variant.int4AccuracyLevel], ['step.int4acc4.float32.hybrid.logits.onnx', 4]);
    assert.ok(fs.readFileSync(path.join(out, variant.file)).includes('accuracy_level'), 'the MatMulNBits nodes carry the attribute');
    const asComputed = { ...fixture.architecture, tieWordEmbeddings: false };
    const { correlation } = await compareWithReference(out, asComputed, quantizedWeights(fixture.architecture, fixture.weights, int4));
    // int8 activations (per block of 32, where the CPU has the kernels) round each input by at most half a step of
    // its block's range / 127: logits stay nearly the dequantised graph's.
    assert.ok(correlation > 0.99, `accuracy_level 4 logits correlate with the dequantised reference at r = ${correlation}`);
    await assert.rejects(
      convertCheckpoint(fixture.dir, path.join(tmp, 'fp16'), { precision: 'fp16', int4AccuracyLevel: 4 }),
      /int4AccuracyLevel applies to int4 weights only/,
    );
  });
});

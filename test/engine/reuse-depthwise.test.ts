/**
 * Depth-wise execution for prefix reuse, on real onnxruntime sessions of tiny synthetic models (4 layers):
 * - the segments cut from a step graph (embed, per layer, head) compute what the step graph computes, full and
 *   cached, fp32 (1e-4 absolute, as graphStep.test.ts argues) and fp16 with the stats head (0.05 on
 *   probabilities, equal top token where it is clear), anchored to the float64 reference forward;
 * - with b = 0 (no shallow reuse) the reuse model yields exactly the tokens of the monolithic path, whatever
 *   K/V the store holds for the shared rows, for every cache policy refreshed every step;
 * - splitting at b, and the stale first call, reproduce a full pass when the stored rows are that pass's own.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { KvArray, StepFeeds, StepModel, StepResult } from '../../engine/graph/stepContract';
import { readAllWeights } from '../../engine/architecture/weights';
import { SyntheticWeights } from '../../engine/model/synthetic';
import { referenceForward } from '../../engine/reference/referenceForward';
import { denoise, type DenoiseRequest } from '../../engine/denoiser/denoiser';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import type { DecodingOptions } from '../../common/decodingOptions';
import { leadingRows } from '../../engine/reuse/kvRows';
import { PrefixReuseModel, type PrefixReuseSetup } from '../../engine/reuse/prefixReuseModel';
import type { ReusablePrefix } from '../../engine/reuse/reuseHarvest';
import { segmentFileNames } from '../../engine/reuse/segmentFiles';
import type { SegmentedStepModel } from '../../engine/reuse/segmentedModel';
import { fromCache, maxAbsDiff, referenceBias, stepFeeds, takeRows } from './graphTestSupport';
import { byteTokens, FP16_STATS, FP32_DECOMPOSED, FP32_GQA, FP32_HYBRID, segmentedFixture, type SegmentedFixture } from './reuseTestSupport';

const FP32_TOLERANCE = 1e-4;
const FP16_TOLERANCE = 0.05;

/** A whole call through the segments, every layer on the same rows and context; hidden states kept per depth. */
async function segmentForward(segments: SegmentedStepModel, feeds: StepFeeds): Promise<StepResult & { hiddenAt: KvArray[] }> {
  const hiddenAt: KvArray[] = [];
  const { hidden, newKeys, newValues } = await segments.forward(feeds, (_, input) => hiddenAt.push(input));
  const predictions = await segments.predict(hidden, feeds.inputIds.length, feeds.logitsIndex);
  return { predictions, newKeys, newValues, hiddenAt };
}

function predictionValues(r: StepResult): Float32Array {
  return r.predictions.kind === 'logits' ? r.predictions.logits : r.predictions.topProbs;
}

function assertSameStep(actual: StepResult, expected: StepResult, tolerance: number, what: string): void {
  assert.ok(maxAbsDiff(predictionValues(actual), predictionValues(expected)) < tolerance, `${what}: predictions`);
  if (actual.predictions.kind === 'stats' && expected.predictions.kind === 'stats') {
    const { k, rows } = expected.predictions;
    for (let r = 0; r < rows; r++) {
      const clear = expected.predictions.topProbs[r * k] - expected.predictions.topProbs[r * k + 1] > 0.05;
      if (clear) assert.equal(actual.predictions.topIds[r * k], expected.predictions.topIds[r * k], `${what}: top token of row ${r}`);
    }
  }
  for (let l = 0; l < actual.newKeys.length; l++) {
    assert.ok(maxAbsDiff(fromCache(actual.newKeys[l]), fromCache(expected.newKeys[l])) < tolerance, `${what}: new keys of layer ${l}`);
    assert.ok(maxAbsDiff(fromCache(actual.newValues[l]), fromCache(expected.newValues[l])) < tolerance, `${what}: new values of layer ${l}`);
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('depth-wise segments cut from the step graph (real onnxruntime)', function () {
  this.timeout(120_000);
  let fixture: SegmentedFixture;
  let externalFixture: SegmentedFixture;

  before(async () => {
    fixture = await segmentedFixture('tiny-dream', [FP32_GQA, FP32_DECOMPOSED, FP32_HYBRID, FP16_STATS]);
    externalFixture = await segmentedFixture('tiny-llada', [FP32_GQA], { numLayers: 3 }, { externalData: 'always' });
  });
  after(async () => {
    await fixture?.release();
    await externalFixture?.release();
  });

  const canvasIds = [12, 257, 40, 257, 257, 99, 3, 257, 210, 257, 7, 64];
  const positions = [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 14];

  /** The float64 reference forward's full pass over the canvas (the fixture's weights), reading `logitsIndex`. */
  async function referenceFullPass(logitsIndex: number[]) {
    const weights = await readAllWeights(fixture.arch, new SyntheticWeights(fixture.arch, 5));
    const bias = referenceBias(canvasIds.length, 0);
    return referenceForward(fixture.arch, weights, { inputIds: canvasIds, positionIds: positions, bias, logitsIndex, pastKeys: [], pastValues: [], contextLength: 0 });
  }

  it('compute what the step graph computes: full pass and cached call, fp32 and fp16, every lowering', async () => {
    for (const { variant, monolithic, segments } of fixture.variants) {
      const tolerance = variant.cacheDtype === 'float16' ? FP16_TOLERANCE : FP32_TOLERANCE;
      const full = stepFeeds(monolithic, { ids: canvasIds, positions, read: [0, 4, 11] });
      const fullStep = await monolithic.run(full);
      assertSameStep(await segmentForward(segments, full), fullStep, tolerance, `${variant.file} full pass`);

      // Rows 0..6 cached (from the full pass), rows 7..11 queried with one hidden key.
      const cached = range(0, 7);
      const kv = (t: KvArray[]) => t.map((x) => takeRows(fromCache(x), monolithic.numKvHeads, canvasIds.length, monolithic.headDim, cached));
      const call = stepFeeds(monolithic, {
        ids: canvasIds.slice(7),
        positions: positions.slice(7),
        read: [4, 1],
        pastKeys: kv(fullStep.newKeys),
        pastValues: kv(fullStep.newValues),
        hidden: [[2, 3]],
      });
      assertSameStep(await segmentForward(segments, call), await monolithic.run(call), tolerance, `${variant.file} cached call`);
    }
  });

  it('match the float64 reference forward (fp32)', async () => {
    const { monolithic, segments } = fixture.variants[0];
    const feeds = stepFeeds(monolithic, { ids: canvasIds, positions, read: [1, 5] });
    const reference = await referenceFullPass([1, 5]);
    const result = await segmentForward(segments, feeds);
    assert.ok(maxAbsDiff(predictionValues(result), reference.logits.flatMap((row) => Array.from(row))) < FP32_TOLERANCE);
    result.newKeys.forEach((k, l) => assert.ok(maxAbsDiff(fromCache(k), reference.newKeys[l]) < FP32_TOLERANCE, `layer ${l}`));
  });

  it("reference the step graph's external data file instead of copying the weights (inline weights are moved there)", async () => {
    for (const fx of [externalFixture, fixture]) {
      for (const { variant, monolithic, segments } of fx.variants) {
        const files = segmentFileNames(variant, fx.arch.numLayers);
        const size = (f: string) => fs.statSync(path.join(fx.dir, f)).size;
        const weights = size(`${variant.file}_data`);
        const graphs = [variant.file, files.embed, ...files.layers, files.head].reduce((n, f) => n + size(f), 0);
        assert.ok(graphs < weights / 10, `${variant.file}: graphs hold ${graphs} bytes beside ${weights} bytes of weights`);
        const feeds = stepFeeds(monolithic, { ids: canvasIds, positions, read: [3] });
        const tolerance = variant.cacheDtype === 'float16' ? FP16_TOLERANCE : FP32_TOLERANCE;
        assertSameStep(await segmentForward(segments, feeds), await monolithic.run(feeds), tolerance, `${variant.file} external data`);
      }
      const dataFiles = fs.readdirSync(fx.dir).filter((f) => f.endsWith('_data')).sort();
      assert.deepEqual(dataFiles, fx.variants.map((v) => `${v.variant.file}_data`).sort(), 'one data file per step graph');
    }
  });

  it('the step graph whose weights were moved out still matches the float64 reference forward', async () => {
    const { monolithic } = fixture.variants[0];
    const reference = await referenceFullPass([2, 7]);
    const result = await monolithic.run(stepFeeds(monolithic, { ids: canvasIds, positions, read: [2, 7] }));
    assert.ok(maxAbsDiff(predictionValues(result), reference.logits.flatMap((row) => Array.from(row))) < FP32_TOLERANCE);
  });
});

for (const preset of ['tiny-dream', 'tiny-llada'] as const) {
  describe(`prefix reuse model on ${preset} (real onnxruntime)`, function () {
    this.timeout(120_000);
    let fixture: SegmentedFixture;
    before(async () => {
      fixture = await segmentedFixture(preset, [FP32_GQA]);
    });
    after(async () => fixture?.release());

    const PREFIX = byteTokens(14, 1);
    const SUFFIX = byteTokens(6, 2);
    const FILL = 12;

    /** Shared rows: all the prefix the denoiser may leave out (the shifted family keeps the last prefix row). */
    const sharedLength = () => (fixture.arch.logitShift ? PREFIX.length - 1 : PREFIX.length);

    /** Stored rows [0, s) with K/V of the wrong canvas (b = 0 must never read them) and no hidden states. */
    function unrelatedShared(s: number): ReusablePrefix {
      const { numLayers, numKvHeads, headDim } = fixture.arch;
      const junk = () => Float32Array.from({ length: numKvHeads * s * headDim }, (_, i) => Math.sin(i * 12.9898) * 3);
      return {
        ids: PREFIX.slice(0, s),
        keys: Array.from({ length: numLayers }, junk),
        values: Array.from({ length: numLayers }, junk),
        hidden: new Map(),
      };
    }

    async function fill(model: StepModel, request: DenoiseRequest): Promise<{ fill: number[]; commitStep: number[] }> {
      const commitStep = new Array<number>(request.length).fill(-1);
      let last: number[] = [];
      await denoise(model, fixture.spec, request, {
        onProgress: (p) => {
          last = Array.from(p.fill);
          last.forEach((t, i) => {
            if (t !== fixture.spec.tokens.mask && commitStep[i] === -1) commitStep[i] = p.step - 1;
          });
        },
      });
      return { fill: last, commitStep };
    }

    const POLICIES: Partial<DecodingOptions>[] = [
      { cache: 'none' },
      { cache: 'decode', refreshInterval: 1 },
      { cache: 'prefill', refreshInterval: 1 },
      { cache: 'greedy', refreshInterval: 1 },
      { cache: 'block-prefix', refreshInterval: 1, schedule: 'threshold', threshold: 0.6, blockLength: 4 },
      { cache: 'block-dual', refreshInterval: 1, schedule: 'threshold', threshold: 0.6, blockLength: 4 },
    ];

    for (const policy of POLICIES) {
      it(`b = 0: the tokens of the monolithic path exactly (${policy.cache})`, async () => {
        const { monolithic, segments } = fixture.variants[0];
        const options = { ...DEFAULT_DECODING_OPTIONS, blockLength: 6, steps: 12, ...policy };
        const whole: DenoiseRequest = { prefixIds: PREFIX, suffixIds: SUFFIX, length: FILL, options, runToCompletion: true };
        const expected = await fill(monolithic, whole);
        const s = sharedLength();
        const setup: PrefixReuseSetup = {
          shared: unrelatedShared(s),
          staleSuffix: null,
          depth: 0,
          staleFirstCall: false,
          refreshEvery: 1,
          harvestDepths: [2],
          tailIds: PREFIX.slice(s),
          fillLength: FILL,
          suffixIds: SUFFIX,
        };
        const reuse = new PrefixReuseModel(monolithic, segments, setup);
        const actual = await fill(reuse, { ...whole, prefixIds: PREFIX.slice(s) });
        assert.deepEqual(actual.fill, expected.fill);
        assert.deepEqual(actual.commitStep, expected.commitStep);
        assert.equal(reuse.stats.refreshCalls, reuse.stats.depthwiseCalls);

        const harvest = reuse.harvest();
        assert.deepEqual(harvest.prefix.ids, PREFIX, 'the next request can reuse the whole prefix');
        assert.deepEqual(harvest.suffix?.ids, SUFFIX);
        assert.deepEqual([...harvest.prefix.hidden.keys()], []);
      });
    }

    /** A full pass over the canvas through the segments: every row's K/V per layer and hidden state per depth. */
    async function fullPass(canvas: number[]) {
      const { monolithic, segments } = fixture.variants[0];
      const feeds = stepFeeds(monolithic, { ids: canvas, positions: range(0, canvas.length), read: range(0, canvas.length) });
      return { feeds, monolithicResult: await monolithic.run(feeds), segmentResult: await segmentForward(segments, feeds) };
    }

    function storedRows(pass: Awaited<ReturnType<typeof fullPass>>, n: number, rows: number, depths: number[]): ReusablePrefix {
      const { numKvHeads, headDim, hiddenSize } = fixture.arch;
      const r = pass.segmentResult;
      return {
        ids: Array.from(pass.feeds.inputIds.subarray(0, rows), Number),
        keys: r.newKeys.map((k) => leadingRows(k, n, rows, numKvHeads, headDim)),
        values: r.newValues.map((v) => leadingRows(v, n, rows, numKvHeads, headDim)),
        hidden: new Map(depths.map((d) => [d, r.hiddenAt[d].slice(0, rows * hiddenSize)])),
      };
    }

    it('a refresh split at b = 2 reproduces the full pass when the stored rows are its own', async () => {
      const { monolithic, segments } = fixture.variants[0];
      const canvas = [...PREFIX, ...new Array(FILL).fill(fixture.spec.tokens.mask), ...SUFFIX];
      const pass = await fullPass(canvas);
      const s = sharedLength();
      const reuse = new PrefixReuseModel(monolithic, segments, {
        shared: storedRows(pass, canvas.length, s, [2]),
        staleSuffix: null,
        depth: 2,
        staleFirstCall: false,
        refreshEvery: 1,
        harvestDepths: [2],
        tailIds: PREFIX.slice(s),
        fillLength: FILL,
        suffixIds: SUFFIX,
      });
      const rest = canvas.length - s;
      const read = [0, 3, rest - 1];
      const result = await reuse.run(stepFeeds(monolithic, { ids: canvas.slice(s), positions: range(0, rest), read }));
      const expected = await monolithic.run(stepFeeds(monolithic, { ids: canvas, positions: range(0, canvas.length), read: read.map((r) => r + s) }));
      const { numKvHeads, headDim } = fixture.arch;
      const restRows = range(s, canvas.length);
      assertSameStep(result, {
        predictions: expected.predictions,
        newKeys: expected.newKeys.map((k) => takeRows(fromCache(k), numKvHeads, canvas.length, headDim, restRows)),
        newValues: expected.newValues.map((v) => takeRows(fromCache(v), numKvHeads, canvas.length, headDim, restRows)),
      }, FP32_TOLERANCE, 'split at 2');
      assert.deepEqual(reuse.stats, { depthwiseCalls: 1, refreshCalls: 1, rowsComputed: (2 * rest + 2 * canvas.length) / 4 });
    });

    it('the stale first call computes only the rows not stored and reproduces the full pass when they are its own', async () => {
      const { monolithic, segments } = fixture.variants[0];
      const canvas = [...PREFIX, ...new Array(FILL).fill(fixture.spec.tokens.mask), ...SUFFIX];
      const pass = await fullPass(canvas);
      const s = sharedLength();
      const { numKvHeads, headDim } = fixture.arch;
      const suffixStart = PREFIX.length + FILL;
      const suffixRows = range(suffixStart, canvas.length);
      const reuse = new PrefixReuseModel(monolithic, segments, {
        shared: storedRows(pass, canvas.length, s, [1, 3]),
        staleSuffix: {
          ids: SUFFIX,
          start: suffixStart,
          keys: pass.segmentResult.newKeys.map((k) => takeRows(fromCache(k), numKvHeads, canvas.length, headDim, suffixRows)),
          values: pass.segmentResult.newValues.map((v) => takeRows(fromCache(v), numKvHeads, canvas.length, headDim, suffixRows)),
        },
        depth: 3,
        staleFirstCall: true,
        refreshEvery: 4,
        harvestDepths: [1, 3],
        tailIds: PREFIX.slice(s),
        fillLength: FILL,
        suffixIds: SUFFIX,
      });
      const rest = canvas.length - s;
      const read = [0, 5, 7];
      const result = await reuse.run(stepFeeds(monolithic, { ids: canvas.slice(s), positions: range(0, rest), read }));
      const restRows = range(s, canvas.length);
      assertSameStep(result, {
        predictions: pass.monolithicResult.predictions.kind === 'logits'
          ? { ...pass.monolithicResult.predictions, rows: 3, logits: takeRows(pass.monolithicResult.predictions.logits, 1, canvas.length, fixture.arch.vocabSize, read.map((r) => r + s)) }
          : pass.monolithicResult.predictions,
        newKeys: pass.monolithicResult.newKeys.map((k) => takeRows(fromCache(k), numKvHeads, canvas.length, headDim, restRows)),
        newValues: pass.monolithicResult.newValues.map((v) => takeRows(fromCache(v), numKvHeads, canvas.length, headDim, restRows)),
      }, FP32_TOLERANCE, 'stale first call');
      const computedRows = rest - SUFFIX.length;
      assert.deepEqual(reuse.stats, { depthwiseCalls: 1, refreshCalls: 0, rowsComputed: computedRows });

      // The harvest holds the whole prefix (its hidden states at the harvested depths) and the suffix.
      const harvest = reuse.harvest();
      assert.deepEqual(harvest.prefix.ids, PREFIX);
      for (const d of [1, 3]) {
        const expectedHidden = fromCache(pass.segmentResult.hiddenAt[d]).subarray(0, PREFIX.length * fixture.arch.hiddenSize);
        assert.ok(maxAbsDiff(fromCache(harvest.prefix.hidden.get(d)!), expectedHidden) < FP32_TOLERANCE, `hidden at depth ${d}`);
      }
      assert.equal(harvest.suffix?.start, suffixStart);
    });
  });
}

/**
 * The denoiser on real onnxruntime step graphs of tiny synthetic models, both families (dream-tiny: shifted
 * logits, GQA; llada-tiny: unshifted): exactness of every cache policy against `none`, the rows each policy
 * promises per graph call, the logit shift, schedules, sampling, trimming and cancellation.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import type { StepFeeds, StepModel, StepResult } from '../../engine/graph/stepContract';
import type { ModelManifest } from '../../engine/model/manifest';
import { variantFileName, type VariantSpec } from '../../engine/model/modelFolder';
import { writeSyntheticModel, type SyntheticPreset } from '../../engine/model/synthetic';
import { loadStepModel, type OnnxStepModel } from '../../engine/runtime/onnxStepModel';
import { CancelledError } from '../../engine/denoiser/cancellation';
import { agreement, compareWithNone } from '../../engine/denoiser/compare';
import { randomPriority } from '../../engine/denoiser/confidence';
import { denoise, type DenoiseProgress, type DenoiseRequest, type DenoiseResult, type DenoiseSpec } from '../../engine/denoiser/denoiser';
import { predictorRow } from '../../engine/denoiser/logitShift';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import { KeyedRandom } from '../../engine/denoiser/rng';
import { dreamTransferCounts, numTransferTokens } from '../../engine/denoiser/schedule';
import type { DecodingOptions } from '../../common/decodingOptions';
import { temporaryDir } from './graphTestSupport';

const LOGITS: VariantSpec = { precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0 };
const DECOMPOSED: VariantSpec = { ...LOGITS, attention: 'decomposed' };
const FP16: VariantSpec = { precision: 'fp16', cacheDtype: 'float16', attention: 'gqa', head: 'logits', topK: 0 };
const STATS: VariantSpec = { ...LOGITS, head: 'stats', topK: 320 };

interface Call {
  positions: number[];
  ids: number[];
  read: number[];
  context: number;
}

/** The real model, with every call's query rows, input ids, read rows and context size written down. */
class RecordingModel implements StepModel {
  readonly calls: Call[] = [];
  constructor(private readonly inner: StepModel) {}
  get numLayers() { return this.inner.numLayers; }
  get numKvHeads() { return this.inner.numKvHeads; }
  get headDim() { return this.inner.headDim; }
  get cacheDtype() { return this.inner.cacheDtype; }
  get head() { return this.inner.head; }
  run(feeds: StepFeeds): Promise<StepResult> {
    this.calls.push({
      positions: Array.from(feeds.positionIds, Number),
      ids: Array.from(feeds.inputIds, Number),
      read: Array.from(feeds.logitsIndex, Number),
      context: feeds.contextLength,
    });
    return this.inner.run(feeds);
  }
}

interface Loaded {
  manifest: ModelManifest;
  spec: DenoiseSpec;
  models: Map<string, OnnxStepModel>;
}

/** A deterministic run: the result, each step's progress, and each graph call. */
interface Run {
  result: DenoiseResult;
  progress: DenoiseProgress[];
  calls: Call[];
  /** The untrimmed fill after the last step. */
  finalFill: number[];
  /** Per fill index, the 0-based step that committed it. */
  commitStep: number[];
}

async function run(model: StepModel, spec: DenoiseSpec, request: DenoiseRequest): Promise<Run> {
  const recording = new RecordingModel(model);
  const progress: DenoiseProgress[] = [];
  const result = await denoise(recording, spec, request, { onProgress: (p) => progress.push(p) });
  const mask = spec.tokens.mask;
  const commitStep = new Array(request.length).fill(-1);
  progress.forEach((p, step) => p.fill.forEach((t, i) => {
    if (t !== mask && commitStep[i] === -1) commitStep[i] = step;
  }));
  return { result, progress, calls: recording.calls, finalFill: Array.from(progress[progress.length - 1].fill), commitStep };
}

/** Ordinary (byte) tokens, deterministic. */
function tokens(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 37 + salt * 11 + 5) % 256);
}

const CANVASES = [
  { name: 'prefix + fill + suffix', prefix: 11, fill: 16, suffix: 5 },
  { name: 'empty prefix', prefix: 0, fill: 12, suffix: 7 },
  { name: 'empty suffix', prefix: 9, fill: 12, suffix: 0 },
];

function request(canvas: (typeof CANVASES)[number], options: Partial<DecodingOptions>): DenoiseRequest {
  return {
    prefixIds: tokens(canvas.prefix, 1),
    suffixIds: tokens(canvas.suffix, 2),
    length: canvas.fill,
    options: { ...DEFAULT_DECODING_OPTIONS, ...options },
    runToCompletion: true,
  };
}

const FAMILIES: { preset: SyntheticPreset; shifted: boolean }[] = [
  { preset: 'tiny-dream', shifted: true },
  { preset: 'tiny-llada', shifted: false },
];

for (const { preset, shifted } of FAMILIES) {
  describe(`denoiser on ${preset} (real onnxruntime)`, function () {
    this.timeout(300_000);
    const loaded = {} as Loaded;
    let dir: string;
    const model = (v: VariantSpec = LOGITS) => loaded.models.get(variantFileName(v))!;

    before(async () => {
      dir = temporaryDir(`denoiser-${preset}`);
      loaded.manifest = await writeSyntheticModel(dir, { preset, seed: 7, variants: [LOGITS, DECOMPOSED, FP16, STATS] });
      const { architecture, tokens: specials } = loaded.manifest;
      loaded.spec = { tokens: specials, logitShift: architecture.logitShift, vocabSize: architecture.vocabSize };
      loaded.models = new Map();
      for (const v of loaded.manifest.variants) {
        loaded.models.set(v.file, (await loadStepModel(dir, loaded.manifest, { device: 'cpu', variant: v.file })).model);
      }
      assert.equal(loaded.spec.logitShift, shifted);
    });

    after(async () => {
      for (const m of loaded.models.values()) await m.release();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    // -------------------------------------------------------------------------------------------------
    // Exactness: refresh interval 1 makes every policy compute the whole canvas each step.

    const SETTINGS: { name: string; options: Partial<DecodingOptions> }[] = [
      { name: 'blocks of 4, confidence', options: { schedule: 'blocks', blockLength: 4, steps: 64, algorithm: 'confidence' } },
      { name: 'timesteps, entropy, half the steps', options: { schedule: 'timesteps', blockLength: 64, steps: 6, algorithm: 'entropy' } },
      { name: 'threshold 0.3 in blocks of 8, margin', options: { schedule: 'threshold', blockLength: 8, threshold: 0.3, algorithm: 'margin' } },
      { name: 'blocks of 6, temperature 0.8', options: { schedule: 'blocks', blockLength: 6, steps: 8, temperature: 0.8, seed: 42 } },
    ];

    for (const canvas of CANVASES) {
      for (const setting of SETTINGS) {
        it(`${canvas.name}, ${setting.name}: decode, greedy and prefill with refresh 1 give the tokens of none`, async () => {
          const base = await run(model(), loaded.spec, request(canvas, { ...setting.options, cache: 'none' }));
          assert.equal(base.finalFill.filter((t) => t === loaded.spec.tokens.mask).length, 0);
          const policies: Partial<DecodingOptions>[] = [
            { cache: 'decode', refreshInterval: 1 },
            { cache: 'greedy', refreshInterval: 1, window: 2, greedyOrder: 'confidence' },
            { cache: 'prefill', refreshInterval: 1 },
          ];
          for (const policy of policies) {
            const cached = await run(model(), loaded.spec, request(canvas, { ...setting.options, ...policy }));
            assert.deepEqual(cached.finalFill, base.finalFill, JSON.stringify(policy));
            assert.deepEqual(cached.result.fill, base.result.fill);
            assert.deepEqual(cached.commitStep, base.commitStep);
          }
          if (setting.options.schedule !== 'threshold') {
            const randomBase = await run(model(), loaded.spec, request(canvas, { ...setting.options, cache: 'none', algorithm: 'random' }));
            const greedyRandom = await run(model(), loaded.spec, request(canvas, { ...setting.options, cache: 'greedy', refreshInterval: 1, window: 0, greedyOrder: 'random' }));
            assert.deepEqual(greedyRandom.finalFill, randomBase.finalFill);
          }
        });
      }
    }

    it('pd with refresh 1 gives the tokens of prefill; with no refresh after step 0, those of decode', async () => {
      for (const canvas of CANVASES) {
        for (const setting of SETTINGS) {
          const never = 10_000; // more steps than any of these fills takes
          for (const [pd, same] of [
            [{ cache: 'pd', refreshInterval: 1 }, { cache: 'prefill', refreshInterval: 0 }],
            [{ cache: 'pd', refreshInterval: never }, { cache: 'decode', refreshInterval: never }],
          ] as [Partial<DecodingOptions>, Partial<DecodingOptions>][]) {
            const a = await run(model(), loaded.spec, request(canvas, { ...setting.options, ...pd }));
            const b = await run(model(), loaded.spec, request(canvas, { ...setting.options, ...same }));
            const label = `${canvas.name}, ${setting.name}, ${JSON.stringify(pd)}`;
            assert.deepEqual(a.finalFill, b.finalFill, label);
            assert.deepEqual(a.commitStep, b.commitStep, label);
            assert.deepEqual(a.calls.map((c) => c.positions), b.calls.map((c) => c.positions), label);
          }
        }
      }
    });

    it('greedy with a window covering the canvas and no refresh equals none: random order and confidence order', async () => {
      const canvas = CANVASES[0];
      const length = canvas.prefix + canvas.fill + canvas.suffix;
      const common = { schedule: 'blocks' as const, blockLength: 8, steps: 16, refreshInterval: 1000, window: length - 1 };
      const randomNone = await run(model(), loaded.spec, request(canvas, { ...common, cache: 'none', algorithm: 'random', seed: 3 }));
      const randomGreedy = await run(model(), loaded.spec, request(canvas, { ...common, cache: 'greedy', greedyOrder: 'random', seed: 3 }));
      assert.deepEqual(randomGreedy.finalFill, randomNone.finalFill);
      const confNone = await run(model(), loaded.spec, request(canvas, { ...common, cache: 'none', algorithm: 'confidence' }));
      const confGreedy = await run(model(), loaded.spec, request(canvas, { ...common, cache: 'greedy', greedyOrder: 'confidence' }));
      assert.deepEqual(confGreedy.finalFill, confNone.finalFill);
      for (const r of [randomGreedy, confGreedy]) {
        assert.ok(r.calls.every((c) => c.positions.length === length && c.context === 0));
      }
    });

    it('fp16 K/V and the stats head give the tokens of none too', async () => {
      const canvas = CANVASES[0];
      for (const variant of [FP16, STATS]) {
        const options = { schedule: 'blocks' as const, blockLength: 8, steps: 16 };
        const base = await run(model(variant), loaded.spec, request(canvas, { ...options, cache: 'none' }));
        for (const cache of ['decode', 'greedy', 'prefill'] as const) {
          const cached = await run(model(variant), loaded.spec, request(canvas, { ...options, cache, refreshInterval: 1 }));
          assert.deepEqual(cached.finalFill, base.finalFill, `${variant.head} ${variant.cacheDtype} ${cache}`);
        }
      }
      // The stats head (top-k = the whole vocabulary) decodes like the logits head.
      const viaLogits = await run(model(), loaded.spec, request(canvas, { cache: 'none', blockLength: 8, steps: 16 }));
      const viaStats = await run(model(STATS), loaded.spec, request(canvas, { cache: 'none', blockLength: 8, steps: 16 }));
      assert.deepEqual(viaStats.finalFill, viaLogits.finalFill);
    });

    it('with one layer (K/V depend only on their own token and position) cached steps are exact: decode, prefill, pd and greedy match none with long refresh intervals', async () => {
      const oneLayerDir = temporaryDir(`denoiser-${preset}-1layer`);
      try {
        const manifest = await writeSyntheticModel(oneLayerDir, { preset, seed: 7, architecture: { numLayers: 1 }, variants: [LOGITS] });
        const oneLayer = (await loadStepModel(oneLayerDir, manifest, { device: 'cpu' })).model;
        try {
          for (const canvas of CANVASES) {
            const settings = { schedule: 'blocks' as const, blockLength: 8, steps: canvas.fill };
            const base = await run(oneLayer, loaded.spec, request(canvas, { ...settings, cache: 'none' }));
            const randomBase = await run(oneLayer, loaded.spec, request(canvas, { ...settings, cache: 'none', algorithm: 'random' }));
            for (const [policy, expected] of [
              [{ cache: 'decode', refreshInterval: 5 }, base],
              [{ cache: 'prefill', refreshInterval: 0 }, base],
              [{ cache: 'pd', refreshInterval: 3 }, base],
              [{ cache: 'greedy', refreshInterval: 7, window: 1, greedyOrder: 'random' }, randomBase],
            ] as [Partial<DecodingOptions>, Run][]) {
              const cached = await run(oneLayer, loaded.spec, request(canvas, { ...settings, ...policy }));
              assert.ok(cached.calls.some((c) => c.context > 0), 'some calls read cached rows');
              assert.deepEqual(cached.finalFill, expected.finalFill, `${canvas.name} ${JSON.stringify(policy)}`);
            }
          }
        } finally {
          await oneLayer.release();
        }
      } finally {
        fs.rmSync(oneLayerDir, { recursive: true, force: true });
      }
    });

    // -------------------------------------------------------------------------------------------------
    // Rows per call: what each policy promises.

    const range = (n: number) => Array.from({ length: n }, (_, i) => i);
    const sorted = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b);

    it('decode: refresh steps compute the canvas; cached steps exactly the predictor rows, the rows never stored and the rows committed since they were stored', async () => {
      const canvas = CANVASES[0];
      const req = request(canvas, { cache: 'decode', refreshInterval: 4, schedule: 'blocks', blockLength: 8, steps: 16 });
      const r = await run(model(), loaded.spec, req);
      const length = canvas.prefix + canvas.fill + canvas.suffix;
      const isFillRow = (row: number) => row >= canvas.prefix && row < canvas.prefix + canvas.fill;
      /** The step that committed `row`'s token (-1 for prefix and suffix). */
      const commitStep = (row: number) => (isFillRow(row) ? r.commitStep[row - canvas.prefix] : -1);
      const maskedAtStart = (position: number, step: number) => commitStep(position) >= step;
      const predictsMasked = (row: number, step: number) =>
        shifted ? (row + 1 < length && maskedAtStart(row + 1, step)) || (row === 0 && maskedAtStart(0, step)) : maskedAtStart(row, step);
      // Replays the rule from the commit history: a computed row is stored unless it predicts a masked position.
      const storedAt = new Array<number>(length).fill(-1);
      assert.equal(r.calls.length, 16);
      r.calls.forEach((call, step) => {
        if (step % 4 === 0) {
          assert.deepEqual(call.positions, range(length), `step ${step}`);
          assert.equal(call.context, 0);
        } else {
          const expected = range(length).filter((row) => {
            const committedBefore = commitStep(row) < step;
            const stale = committedBefore && commitStep(row) >= storedAt[row];
            return predictsMasked(row, step) || storedAt[row] < 0 || stale;
          });
          assert.deepEqual(call.positions, expected, `step ${step}`);
          assert.equal(call.context, length - expected.length);
        }
        for (const row of call.positions) if (!predictsMasked(row, step)) storedAt[row] = step;
      });
      // Delayed caching: every committed fill token's row is computed again at the step after its commit.
      r.commitStep.forEach((s, i) => {
        if (s + 1 < r.calls.length) assert.ok(r.calls[s + 1].positions.includes(canvas.prefix + i), `row of fill ${i} at step ${s + 1}`);
      });
      assert.deepEqual(r.result.stats.rowsPerCall, r.calls.map((c) => c.positions.length));
      assert.equal(r.result.stats.rowsComputed, r.calls.reduce((n, c) => n + c.positions.length, 0));
    });

    it('prefill: prefix and suffix rows are computed once per request (the live predictor row until it settles)', async () => {
      const canvas = CANVASES[0];
      const req = request(canvas, { cache: 'prefill', refreshInterval: 0, schedule: 'blocks', blockLength: 4, steps: 16 });
      const r = await run(model(), loaded.spec, req);
      const length = canvas.prefix + canvas.fill + canvas.suffix;
      const fillStart = canvas.prefix;
      const fillEnd = canvas.prefix + canvas.fill;
      const times = new Array(length).fill(0);
      for (const call of r.calls) for (const p of call.positions) times[p]++;
      for (let row = 0; row < length; row++) {
        if (row >= fillStart && row < fillEnd) {
          assert.equal(times[row], r.calls.length, `fill row ${row} every call`);
        } else if (shifted && row === fillStart - 1) {
          // computed while position P is masked, and once more to be cached
          assert.equal(times[row], Math.min(r.commitStep[0] + 2, r.calls.length), 'the last prefix row');
        } else {
          assert.equal(times[row], 1, `prompt row ${row} once`);
        }
      }
      r.calls.slice(1).forEach((call) => assert.equal(call.context + call.positions.length, length));
    });

    it("greedy (random order): each cached call is exactly last step's commits + this step's + window + predictor rows", async () => {
      const canvas = CANVASES[0];
      const window = 2;
      const req = request(canvas, { cache: 'greedy', greedyOrder: 'random', refreshInterval: 4, window, schedule: 'blocks', blockLength: 8, steps: 16, seed: 9 });
      const r = await run(model(), loaded.spec, req);
      const length = canvas.prefix + canvas.fill + canvas.suffix;
      const committedAt = (step: number) => r.commitStep.flatMap((s, i) => (s === step ? [canvas.prefix + i] : []));
      // The commits follow the request's random priorities, block by block.
      const random = new KeyedRandom(9);
      const byPriority = (block: number) => range(8).map((i) => canvas.prefix + block * 8 + i)
        .sort((a, b) => randomPriority(random, b) - randomPriority(random, a) || a - b);
      assert.deepEqual([...range(8).map((s) => committedAt(s)).flat()], byPriority(0));
      r.calls.forEach((call, step) => {
        if (step % 4 === 0) {
          assert.deepEqual(call.positions, range(length));
          return;
        }
        const chosen = new Set<number>([...committedAt(step - 1), ...committedAt(step)]);
        for (const p of sorted(committedAt(step))) {
          let added = 0;
          for (let d = 1; added < window && (p - d >= 0 || p + d < length); d++) {
            for (const row of [p - d, p + d]) {
              if (added < window && row >= 0 && row < length && !chosen.has(row)) {
                chosen.add(row);
                added++;
              }
            }
          }
        }
        for (const p of committedAt(step)) chosen.add(predictorRow(p, shifted));
        assert.deepEqual(call.positions, sorted(chosen), `step ${step}`);
        assert.equal(call.context, length - chosen.size);
      });
    });

    it('greedy (confidence order): cached calls hold the commits of this and the last step and stay small', async () => {
      const canvas = CANVASES[0];
      const window = 2;
      const req = request(canvas, { cache: 'greedy', greedyOrder: 'confidence', refreshInterval: 4, window, schedule: 'blocks', blockLength: 8, steps: 16 });
      const r = await run(model(), loaded.spec, req);
      const committedAt = (step: number) => r.commitStep.flatMap((s, i) => (s === step ? [canvas.prefix + i] : []));
      r.calls.forEach((call, step) => {
        if (step % 4 === 0) return;
        for (const p of [...committedAt(step), ...committedAt(step - 1)]) assert.ok(call.positions.includes(p), `step ${step} row ${p}`);
        const firstOfBlock = step === 8; // the second block starts at a cached step and queries all of it once
        if (!firstOfBlock) assert.ok(call.positions.length <= 1 + 1 * (1 + window) + 2, `step ${step}: ${call.positions.length} rows`);
      });
    });

    // -------------------------------------------------------------------------------------------------
    // The logit shift, and the prompt never changing.

    it(shifted ? 'reads row p-1 for position p' : 'reads row p for position p', async () => {
      for (const canvas of CANVASES) {
        const req = request(canvas, { cache: 'none', schedule: 'blocks', blockLength: 4, steps: canvas.fill });
        const r = await run(model(), loaded.spec, req);
        r.calls.forEach((call, step) => {
          const block = Math.floor(step / 4);
          const masked = range(4).map((i) => canvas.prefix + block * 4 + i).filter((p) => r.commitStep[p - canvas.prefix] >= step);
          const expected = sorted(new Set(masked.map((p) => predictorRow(p, shifted))));
          assert.deepEqual(sorted(call.read.map((q) => call.positions[q])), expected, `${canvas.name} step ${step}`);
        });
      }
    });

    it(`the first fill token is the argmax of row ${shifted ? 'P-1 (the last prefix token)' : 'P'} of a full pass`, async () => {
      const prefixIds = tokens(10, 3);
      const suffixIds = tokens(4, 4);
      const r = await run(model(), loaded.spec, { prefixIds, suffixIds, length: 1, options: { ...DEFAULT_DECODING_OPTIONS, cache: 'none' } });
      const ids = [...prefixIds, loaded.spec.tokens.mask, ...suffixIds];
      const full = await model().run({
        inputIds: BigInt64Array.from(ids, BigInt),
        positionIds: BigInt64Array.from(ids.map((_, i) => BigInt(i))),
        attentionBias: new Float32Array(ids.length * ids.length),
        logitsIndex: BigInt64Array.from([9n, 10n]),
        pastKeys: Array.from({ length: model().numLayers }, () => new Float32Array(0)),
        pastValues: Array.from({ length: model().numLayers }, () => new Float32Array(0)),
        contextLength: 0,
      });
      const v = loaded.spec.vocabSize;
      const logits = (full.predictions as { logits: Float32Array }).logits;
      const argmax = (row: number) => {
        let best = 0;
        for (let t = 1; t < v; t++) if (logits[row * v + t] > logits[row * v + best]) best = t;
        return best;
      };
      assert.notEqual(argmax(0), argmax(1), 'rows 9 and 10 must predict different tokens for this check to mean anything');
      assert.equal(r.finalFill[0], argmax(shifted ? 0 : 1));
    });

    it('never changes the prefix or the suffix, in any mode', async () => {
      for (const canvas of CANVASES) {
        const req = request(canvas, {});
        const original = [...req.prefixIds, ...new Array(canvas.fill).fill(-1), ...req.suffixIds];
        for (const options of [
          { cache: 'none' }, { cache: 'decode', refreshInterval: 3 }, { cache: 'greedy', refreshInterval: 3, greedyOrder: 'random' },
          { cache: 'greedy', refreshInterval: 3 }, { cache: 'prefill', refreshInterval: 0 },
        ] as Partial<DecodingOptions>[]) {
          const r = await run(model(), loaded.spec, request(canvas, { ...options, blockLength: 4, steps: 8 }));
          for (const call of r.calls) {
            call.positions.forEach((p, i) => {
              if (original[p] !== -1) assert.equal(call.ids[i], original[p], `${options.cache}: position ${p}`);
            });
          }
        }
      }
    });

    // -------------------------------------------------------------------------------------------------
    // Schedules, sampling, ending, cancellation, bad requests.

    it('commits per step follow get_num_transfer_tokens, Dream timesteps, and the threshold rule', async () => {
      const canvas = CANVASES[0];
      const perStep = (r: Run) => r.progress.map((_, s) => r.commitStep.filter((c) => c === s).length);
      const blocks = await run(model(), loaded.spec, request(canvas, { cache: 'decode', schedule: 'blocks', blockLength: 8, steps: 6 }));
      assert.deepEqual(perStep(blocks), [...numTransferTokens(8, 3), ...numTransferTokens(8, 3)]);
      const timesteps = await run(model(), loaded.spec, request(canvas, { cache: 'decode', schedule: 'timesteps', blockLength: 16, steps: 16 }));
      assert.deepEqual(perStep(timesteps), dreamTransferCounts(16, 16).filter((k) => k > 0));
      const threshold = await run(model(), loaded.spec, request(canvas, { cache: 'none', schedule: 'threshold', blockLength: 8, threshold: 0.2 }));
      const counts = perStep(threshold);
      assert.ok(counts.every((k) => k >= 1));
      assert.equal(counts.reduce((a, b) => a + b, 0), canvas.fill);
      threshold.progress.forEach((p, s) => {
        const committed = threshold.commitStep.flatMap((c, i) => (c === s ? [p.confidence[i]] : []));
        if (committed.length > 1) assert.ok(committed.every((c) => c >= 0.2), `step ${s}: ${committed}`);
      });
      assert.equal(threshold.progress[threshold.progress.length - 1].totalSteps, threshold.progress.length);
    });

    it('is deterministic at temperature 0 and reproducible per seed above it', async () => {
      const canvas = CANVASES[0];
      const at = async (temperature: number, seed: number) =>
        (await run(model(), loaded.spec, request(canvas, { cache: 'decode', temperature, seed, blockLength: 8, steps: 16 }))).finalFill;
      assert.deepEqual(await at(0, 1), await at(0, 2));
      assert.deepEqual(await at(1.5, 5), await at(1.5, 5));
      assert.notDeepEqual(await at(1.5, 5), await at(1.5, 6));
      assert.notDeepEqual(await at(1.5, 5), await at(0, 5));
    });

    it('reports progress after every step with masks and NaN confidence where still masked', async () => {
      const canvas = CANVASES[0];
      const r = await run(model(), loaded.spec, request(canvas, { cache: 'none', blockLength: 8, steps: 8 }));
      assert.equal(r.progress.length, 8);
      r.progress.forEach((p, s) => {
        assert.equal(p.step, s + 1);
        assert.equal(p.totalSteps, 8);
        p.fill.forEach((t, i) => assert.equal(t === loaded.spec.tokens.mask, Number.isNaN(p.confidence[i])));
        assert.equal(p.fill.filter((t) => t === loaded.spec.tokens.mask).length, canvas.fill - 2 * (s + 1));
      });
    });

    it('trims the fill at the first end token and stops once everything before it is committed', async () => {
      const canvas = CANVASES[0];
      const options = { cache: 'none' as const, blockLength: 16, steps: 16 };
      const full = await run(model(), loaded.spec, request(canvas, options));
      // Declare the token the model put at fill index 5 an end-of-text token (the spec is just data).
      const end = full.finalFill[5];
      const first = full.finalFill.indexOf(end);
      const spec = { ...loaded.spec, tokens: { ...loaded.spec.tokens, eos: [end] } };
      const trimmed = await run(model(), spec, { ...request(canvas, options), runToCompletion: false });
      assert.deepEqual(trimmed.result.fill, full.finalFill.slice(0, first));
      assert.equal(trimmed.result.endedEarly, true);
      const decidedAt = Math.max(...full.commitStep.slice(0, first + 1)) + 1;
      assert.equal(trimmed.result.stats.steps, decidedAt);
      assert.equal(trimmed.progress[trimmed.progress.length - 1].totalSteps, decidedAt);
      assert.equal(full.result.endedEarly, full.finalFill.some((t) => loaded.spec.tokens.eos.includes(t) || t === loaded.spec.tokens.pad));
    });

    it('stops between steps when cancelled', async () => {
      const recording = new RecordingModel(model());
      let steps = 0;
      await assert.rejects(
        denoise(recording, loaded.spec, request(CANVASES[0], { cache: 'decode', blockLength: 8, steps: 16 }), {
          onProgress: () => steps++,
          isCancelled: () => steps >= 3,
        }),
        CancelledError,
      );
      assert.equal(steps, 3);
      assert.equal(recording.calls.length, 3);
    });

    it('compareWithNone: agreement and rows relative to none', async () => {
      const canvas = CANVASES[0];
      const req = request(canvas, { blockLength: 16, steps: 16 });
      const result = await compareWithNone(model(), loaded.spec, req, [
        { cache: 'decode', refreshInterval: 1 },
        { cache: 'prefill', refreshInterval: 0 },
      ]);
      assert.equal(result.none.options.cache, 'none');
      assert.equal(result.none.fill.length, canvas.fill);
      const [exact, prefill] = result.modes;
      assert.equal(exact.agreementVsNone, 1);
      assert.equal(exact.rowsRatioVsNone, 1);
      assert.deepEqual(exact.fill, result.none.fill);
      assert.equal(prefill.rowsRatioVsNone, prefill.stats.rowsComputed / result.none.stats.rowsComputed);
      assert.ok(prefill.rowsRatioVsNone < 1);
      assert.equal(prefill.agreementVsNone, agreement(prefill.fill, result.none.fill));
      assert.equal(agreement([1, 2, 3, 4], [1, 0, 3, 0]), 0.5);
      // A fill that ended early disagrees where the other goes on, and agrees where both have ended.
      assert.equal(agreement([1], [1, 2]), 0.5);
      assert.equal(agreement([1], [1], 4), 1);
    });

    // Length and canvas size are checked at the engine's door: denoiser-options and server tests.
    it('refuses token ids outside the vocabulary', async () => {
      const base = request(CANVASES[0], {});
      await assert.rejects(denoise(model(), loaded.spec, { ...base, suffixIds: [5, 320] }), /suffix holds token id 320, outside the vocabulary 0..319/);
    });
  });
}

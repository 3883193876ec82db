/**
 * Fast-dLLM's block caches (`block-prefix`, `block-dual`) on real onnxruntime step graphs of tiny synthetic
 * models, both families: refreshed every step they are `none` exactly; otherwise each block starts with a full
 * pass and its other steps compute exactly the rows Fast-dLLM computes (plus the predictor row of the block's
 * first position for the shifted family).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import type { StepFeeds, StepModel, StepResult } from '../../engine/graph/stepContract';
import type { VariantSpec } from '../../engine/model/modelFolder';
import { writeSyntheticModel, type SyntheticPreset } from '../../engine/model/synthetic';
import { loadStepModel, type OnnxStepModel } from '../../engine/runtime/onnxStepModel';
import { denoise, type DenoiseRequest, type DenoiseSpec } from '../../engine/denoiser/denoiser';
import { resolveDecodingOptions } from '../../engine/denoiser/options';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import { tileBlocks } from '../../engine/denoiser/schedule';
import type { DecodingOptions } from '../../common/decodingOptions';
import { temporaryDir } from './graphTestSupport';

const VARIANT: VariantSpec = { precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0 };

interface Call {
  positions: number[];
  context: number;
}

interface Run {
  calls: Call[];
  fill: number[];
  /** Per fill index, the 0-based step that committed it. */
  commitStep: number[];
}

async function run(model: StepModel, spec: DenoiseSpec, request: DenoiseRequest): Promise<Run> {
  const calls: Call[] = [];
  const recording: StepModel = {
    numLayers: model.numLayers,
    numKvHeads: model.numKvHeads,
    headDim: model.headDim,
    cacheDtype: model.cacheDtype,
    head: model.head,
    run(feeds: StepFeeds): Promise<StepResult> {
      calls.push({ positions: Array.from(feeds.positionIds, Number), context: feeds.contextLength });
      return model.run(feeds);
    },
  };
  const commitStep = new Array<number>(request.length).fill(-1);
  let fill: number[] = [];
  await denoise(recording, spec, request, {
    onProgress: (p) => {
      fill = Array.from(p.fill);
      fill.forEach((t, i) => {
        if (t !== spec.tokens.mask && commitStep[i] === -1) commitStep[i] = p.step - 1;
      });
    },
  });
  return { calls, fill, commitStep };
}

const tokens = (n: number, salt: number) => Array.from({ length: n }, (_, i) => (i * 29 + salt * 13 + 3) % 256);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

const CANVAS = { prefix: 10, fill: 20, suffix: 6 };

function request(options: Partial<DecodingOptions>, canvas = CANVAS): DenoiseRequest {
  return {
    prefixIds: tokens(canvas.prefix, 1),
    suffixIds: tokens(canvas.suffix, 2),
    length: canvas.fill,
    options: { ...DEFAULT_DECODING_OPTIONS, ...options },
    runToCompletion: true,
  };
}

const SETTINGS: { name: string; options: Partial<DecodingOptions> }[] = [
  { name: 'threshold 0.5 in blocks of 8 (Fast-dLLM)', options: { schedule: 'threshold', blockLength: 8, threshold: 0.5 } },
  { name: 'threshold 0.9 in blocks of 4, entropy', options: { schedule: 'threshold', blockLength: 4, threshold: 0.9, algorithm: 'entropy' } },
  { name: 'blocks of 5, two tokens a step', options: { schedule: 'blocks', blockLength: 5, steps: 10 } },
];

for (const preset of ['tiny-dream', 'tiny-llada'] as SyntheticPreset[]) {
  describe(`Fast-dLLM block caches on ${preset} (real onnxruntime)`, function () {
    this.timeout(120_000);
    let dir: string;
    let model: OnnxStepModel;
    let spec: DenoiseSpec;

    before(async () => {
      dir = temporaryDir(`reuse-block-${preset}`);
      const manifest = await writeSyntheticModel(dir, { preset, seed: 11, variants: [VARIANT] });
      const { architecture: arch, tokens: specials } = manifest;
      spec = { tokens: specials, logitShift: arch.logitShift, vocabSize: arch.vocabSize };
      model = (await loadStepModel(dir, manifest, { device: 'cpu' })).model;
    });

    after(async () => {
      await model.release();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    for (const setting of SETTINGS) {
      it(`${setting.name}: refreshed every step, block-prefix and block-dual give the tokens of none`, async () => {
        const base = await run(model, spec, request({ ...setting.options, cache: 'none' }));
        assert.ok(base.fill.every((t) => t !== spec.tokens.mask));
        for (const cache of ['block-prefix', 'block-dual'] as const) {
          const cached = await run(model, spec, request({ ...setting.options, cache, refreshInterval: 1 }));
          assert.deepEqual(cached.fill, base.fill, cache);
          assert.deepEqual(cached.commitStep, base.commitStep, cache);
          assert.ok(cached.calls.every((c) => c.context === 0 && c.positions.length === base.calls[0].positions.length));
        }
      });
    }

    /** The block of each step, from the positions the step committed (every step commits in its block only). */
    function blockOfStep(r: Run, blockLength: number): { index: number; start: number; end: number }[] {
      const blocks = tileBlocks(CANVAS.prefix, CANVAS.fill, blockLength);
      return r.calls.map((_, step) => {
        const fillIndex = r.commitStep.indexOf(step);
        assert.notEqual(fillIndex, -1, `step ${step} committed nothing`);
        return blocks.find((b) => CANVAS.prefix + fillIndex >= b.start && CANVAS.prefix + fillIndex < b.end)!;
      });
    }

    for (const [cache, refreshInterval] of [['block-prefix', 0], ['block-dual', 0], ['block-prefix', 2], ['block-dual', 3]] as const) {
      it(`${cache}, refresh ${refreshInterval}: full pass at block starts${refreshInterval ? ` and every ${refreshInterval} steps into a block` : ''}, the Fast-dLLM rows otherwise`, async () => {
        const blockLength = 8;
        const r = await run(model, spec, request({ schedule: 'blocks', blockLength, steps: 20, cache, refreshInterval }));
        const length = CANVAS.prefix + CANVAS.fill + CANVAS.suffix;
        const blocks = blockOfStep(r, blockLength);
        let firstStepOfBlock = 0;
        r.calls.forEach((call, step) => {
          const block = blocks[step];
          if (step === 0 || blocks[step - 1].index !== block.index) firstStepOfBlock = step;
          const into = step - firstStepOfBlock;
          if (into === 0 || (refreshInterval > 0 && into % refreshInterval === 0)) {
            assert.deepEqual(call.positions, range(0, length), `step ${step}: full pass`);
            assert.equal(call.context, 0);
            return;
          }
          const rows = new Set(range(block.start, cache === 'block-prefix' ? length : block.end));
          // The shifted family reads the block's first position from the row before it while it is masked.
          const firstMasked = r.commitStep[block.start - CANVAS.prefix] >= step;
          if (spec.logitShift && firstMasked) rows.add(block.start - 1);
          const expected = [...rows].sort((a, b) => a - b);
          assert.deepEqual(call.positions, expected, `step ${step}`);
          assert.equal(call.context, length - expected.length, `step ${step}: every other row comes from the cache`);
        });
        assert.ok(r.fill.every((t) => t !== spec.tokens.mask));
      });
    }

    it('the block modes default to refreshing at block starts only', () => {
      for (const cache of ['block-prefix', 'block-dual'] as const) {
        assert.equal(resolveDecodingOptions({}, { cache }, 16, spec.logitShift ? 'dream' : 'llada').refreshInterval, 0);
      }
    });
  });
}

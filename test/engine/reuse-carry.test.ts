/**
 * Full-depth prompt reuse across keystrokes (carriedPromptModel.ts, promptCarry.ts):
 * - the suffix shift is exact: RoPE attention depends on relative positions only, so a canvas moved by d
 *   positions has every layer's keys equal to the unmoved canvas' keys rotated by d (shiftKeyPositions) and the
 *   same values, within float tolerance, on real onnxruntime;
 * - what is carried: only rows whose tokens equal the request's, at the same position (prefix) or moved with
 *   the cursor (suffix): edits before, at and after the cursor cut the carried rows there; another model,
 *   other decoding settings or another document carry nothing;
 * - a request that repeats its document's last canvas gets the tokens of the request without reuse, computing
 *   only the rows the carry leaves it.
 */
import { strict as assert } from 'node:assert';
import type { ModelArchitecture } from '../../engine/architecture/architecture';
import { denoise, type DenoiseRequest } from '../../engine/denoiser/denoiser';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import { shiftKeyPositions } from '../../engine/reuse/kvRows';
import { carryBudgetTokens, planCarry, PromptCarry, type CarryWindows } from '../../engine/reuse/promptCarry';
import type { StoredEntry } from '../../engine/reuse/prefixStore';
import { fromCache, maxAbsDiff, stepFeeds } from './graphTestSupport';
import { byteTokens, FP16_STATS, FP32_DECOMPOSED, FP32_GQA, segmentedFixture, type SegmentedFixture } from './reuseTestSupport';

const FP32_TOLERANCE = 1e-4;
const NO_WINDOWS: CarryWindows = { prefix: 0, suffix: 0 };
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('carried prompt K/V: the suffix shift (real onnxruntime)', function () {
  this.timeout(120_000);
  let fixture: SegmentedFixture;
  before(async () => {
    fixture = await segmentedFixture('tiny-dream', [FP32_GQA, FP32_DECOMPOSED, FP16_STATS]);
  });
  after(async () => fixture?.release());

  it('re-rotated keys equal the keys computed at the new positions, in every layer (fp32 and fp16, both lowerings)', async () => {
    const ids = byteTokens(10, 3);
    for (const { variant, monolithic } of fixture.variants) {
      const { numLayers, numKvHeads, headDim } = monolithic;
      // fp16 keys carry about 3 significant digits (the depth-wise tests' 0.05); the rotation is done in float64.
      const tolerance = variant.cacheDtype === 'float16' ? 0.05 : FP32_TOLERANCE;
      const at = async (start: number) => monolithic.run(stepFeeds(monolithic, { ids, positions: range(start, start + ids.length), read: [0] }));
      const base = await at(5);
      for (const delta of [1, 7, 40, -3]) {
        const moved = await at(5 + delta);
        for (let l = 0; l < numLayers; l++) {
          const rotated = shiftKeyPositions(base.newKeys[l], numKvHeads, ids.length, headDim, delta, fixture.arch.ropeTheta);
          const keyError = maxAbsDiff(fromCache(rotated), fromCache(moved.newKeys[l]));
          assert.ok(keyError < tolerance, `${variant.file}, shift ${delta}, layer ${l}: keys differ by ${keyError}`);
          assert.ok(maxAbsDiff(fromCache(base.newValues[l]), fromCache(moved.newValues[l])) < tolerance, `${variant.file}, layer ${l}: values`);
        }
      }
    }
  });
});

const GEOMETRY = { numLayers: 2, numKvHeads: 2, headDim: 4, hiddenSize: 8 };
const ARCH = { ...GEOMETRY, logitShift: true, ropeTheta: 10000 } as ModelArchitecture;

/** An entry whose stored values encode (part, layer, head, row), so a test can tell rows apart. */
function entry(prefixIds: number[], suffixIds: number[], suffixStart: number): StoredEntry {
  const { numLayers, numKvHeads: heads, headDim: dim } = GEOMETRY;
  const rows = (n: number, tag: number) =>
    Array.from({ length: numLayers }, (_, l) => Float32Array.from({ length: heads * n * dim }, (_, i) => tag * 1e6 + l * 1e4 + Math.floor(i / dim)));
  return {
    prefix: { ids: prefixIds, keys: rows(prefixIds.length, 1), values: rows(prefixIds.length, 2), hidden: new Map() },
    suffix: suffixIds.length ? { ids: suffixIds, start: suffixStart, keys: rows(suffixIds.length, 3), values: rows(suffixIds.length, 4) } : null,
  };
}

describe('carried prompt K/V: what a request carries', () => {
  const PREFIX = byteTokens(30, 1);
  const SUFFIX = byteTokens(12, 2);
  const FILL = 8;
  const stored = entry(PREFIX, SUFFIX, PREFIX.length + FILL);
  const plan = (prefixIds: number[], suffixIds: number[], length = FILL, arch = ARCH, windows = NO_WINDOWS) =>
    planCarry(stored, { prefixIds, suffixIds, length }, arch, windows);

  it('the same canvas again: every prompt row but the predictor of the first fill position', () => {
    const { setup, stats } = plan(PREFIX, SUFFIX);
    assert.equal(stats.sharedTokens, PREFIX.length - 1, "a shifted model's last prefix row stays in the canvas");
    assert.equal(stats.carriedSuffixTokens, SUFFIX.length);
    assert.deepEqual(setup.tailIds, PREFIX.slice(-1));
    assert.equal(setup.carriedSuffix!.keys[0], stored.suffix!.keys[0], 'keys not moved are the stored ones');
    assert.equal(plan(PREFIX, SUFFIX, FILL, { ...ARCH, logitShift: false }).stats.sharedTokens, PREFIX.length);
  });

  it('typing at the cursor: the prefix up to the cursor is carried, the suffix moves and its keys are rotated by the tokens typed', () => {
    const typed = [...PREFIX, 77, 78, 79];
    const { setup, stats } = plan(typed, SUFFIX);
    assert.equal(stats.sharedTokens, PREFIX.length);
    assert.deepEqual(setup.tailIds, [77, 78, 79]);
    assert.equal(stats.carriedSuffixTokens, SUFFIX.length);
    assert.equal(setup.carriedSuffix!.start, typed.length + FILL);
    const { numKvHeads, headDim } = GEOMETRY;
    for (let l = 0; l < GEOMETRY.numLayers; l++) {
      const expected = shiftKeyPositions(stored.suffix!.keys[l], numKvHeads, SUFFIX.length, headDim, 3, ARCH.ropeTheta);
      assert.ok(maxAbsDiff(setup.carriedSuffix!.keys[l], expected) === 0, `layer ${l}: keys rotated by 3 positions`);
      assert.equal(setup.carriedSuffix!.values[l], stored.suffix!.values[l], 'values do not move');
    }
    // Deleting before the cursor moves the suffix back.
    const deleted = plan(PREFIX.slice(0, 27), SUFFIX);
    assert.equal(deleted.stats.sharedTokens, 26);
    assert.equal(deleted.setup.carriedSuffix!.start, 27 + FILL);
    // A longer fill moves the suffix too.
    assert.equal(plan(PREFIX, SUFFIX, 16).setup.carriedSuffix!.start, PREFIX.length + 16);
  });

  it('an edit before the cursor ends the carried prefix at the edit; the rows after it are computed', () => {
    for (const at of [0, 5, 17, 28]) {
      const edited = [...PREFIX];
      edited[at] = 300;
      const { setup, stats } = plan(edited, SUFFIX);
      assert.equal(stats.sharedTokens, at, `edit at ${at}`);
      assert.deepEqual(setup.tailIds, edited.slice(at));
      const keys = setup.shared?.keys[1];
      if (at > 0) assert.equal(keys![(at - 1) * GEOMETRY.headDim], 1e6 + 1e4 + (at - 1), 'the carried rows are the stored rows 0..edit-1');
      else assert.equal(setup.shared, null);
    }
  });

  it('an edit after the cursor ends the carried suffix at the edit', () => {
    for (const at of [0, 4, 11]) {
      const edited = [...SUFFIX];
      edited[at] = 301;
      const { setup, stats } = plan(PREFIX, edited);
      assert.equal(stats.carriedSuffixTokens, at, `edit at suffix row ${at}`);
      assert.equal(stats.sharedTokens, PREFIX.length - 1, 'the prefix is still carried');
      assert.deepEqual(setup.carriedSuffix?.ids ?? [], SUFFIX.slice(0, at));
    }
    // A suffix cut shorter (the context window moved) still carries its rows.
    assert.equal(plan(PREFIX, SUFFIX.slice(0, 5)).stats.carriedSuffixTokens, 5);
  });

  it('recomputes the rows next to the cursor: the last prefix rows and the first suffix rows of the windows', () => {
    const typed = [...PREFIX, 77];
    const { setup, stats } = plan(typed, SUFFIX, FILL, ARCH, { prefix: 8, suffix: 3 });
    assert.equal(stats.sharedTokens, typed.length - 8);
    assert.deepEqual(setup.tailIds, typed.slice(-8));
    assert.equal(stats.carriedSuffixTokens, SUFFIX.length - 3);
    assert.equal(setup.carriedSuffixFrom, 3);
    assert.deepEqual(setup.carriedSuffix!.ids, SUFFIX.slice(3));
    assert.equal(setup.carriedSuffix!.start, typed.length + FILL + 3);
    const { numKvHeads, headDim } = GEOMETRY;
    const rowsFrom3 = (kv: Float32Array) => Float32Array.from({ length: numKvHeads * (SUFFIX.length - 3) * headDim }, (_, i) => {
      const h = Math.floor(i / ((SUFFIX.length - 3) * headDim));
      const rest = i % ((SUFFIX.length - 3) * headDim);
      return kv[h * SUFFIX.length * headDim + 3 * headDim + rest];
    });
    assert.deepEqual(setup.carriedSuffix!.values[1], rowsFrom3(stored.suffix!.values[1] as Float32Array), 'stored rows 3.. of each head');
    const expectedKeys = shiftKeyPositions(rowsFrom3(stored.suffix!.keys[1] as Float32Array), numKvHeads, SUFFIX.length - 3, headDim, 1, ARCH.ropeTheta);
    assert.ok(maxAbsDiff(setup.carriedSuffix!.keys[1], expectedKeys) === 0, 'rotated by the one token typed');
    // Windows wider than what matches carry nothing there.
    assert.equal(plan(typed, SUFFIX, FILL, ARCH, { prefix: 40, suffix: 20 }).stats.sharedTokens, 0);
    assert.equal(plan(typed, SUFFIX, FILL, ARCH, { prefix: 40, suffix: 20 }).setup.carriedSuffix, null);
  });

  it('sizes its store by the K/V a token takes (no hidden states)', () => {
    const qwen05b = { ...ARCH, numLayers: 24, numKvHeads: 2, headDim: 64 };
    assert.equal(carryBudgetTokens(qwen05b, 'float32'), Math.floor((256 * 1024 ** 2) / (4 * 2 * 24 * 2 * 64)));
    assert.equal(carryBudgetTokens(ARCH, 'float32'), 16384, 'capped');
  });
});

for (const preset of ['tiny-dream', 'tiny-llada'] as const) {
  describe(`carried prompt K/V through PromptCarry on ${preset} (real onnxruntime)`, function () {
    this.timeout(120_000);
    let fixture: SegmentedFixture;
    before(async () => {
      fixture = await segmentedFixture(preset, [FP32_GQA]);
    });
    after(async () => fixture?.release());

    const PREFIX = byteTokens(20, 7);
    const SUFFIX = byteTokens(9, 8);
    const OPTIONS = { ...DEFAULT_DECODING_OPTIONS, cache: 'prefill' as const, refreshInterval: 0, blockLength: 8, steps: 8 };
    const request = (prefixIds: number[], suffixIds = SUFFIX, options = OPTIONS): DenoiseRequest => ({ prefixIds, suffixIds, length: 8, options });

    it('a request repeating the last canvas gets the tokens of no reuse, computing only the tail and the fill', async () => {
      const { monolithic, variant } = fixture.variants[0];
      const carry = new PromptCarry(monolithic, fixture.arch, variant.file, undefined, NO_WINDOWS);
      const first = await carry.denoise(fixture.spec, request(PREFIX), 'a.ts');
      assert.deepEqual([first.carry.sharedTokens, first.carry.carriedSuffixTokens], [0, 0], 'nothing stored yet');
      const again = await carry.denoise(fixture.spec, request(PREFIX), 'a.ts');
      const cold = await denoise(monolithic, fixture.spec, request(PREFIX));
      assert.deepEqual(again.result.fill, cold.fill);
      assert.deepEqual(first.result.fill, cold.fill);
      const tail = fixture.arch.logitShift ? 1 : 0;
      assert.equal(again.carry.sharedTokens, PREFIX.length - tail);
      assert.equal(again.carry.carriedSuffixTokens, SUFFIX.length);
      // Step 0 computes the tail and the fill instead of the whole canvas; later steps the same rows as without reuse.
      assert.equal(again.result.stats.rowsPerCall[0], tail + 8);
      assert.deepEqual(again.result.stats.rowsPerCall.slice(1), cold.stats.rowsPerCall.slice(1));
    });

    it('with windows, a repeated canvas computes the windows again and still gets the tokens of no reuse', async () => {
      const { monolithic, variant } = fixture.variants[0];
      const carry = new PromptCarry(monolithic, fixture.arch, variant.file, undefined, { prefix: 5, suffix: 2 });
      await carry.denoise(fixture.spec, request(PREFIX), 'a.ts');
      const again = await carry.denoise(fixture.spec, request(PREFIX), 'a.ts');
      assert.deepEqual([again.carry.sharedTokens, again.carry.carriedSuffixTokens], [PREFIX.length - 5, SUFFIX.length - 2]);
      assert.equal(again.result.stats.rowsPerCall[0], 5 + 8 + 2);
      assert.deepEqual(again.result.fill, (await denoise(monolithic, fixture.spec, request(PREFIX))).fill);
      // The harvest keeps the whole suffix: computed window rows and carried rows alike.
      const next = await carry.denoise(fixture.spec, request([...PREFIX, 60]), 'a.ts');
      assert.equal(next.carry.carriedSuffixTokens, SUFFIX.length - 2);
    });

    it('carries across typing and edits, and nothing across models, settings or documents', async () => {
      const { monolithic, variant } = fixture.variants[0];
      const carry = new PromptCarry(monolithic, fixture.arch, variant.file, undefined, NO_WINDOWS);
      const other = new PromptCarry(monolithic, fixture.arch, `${variant.file}#other`, undefined, NO_WINDOWS);
      const tail = fixture.arch.logitShift ? 1 : 0;
      await carry.denoise(fixture.spec, request(PREFIX), 'a.ts');
      const typed = await carry.denoise(fixture.spec, request([...PREFIX, 40, 41]), 'a.ts');
      assert.equal(typed.carry.sharedTokens, PREFIX.length, 'typing at the cursor carries the prefix before it');
      assert.equal(typed.carry.carriedSuffixTokens, SUFFIX.length, 'and the suffix, moved');
      const before = [...PREFIX, 40, 41];
      before[6] = 299;
      const editedBefore = await carry.denoise(fixture.spec, request(before), 'a.ts');
      assert.equal(editedBefore.carry.sharedTokens, 6);
      const editedAfter = await carry.denoise(fixture.spec, request(before, [...SUFFIX.slice(0, 3), 298, ...SUFFIX.slice(4)]), 'a.ts');
      assert.equal(editedAfter.carry.sharedTokens, before.length - tail);
      assert.equal(editedAfter.carry.carriedSuffixTokens, 3);
      assert.equal((await carry.denoise(fixture.spec, request(before), 'b.ts')).carry.sharedTokens, 0, 'another document');
      assert.equal((await carry.denoise(fixture.spec, request(before, SUFFIX, { ...OPTIONS, steps: 4 }), 'a.ts')).carry.sharedTokens, 0, 'other settings');
      assert.equal((await other.denoise(fixture.spec, request(before), 'a.ts')).carry.sharedTokens, 0, 'another model');
    });

    it('a warm-up stores what the first call would compute: the next request finds its prompt carried', async () => {
      const { monolithic, segments, variant } = fixture.variants[0];
      const tail = fixture.arch.logitShift ? 1 : 0;
      for (const layered of [false, true]) {
        const carry = new PromptCarry(monolithic, fixture.arch, variant.file, undefined, NO_WINDOWS);
        const warm = await carry.warm(fixture.spec, request(PREFIX), 'a.ts', layered ? { segments, isCancelled: () => false } : undefined);
        assert.equal(warm.rowsComputed, PREFIX.length + 8 + SUFFIX.length);
        const next = await carry.denoise(fixture.spec, request(PREFIX), 'a.ts');
        assert.equal(next.carry.sharedTokens, PREFIX.length - tail);
        assert.equal(next.carry.carriedSuffixTokens, SUFFIX.length);
        assert.deepEqual(next.result.fill, (await denoise(monolithic, fixture.spec, request(PREFIX))).fill, `layered ${layered}`);
      }
    });

    it('a warm-up cancelled between layers leaves the store as it was', async () => {
      const { monolithic, segments, variant } = fixture.variants[0];
      const carry = new PromptCarry(monolithic, fixture.arch, variant.file, undefined, NO_WINDOWS);
      await carry.denoise(fixture.spec, request(PREFIX), 'a.ts');
      const storedBefore = carry.store.tokens;
      let checks = 0;
      await assert.rejects(
        carry.warm(fixture.spec, request([...PREFIX, 50]), 'a.ts', { segments, isCancelled: () => ++checks > 2 }),
        { name: 'PromptComputationCancelled' },
      );
      assert.equal(checks, 3, 'stopped at the third layer boundary');
      assert.equal(carry.store.tokens, storedBefore);
      const next = await carry.denoise(fixture.spec, request([...PREFIX, 50]), 'a.ts');
      assert.equal(next.carry.sharedTokens, PREFIX.length, 'the entry the warm-up would have replaced is still there');
    });
  });
}

/**
 * The cross-request prefix store and the planning of a request against it: an entry is never used for a
 * request whose prefix tokens differ (an edit before the cursor, another document, another model or
 * settings), the store stays within its token budget under many documents, and the depth profile decides
 * how deep the shared rows are reused. End to end on a real tiny model through PrefixReuser.
 */
import { strict as assert } from 'node:assert';
import type { ModelArchitecture } from '../../engine/architecture/architecture';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import { DEPTH_PROFILE_FORMAT, safeDepthFor, usedDepths, type DepthProfile } from '../../engine/reuse/depthProfile';
import { defaultReuseTuning, planReuse, PrefixReuser } from '../../engine/reuse/prefixReuse';
import type { ReusablePrefix } from '../../engine/reuse/reuseHarvest';
import { entryTokens, PrefixStore, sharedPrefixLength, type PrefixStoreKey, type StoredEntry } from '../../engine/reuse/prefixStore';
import { seededRandom } from '../../engine/prepare/sourceTexts';
import { byteTokens, FP32_GQA, segmentedFixture, type SegmentedFixture } from './reuseTestSupport';

const GEOMETRY = { numLayers: 4, numKvHeads: 2, headDim: 4, hiddenSize: 8 };
const ARCH = { ...GEOMETRY, logitShift: true, ropeTheta: 10000 } as ModelArchitecture;
const DEFAULT_REUSE_TUNING = defaultReuseTuning(ARCH, 'float32', 2);

/** An entry whose every stored value encodes (layer, head, row) so a test can tell rows apart. */
function entry(ids: number[], suffixIds: number[] = [], depths: number[] = [1, 2]): StoredEntry {
  const { numLayers, numKvHeads: heads, headDim: dim, hiddenSize } = GEOMETRY;
  const rows = (n: number, tag: number) =>
    Array.from({ length: numLayers }, (_, l) => Float32Array.from({ length: heads * n * dim }, (_, i) => tag * 1e6 + l * 1e4 + Math.floor(i / dim)));
  const prefix: ReusablePrefix = {
    ids,
    keys: rows(ids.length, 1),
    values: rows(ids.length, 2),
    hidden: new Map(depths.map((d) => [d, Float32Array.from({ length: ids.length * hiddenSize }, (_, i) => d * 1e4 + Math.floor(i / hiddenSize))])),
  };
  const suffix = suffixIds.length ? { ids: suffixIds, start: 100, keys: rows(suffixIds.length, 3), values: rows(suffixIds.length, 4) } : null;
  return { prefix, suffix };
}

const key = (document: string, model = 'm', settings = 's'): PrefixStoreKey => ({ model, settings, document });

const PROFILE: DepthProfile = {
  format: DEPTH_PROFILE_FORMAT,
  variant: 'v',
  threshold: 0.97,
  canvasTokens: 64,
  fillTokens: 8,
  samplesPerRatio: 1,
  source: 'test',
  ratios: [
    { ratio: 0.2, similarity: [], measuredDepth: 1, safeDepth: 1 },
    { ratio: 0.5, similarity: [], measuredDepth: 3, safeDepth: 2 },
    { ratio: 0.8, similarity: [], measuredDepth: 2, safeDepth: 2 },
  ],
};

describe('prefix store', () => {
  it('offers an entry only to its own model, settings and document', () => {
    const store = new PrefixStore(1000, GEOMETRY);
    const stored = entry([1, 2, 3]);
    store.put(key('a.ts'), stored);
    assert.equal(store.lookup(key('a.ts')), stored);
    assert.equal(store.lookup(key('b.ts')), null, 'another document');
    assert.equal(store.lookup(key('a.ts', 'other model')), null, 'another model');
    assert.equal(store.lookup(key('a.ts', 'm', 'other settings')), null, 'other settings');
    store.put(key('a.ts'), entry([1, 2, 9, 9]));
    assert.deepEqual(store.lookup(key('a.ts'))!.prefix.ids, [1, 2, 9, 9], "a request's harvest replaces its document's entry");
    assert.equal(store.tokens, 4);
  });

  it('never gives a request rows whose tokens differ: an edit before the cursor cuts the shared rows at the edit', () => {
    const random = seededRandom(3);
    const text = byteTokens(60, 4);
    for (let trial = 0; trial < 200; trial++) {
      const stored = entry(text.slice(0, 20 + Math.floor(random() * 40)));
      const request = [...text.slice(0, 5 + Math.floor(random() * 55))];
      // Edit a random position, or none.
      const edit = Math.floor(random() * (request.length + 10));
      if (edit < request.length) request[edit] = 300 + (request[edit] % 7);
      const { setup, stats } = planReuse(stored, { prefixIds: request, suffixIds: [], length: 8 }, PROFILE, ARCH, DEFAULT_REUSE_TUNING);
      const s = stats.sharedTokens;
      assert.equal(s, Math.min(sharedPrefixLength(stored.prefix.ids, request), request.length - 1));
      assert.ok(edit >= request.length || s <= edit, 'nothing at or after the edit is shared');
      assert.deepEqual(setup.shared?.ids ?? [], request.slice(0, s));
      assert.deepEqual(setup.tailIds, request.slice(s));
      // The shared K/V are the stored rows 0..s-1 and nothing else.
      for (const k of setup.shared?.keys ?? []) assert.equal(k.length, GEOMETRY.numKvHeads * s * GEOMETRY.headDim);
      if (s > 0) assert.equal(setup.shared!.keys[0][(s - 1) * GEOMETRY.headDim], 1e6 + (s - 1), 'row s-1 of head 0');
    }
  });

  it('keeps the last prefix row of a shifted model out of the shared rows (it predicts the first fill position)', () => {
    const ids = [5, 6, 7, 8];
    const shifted = planReuse(entry(ids), { prefixIds: ids, suffixIds: [], length: 4 }, PROFILE, ARCH, DEFAULT_REUSE_TUNING);
    assert.equal(shifted.stats.sharedTokens, 3);
    const unshifted = planReuse(entry(ids), { prefixIds: ids, suffixIds: [], length: 4 }, PROFILE, { ...ARCH, logitShift: false }, DEFAULT_REUSE_TUNING);
    assert.equal(unshifted.stats.sharedTokens, 4);
  });

  it('reuses the leading suffix rows that match, keys moved to their new positions', () => {
    const stored = entry([1, 2, 3, 4], [40, 41, 42, 43]);
    const { setup, stats } = planReuse(stored, { prefixIds: [1, 2, 3, 4, 5], suffixIds: [40, 41, 99, 43], length: 6 }, PROFILE, ARCH, DEFAULT_REUSE_TUNING);
    assert.equal(stats.staleSuffixTokens, 2);
    assert.deepEqual(setup.staleSuffix?.ids, [40, 41]);
    assert.equal(setup.staleSuffix?.start, 11);
    const off = planReuse(stored, { prefixIds: [1, 2, 3, 4, 5], suffixIds: [40, 41], length: 6 }, PROFILE, ARCH, { ...DEFAULT_REUSE_TUNING, staleFirstCall: false });
    assert.equal(off.setup.staleSuffix, null, 'stale suffix rows are only for a stale first call');
  });

  it('applies the safe depth of the shared ratio, falling back to a shallower stored depth', () => {
    assert.equal(safeDepthFor(PROFILE, 0.1), 0);
    assert.equal(safeDepthFor(PROFILE, 0.2), 1);
    assert.equal(safeDepthFor(PROFILE, 0.79), 2);
    assert.deepEqual(usedDepths(PROFILE, 4), [1, 2]);
    const ids = byteTokens(40, 1);
    const request = { prefixIds: ids, suffixIds: [], length: 10 }; // ratio 39/50
    assert.equal(planReuse(entry(ids, [], [1, 2]), request, PROFILE, ARCH, DEFAULT_REUSE_TUNING).setup.depth, 2);
    assert.equal(planReuse(entry(ids, [], [1]), request, PROFILE, ARCH, DEFAULT_REUSE_TUNING).setup.depth, 1);
    assert.equal(planReuse(entry(ids, [], []), request, PROFILE, ARCH, DEFAULT_REUSE_TUNING).setup.depth, 0);
  });

  it('sizes its default budget by the memory a token takes', () => {
    assert.equal(DEFAULT_REUSE_TUNING.budgetTokens, 16384, 'a tiny model is capped at 16k tokens');
    const dream7b = { ...ARCH, numLayers: 28, numKvHeads: 4, headDim: 128, hiddenSize: 3584 };
    const budget = defaultReuseTuning(dream7b, 'float16', 2).budgetTokens;
    assert.equal(budget, Math.floor((256 * 1024 ** 2) / (2 * (2 * 28 * 4 * 128 + 2 * 3584))));
    assert.ok(budget > 3000 && budget < 5000, "about BiCache's 5,000 for a 7B model");
  });

  it('stays within its token budget under many documents, evicting the least recently used', () => {
    const budget = 500;
    const store = new PrefixStore(budget, GEOMETRY);
    const random = seededRandom(9);
    const recent: string[] = [];
    for (let i = 0; i < 300; i++) {
      const document = `doc${Math.floor(random() * 40)}.ts`;
      if (random() < 0.3) store.lookup(key(document));
      store.put(key(document), entry(byteTokens(1 + Math.floor(random() * 120), i), byteTokens(Math.floor(random() * 30), i + 1)));
      recent.push(document);
      assert.ok(store.tokens <= budget, `${store.tokens} tokens stored after put ${i}`);
      assert.ok(store.lookup(key(document)), 'the newest entry survives its own put');
    }
    assert.ok(store.size > 1);
    // An entry larger than the budget is cut to it: prefix rows first, K/V and hidden states alike.
    store.put(key('huge.ts'), entry(byteTokens(700, 1), byteTokens(50, 2)));
    const huge = store.lookup(key('huge.ts'))!;
    assert.equal(entryTokens(huge), budget);
    assert.equal(huge.prefix.ids.length, budget);
    assert.equal(huge.suffix, null);
    assert.equal(huge.prefix.keys[2].length, GEOMETRY.numKvHeads * budget * GEOMETRY.headDim);
    assert.equal(huge.prefix.hidden.get(1)!.length, budget * GEOMETRY.hiddenSize);
    assert.equal(store.size, 1);
    assert.equal(store.tokens, budget);
  });
});

describe('prefix reuse end to end on tiny-dream (real onnxruntime)', function () {
  this.timeout(120_000);
  let fixture: SegmentedFixture;
  before(async () => {
    fixture = await segmentedFixture('tiny-dream', [FP32_GQA]);
  });
  after(async () => fixture?.release());

  it('reuses the shared prefix of consecutive requests of a document, and nothing across documents or settings', async () => {
    const { monolithic, segments, variant } = fixture.variants[0];
    const reuser = new PrefixReuser(monolithic, segments, PROFILE, fixture.arch, variant.file, { budgetTokens: 4096, staleFirstCall: true, refreshEvery: 2 });
    const options = { ...DEFAULT_DECODING_OPTIONS, blockLength: 8, steps: 8 };
    const text = byteTokens(30, 7);
    const suffixIds = byteTokens(6, 8);
    const request = (prefixIds: number[], overrides = {}) => ({ prefixIds, suffixIds, length: 8, options: { ...options, ...overrides } });

    const first = await reuser.denoise(fixture.spec, request(text.slice(0, 20)), 'a.ts');
    assert.equal(first.reuse.sharedTokens, 0);
    assert.equal(first.result.fill.length > 0 || first.result.endedEarly, true);
    // Typing: one more token before the cursor; everything before it is shared (but the last row).
    const typed = await reuser.denoise(fixture.spec, request(text.slice(0, 21)), 'a.ts');
    assert.equal(typed.reuse.sharedTokens, 20);
    assert.equal(typed.reuse.staleSuffixTokens, suffixIds.length);
    assert.equal(typed.reuse.depth, 2, 'ratio 20/35 gets the profiled depth 2');
    assert.ok(typed.reuse.refreshCalls >= 1);
    // An edit at token 5: only the 5 tokens before it are shared.
    const edited = text.slice(0, 21);
    edited[5] = 299;
    assert.equal((await reuser.denoise(fixture.spec, request(edited), 'a.ts')).reuse.sharedTokens, 5);
    // Another document, or other settings: nothing shared.
    assert.equal((await reuser.denoise(fixture.spec, request(text.slice(0, 21)), 'b.ts')).reuse.sharedTokens, 0);
    assert.equal((await reuser.denoise(fixture.spec, request(edited, { steps: 4 }), 'a.ts')).reuse.sharedTokens, 0);
    assert.ok(reuser.store.tokens <= 4096);
  });
});

import { strict as assert } from 'node:assert';
import { InvalidOptionsError, defaultRefreshInterval, resolveDecodingOptions } from '../../engine/denoiser/options';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import type { DecodingOptions } from '../../common/decodingOptions';

const invalid = (pattern: RegExp) => (e: unknown) => e instanceof InvalidOptionsError && pattern.test(e.message);

describe('denoiser options', () => {
  it('layers built-in defaults < model defaults < request overrides', () => {
    const options = resolveDecodingOptions({ steps: 64, algorithm: 'entropy' }, { steps: 32 }, 64);
    assert.equal(options.steps, 32);
    assert.equal(options.algorithm, 'entropy');
    assert.equal(options.blockLength, DEFAULT_DECODING_OPTIONS.blockLength);
    // undefined fields do not override
    assert.equal(resolveDecodingOptions({ steps: 64 }, { steps: undefined }, 64).steps, 64);
  });

  it("takes the paper's refresh interval for the cache mode and family unless one is set", () => {
    assert.equal(resolveDecodingOptions({}, { cache: 'decode' }, 8, 'dream').refreshInterval, 4);
    assert.equal(resolveDecodingOptions({}, { cache: 'decode' }, 8, 'llada').refreshInterval, 8);
    assert.equal(resolveDecodingOptions({}, { cache: 'prefill' }, 8, 'llada').refreshInterval, 0);
    assert.equal(resolveDecodingOptions({}, { cache: 'pd' }, 8, 'dream').refreshInterval, 4);
    assert.equal(resolveDecodingOptions({}, { cache: 'pd' }, 8, 'llada').refreshInterval, 8);
    assert.equal(resolveDecodingOptions({}, { cache: 'greedy' }, 8).refreshInterval, defaultRefreshInterval('greedy'));
    assert.equal(resolveDecodingOptions({ refreshInterval: 3 }, { cache: 'decode' }, 8, 'dream').refreshInterval, 3);
    assert.equal(resolveDecodingOptions({ refreshInterval: 3 }, { refreshInterval: 1 }, 8).refreshInterval, 1);
  });

  it('validates without a fill length (model defaults at load time)', () => {
    assert.deepEqual(resolveDecodingOptions(undefined, undefined), { ...DEFAULT_DECODING_OPTIONS, refreshInterval: 8 });
  });

  const bad: [Partial<DecodingOptions> | Record<string, unknown>, RegExp][] = [
    [{ steps: 0 }, /'steps' must be an integer >= 1, got 0/],
    [{ steps: 2.5 }, /'steps' must be an integer/],
    [{ blockLength: -1 }, /'blockLength' must be an integer >= 1/],
    [{ schedule: 'fast' as never }, /'schedule' must be one of 'blocks', 'timesteps', 'threshold', got 'fast'/],
    [{ threshold: 0 }, /'threshold' must be a number in \(0, 1\], got 0/],
    [{ threshold: 1.5 }, /'threshold'/],
    [{ algorithm: 'low_confidence' as never }, /'algorithm' must be one of/],
    [{ temperature: -0.1 }, /'temperature' must be a finite number >= 0/],
    [{ temperature: Infinity }, /'temperature'/],
    [{ seed: -3 }, /'seed' must be an integer/],
    [{ seed: 'x' as never }, /'seed'/],
    [{ cache: 'dual' as never }, /'cache' must be one of 'none', 'decode', 'greedy', 'prefill'/],
    [{ refreshInterval: -1 }, /'refreshInterval' must be an integer >= 0/],
    [{ cache: 'decode', refreshInterval: 0 }, /cache 'decode' needs refreshInterval >= 1/],
    [{ cache: 'greedy', refreshInterval: 0 }, /cache 'greedy' needs refreshInterval >= 1/],
    [{ cache: 'pd', refreshInterval: 0 }, /cache 'pd' needs refreshInterval >= 1/],
    [{ window: -2 }, /'window' must be an integer >= 0/],
    [{ greedyOrder: 'left' as never }, /'greedyOrder' must be one of 'confidence', 'random'/],
    [{ cache: 'greedy', greedyOrder: 'random', schedule: 'threshold' }, /greedyOrder 'random'.*threshold/],
    [{ stepz: 3 }, /the request: 'stepz' is not a decoding option/],
    [{ steps: 3, blockLength: 8 }, /steps \(3\) must be at least the number of blocks \(4 = ceil\(length 32 \/ blockLength 8\)\)/],
  ];
  for (const [overrides, message] of bad) {
    it(`rejects ${JSON.stringify(overrides)}`, () => {
      assert.throws(() => resolveDecodingOptions({}, overrides as Partial<DecodingOptions>, 32), invalid(message));
    });
  }

  it('rejects a zero or fractional length, and bad model defaults naming their source', () => {
    assert.throws(() => resolveDecodingOptions({}, {}, 0), invalid(/length must be an integer >= 1, got 0/));
    assert.throws(() => resolveDecodingOptions({}, {}, 1.5), invalid(/length must be an integer >= 1/));
    assert.throws(() => resolveDecodingOptions({ foo: 1 } as never, {}, 4), invalid(/the model's decoding defaults: 'foo'/));
  });

  it('accepts the threshold schedule with fewer steps than blocks (it runs until the fill is complete)', () => {
    assert.doesNotThrow(() => resolveDecodingOptions({}, { schedule: 'threshold', steps: 1, blockLength: 4 }, 32));
  });
});

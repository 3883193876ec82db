/**
 * Decoding options: resolution (built-in defaults < the model's defaults < the request's overrides) and the one
 * validation of a request's options, at the engine's door (engine/service/engine.ts, for the JSON-RPC server
 * and the CLI alike): each field against common/decodingOptions.ts, then the combinations, with messages that
 * say which field is wrong and why; the engine answers a bad request with the message of `InvalidOptionsError`.
 * `steps` above the fill length is lowered to it, so the default 256 means one token per step for fills up to
 * 256 (LLaDA's README: best quality at steps == length). The default `refreshInterval` is only a placeholder:
 * unless the model or the request sets it, it follows the cache mode (`defaultRefreshInterval`).
 */
import type { ModelFamily } from '../architecture/architecture';
import {
  DECODING_OPTION_NAMES,
  DEFAULT_DECODING_OPTIONS,
  expectedValue,
  isDecodingOptionName,
  isValidOptionValue,
  type CacheMode,
  type DecodingOptions,
} from '../../common/decodingOptions';
import { tileBlocks } from './schedule';

export class InvalidOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidOptionsError';
  }
}

/**
 * The refresh interval a cache mode uses when none is set. dKV-Cache's paper settings: Decode every 4 steps for
 * Dream and every 8 for LLaDA, and PD as Decode (the paper ran it on Dream only); Prefill never. Greedy: the paper
 * refreshes every 2 steps, but then half the steps are full passes and greedy cannot be more than 2x faster than
 * `none`; every 8 steps keeps its lifespan short while letting its tiny query sets pay off (agreement vs `none` is
 * measured by `compareWithNone`). The block caches refresh at block starts only, as Fast-dLLM does.
 */
export function defaultRefreshInterval(cache: CacheMode, family?: ModelFamily): number {
  switch (cache) {
    case 'decode':
    case 'pd':
      return family === 'dream' ? 4 : 8;
    case 'greedy':
      return 8;
    case 'prefill':
    case 'block-prefix':
    case 'block-dual':
    case 'none':
      return 0;
  }
}

/**
 * The options for one request. `fillLength` (the number of masks) is checked against the options when given;
 * `family` picks the paper's refresh interval when neither the model nor the request sets one.
 */
export function resolveDecodingOptions(
  modelDefaults: Partial<DecodingOptions> | undefined,
  overrides: Partial<DecodingOptions> | undefined,
  fillLength?: number,
  family?: ModelFamily,
): DecodingOptions {
  const fromModel = checkDecodingOverrides(modelDefaults, "the model's decoding defaults");
  const fromRequest = checkDecodingOverrides(overrides, 'the request');
  const options: DecodingOptions = { ...DEFAULT_DECODING_OPTIONS, ...fromModel, ...fromRequest };
  if (fromRequest.refreshInterval === undefined && fromModel.refreshInterval === undefined) {
    options.refreshInterval = defaultRefreshInterval(options.cache, family);
  }
  validateDecodingOptions(options, fillLength);
  return options;
}

/** Checks the combinations (each field was checked with its source); throws InvalidOptionsError naming the first problem. */
function validateDecodingOptions(options: DecodingOptions, fillLength?: number): void {
  if ((options.cache === 'decode' || options.cache === 'greedy' || options.cache === 'pd') && options.refreshInterval < 1) {
    fail(`cache '${options.cache}' needs refreshInterval >= 1 (0 = never refresh is only for 'prefill'), got ${options.refreshInterval}`);
  }
  if (options.cache === 'greedy' && options.greedyOrder === 'random' && options.schedule === 'threshold') {
    fail("cache 'greedy' with greedyOrder 'random' fixes the rows to commit before the step, which the 'threshold' " +
      "schedule cannot do; use greedyOrder 'confidence' or schedule 'blocks'/'timesteps'");
  }

  if (fillLength === undefined) return;
  if (!Number.isInteger(fillLength) || fillLength < 1) fail(`length must be an integer >= 1, got ${show(fillLength)}`);
  if (options.schedule !== 'threshold') {
    const blocks = tileBlocks(0, fillLength, options.blockLength).length;
    const steps = Math.min(options.steps, fillLength);
    if (steps < blocks) {
      fail(`steps (${options.steps}) must be at least the number of blocks (${blocks} = ceil(length ${fillLength} / ` +
        `blockLength ${options.blockLength})); raise steps or blockLength`);
    }
  }
}

/**
 * The options `source` sets, each checked against common/decodingOptions.ts; a request's own are checked before
 * its model is even looked up, so a bad value is refused whatever else is wrong.
 */
export function checkDecodingOverrides(options: Partial<DecodingOptions> | undefined, source = 'the request'): Partial<DecodingOptions> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) fail(`${source}: decoding options must be an object`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (!isDecodingOptionName(key)) {
      fail(`${source}: '${key}' is not a decoding option (known: ${DECODING_OPTION_NAMES.join(', ')})`);
    }
    if (value === undefined) continue;
    if (!isValidOptionValue(key, value)) fail(`option '${key}' must be ${expectedValue(key)}, got ${show(value)}`);
    out[key] = value;
  }
  return out as Partial<DecodingOptions>;
}

function show(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : JSON.stringify(value) ?? String(value);
}

function fail(message: string): never {
  throw new InvalidOptionsError(message);
}

/**
 * The decoding options, described once: name, type, range, default, CLI flag, setting key and descriptions.
 * The protocol's `DecodingOptions` type, the engine's validation (engine/denoiser/options.ts), the CLI flags
 * (engine/cli/decodingFlags.ts), the extension's settings (extension/settings.ts) and package.json's
 * contributed settings (checked by test/common/decodingOptions.test.ts) all derive from this table.
 */

/** One option's description; `values` makes it an enumeration, otherwise it is a number. */
interface OptionDescription {
  readonly type: 'integer' | 'number' | 'enum';
  readonly values?: readonly string[];
  /** One line per value, for the settings UI. */
  readonly valueDescriptions?: readonly string[];
  readonly minimum?: number;
  /** The value must be above `minimum`, not equal to it. */
  readonly exclusiveMinimum?: boolean;
  readonly maximum?: number;
  /** The engine's built-in default; the model's own defaults and the request override it. */
  readonly default: number | string;
  /** `dlm infill|bench|eval --<flag>`. */
  readonly flag: string;
  /** `dlm.<setting>` in VS Code. */
  readonly setting: string;
  /** One line, for `--help`. */
  readonly summary: string;
  /** The settings UI's description (Markdown). */
  readonly settingDescription: string;
}

const MODEL_DEFAULT_NOTE =
  "When not set, the model's own default applies (the value shown is the engine's built-in default).";

export const DECODING_OPTION_SCHEMA = {
  cache: {
    type: 'enum',
    values: ['none', 'decode', 'greedy', 'prefill', 'pd', 'block-prefix', 'block-dual'],
    valueDescriptions: [
      'No cache: every denoising step recomputes the whole canvas.',
      "dKV-Cache-Decode: a decoded token's keys/values are reused from the step after it is decoded; full refresh every `refreshInterval` steps.",
      'dKV-Cache-Greedy: everything is cached; only the tokens about to be decoded and a window around them are recomputed; full refresh every `refreshInterval` steps.',
      'The code around the hole is computed once per request (refreshed every `refreshInterval` steps when above 0).',
      "dKV-Cache-PD (Prefill and Decode): the code around the hole is computed once per request and a decoded token's keys/values are reused from the step after it is decoded; every `refreshInterval` steps the fill alone is recomputed.",
      'Fast-dLLM PrefixCache: each block starts with a full pass; its later steps recompute the block and everything after it, reusing the code before it. Pair with the `threshold` schedule.',
      'Fast-dLLM DualCache: each block starts with a full pass; its later steps recompute only the block, reusing everything else. Pair with the `threshold` schedule.',
    ],
    default: 'pd',
    flag: 'cache',
    setting: 'cacheMode',
    summary: 'K/V reuse between steps (dKV-Cache).',
    settingDescription: `How keys/values are reused between denoising steps (dKV-Cache). Takes effect with the next completion. ${MODEL_DEFAULT_NOTE}`,
  },
  refreshInterval: {
    type: 'integer',
    minimum: 0,
    default: 8,
    flag: 'refresh-interval',
    setting: 'refreshInterval',
    summary: 'Full refresh every N steps (1 = like none, 0 = never; pd: the fill only).',
    settingDescription:
      'Full refresh of the cache every N steps; 1 makes every cache mode equal to `none` (`pd` refreshes only the fill: with 1 it equals `prefill`); 0 (never) only suits `prefill`. When not set it follows the cache mode (Decode and PD: 4 for Dream-family models, 8 for LLaDA; Greedy: 8; Prefill: 0).',
  },
  window: {
    type: 'integer',
    minimum: 0,
    default: 4,
    flag: 'window',
    setting: 'greedyWindow',
    summary: 'Greedy cache: rows recomputed around each token to decode.',
    settingDescription: `\`greedy\` cache mode: rows recomputed around each token to decode. ${MODEL_DEFAULT_NOTE}`,
  },
  greedyOrder: {
    type: 'enum',
    values: ['confidence', 'random'],
    valueDescriptions: ['Decode the most confident tokens first (works with every schedule).', "The paper's random decoding order."],
    default: 'confidence',
    flag: 'greedy-order',
    setting: 'greedyOrder',
    summary: "Greedy cache's decoding order.",
    settingDescription: `\`greedy\` cache mode: the order tokens are decoded in. ${MODEL_DEFAULT_NOTE}`,
  },
  steps: {
    type: 'integer',
    minimum: 1,
    default: 256,
    flag: 'steps',
    setting: 'steps',
    summary: 'Denoising steps (blocks and timesteps schedules).',
    settingDescription: `Denoising steps; above the fill length it is lowered to it (one token per step: best quality). ${MODEL_DEFAULT_NOTE}`,
  },
  blockLength: {
    type: 'integer',
    minimum: 1,
    default: 32,
    flag: 'block-length',
    setting: 'blockLength',
    summary: 'Semi-autoregressive block length; the fill length for pure diffusion.',
    settingDescription: `Semi-autoregressive block length of the \`blocks\` schedule (the fill length for pure diffusion). ${MODEL_DEFAULT_NOTE}`,
  },
  schedule: {
    type: 'enum',
    values: ['blocks', 'timesteps', 'threshold'],
    valueDescriptions: [
      "LLaDA: left-to-right blocks, an equal share of each block's tokens per step.",
      'Dream: tokens per step from a timestep schedule.',
      'Fast-dLLM: every token whose confidence reaches `threshold` (at least one per step).',
    ],
    default: 'blocks',
    flag: 'schedule',
    setting: 'schedule',
    summary: 'How many tokens are committed per step.',
    settingDescription: `How many tokens are committed per step. ${MODEL_DEFAULT_NOTE}`,
  },
  algorithm: {
    type: 'enum',
    values: ['confidence', 'margin', 'entropy', 'random'],
    valueDescriptions: [
      'Highest probability first.',
      'Largest gap between the two most likely tokens first.',
      'Lowest entropy first.',
      'Random order.',
    ],
    default: 'confidence',
    flag: 'algorithm',
    setting: 'algorithm',
    summary: 'Which masked tokens are committed first.',
    settingDescription: `Which masked tokens are committed first. ${MODEL_DEFAULT_NOTE}`,
  },
  threshold: {
    type: 'number',
    minimum: 0,
    exclusiveMinimum: true,
    maximum: 1,
    default: 0.9,
    flag: 'threshold',
    setting: 'threshold',
    summary: 'Confidence threshold of the threshold schedule, in (0, 1].',
    settingDescription: `Confidence a token needs under the \`threshold\` schedule, above 0 and at most 1. ${MODEL_DEFAULT_NOTE}`,
  },
  temperature: {
    type: 'number',
    minimum: 0,
    default: 0,
    flag: 'temperature',
    setting: 'temperature',
    summary: '0 = argmax; above 0 samples with Gumbel noise.',
    settingDescription: `0 picks the most likely token (deterministic); above 0 samples with this temperature. ${MODEL_DEFAULT_NOTE}`,
  },
  seed: {
    type: 'integer',
    minimum: 0,
    default: 0,
    flag: 'seed',
    setting: 'seed',
    summary: 'Seed of every random choice.',
    settingDescription: `Seed of every random choice, so fills are reproducible. ${MODEL_DEFAULT_NOTE}`,
  },
} as const satisfies Record<string, OptionDescription>;

type Schema = typeof DECODING_OPTION_SCHEMA;
type ValueOf<D> = D extends { values: readonly (infer V)[] } ? V : number;

export type DecodingOptionName = keyof Schema;

/** The options of one request, fully resolved (engine/denoiser/options.ts resolves and checks them). */
export type DecodingOptions = { -readonly [K in DecodingOptionName]: ValueOf<Schema[K]> };

export const DECODING_OPTION_NAMES = Object.keys(DECODING_OPTION_SCHEMA) as DecodingOptionName[];

/** The engine's built-in defaults (below the model's defaults and the request's overrides). */
export const DEFAULT_DECODING_OPTIONS: Readonly<DecodingOptions> = Object.freeze(
  Object.fromEntries(DECODING_OPTION_NAMES.map((name) => [name, DECODING_OPTION_SCHEMA[name].default])) as DecodingOptions,
);

/**
 * Which K/V rows are reused between denoising steps: `none`; `decode` (dKV-Cache-Decode: a token's K/V are
 * cached one step after it is decoded, full refresh every N); `greedy` (dKV-Cache-Greedy: everything cached,
 * only the last decoded, the next to decode and a window around them recomputed, full refresh every N);
 * `prefill` (prefix and suffix computed once per request, refreshed every N when N > 0); `block-prefix` /
 * `block-dual` (Fast-dLLM's PrefixCache / DualCache: each block starts with a full pass; then the block and
 * everything right of it, or only the block, against the cached rows).
 */
export const CACHE_MODES = DECODING_OPTION_SCHEMA.cache.values;
export type CacheMode = DecodingOptions['cache'];

/** How many tokens are committed per step: LLaDA blocks, Dream timesteps, Fast-dLLM confidence threshold. */
export const SCHEDULES = DECODING_OPTION_SCHEMA.schedule.values;
export type ScheduleKind = DecodingOptions['schedule'];

/** Which masked positions are committed first: max probability, top1-top2 margin, negative entropy, random. */
export const ALGORITHMS = DECODING_OPTION_SCHEMA.algorithm.values;
export type Algorithm = DecodingOptions['algorithm'];

/** dKV-Cache-Greedy's decoding order: our confidence-ordered variant, or the paper's random order. */
export const GREEDY_ORDERS = DECODING_OPTION_SCHEMA.greedyOrder.values;
export type GreedyOrder = DecodingOptions['greedyOrder'];

/** What a valid value of the option is, e.g. "an integer >= 1" or "one of 'blocks', 'timesteps', 'threshold'". */
export function expectedValue(name: DecodingOptionName): string {
  const d: OptionDescription = DECODING_OPTION_SCHEMA[name];
  if (d.type === 'enum') return `one of ${d.values!.map((v) => `'${v}'`).join(', ')}`;
  if (d.maximum !== undefined) return `a number in ${d.exclusiveMinimum ? '(' : '['}${d.minimum}, ${d.maximum}]`;
  return d.type === 'integer' ? `an integer >= ${d.minimum}` : `a finite number >= ${d.minimum}`;
}

/** True when `value` is valid for the option by itself (combinations are checked by the engine). */
export function isValidOptionValue(name: DecodingOptionName, value: unknown): boolean {
  const d: OptionDescription = DECODING_OPTION_SCHEMA[name];
  if (d.type === 'enum') return typeof value === 'string' && d.values!.includes(value);
  if (typeof value !== 'number' || !Number.isFinite(value)) return false;
  if (d.type === 'integer' && !Number.isSafeInteger(value)) return false;
  if (d.minimum !== undefined && (d.exclusiveMinimum ? value <= d.minimum : value < d.minimum)) return false;
  return d.maximum === undefined || value <= d.maximum;
}

export function isDecodingOptionName(name: string): name is DecodingOptionName {
  return Object.prototype.hasOwnProperty.call(DECODING_OPTION_SCHEMA, name);
}

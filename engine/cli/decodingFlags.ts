/** The decoding options as command-line flags, shared by `dlm infill` and `dlm bench`. */
import {
  ALGORITHMS,
  CACHE_MODES,
  DEVICE_OPTIONS,
  GREEDY_ORDERS,
  SCHEDULES,
  type DecodingOptions,
  type DeviceOption,
} from '../../common/protocol';
import type { OptionSpecs, OptionValues } from './command';

/** Flag name -> DecodingOptions field (every field has one). */
const FLAG_FIELDS = {
  steps: 'steps',
  'block-length': 'blockLength',
  schedule: 'schedule',
  threshold: 'threshold',
  algorithm: 'algorithm',
  temperature: 'temperature',
  seed: 'seed',
  cache: 'cache',
  'refresh-interval': 'refreshInterval',
  window: 'window',
  'greedy-order': 'greedyOrder',
} as const satisfies Record<string, keyof DecodingOptions>;

export const DECODING_FLAGS: OptionSpecs = {
  steps: { type: 'integer', description: 'Denoising steps (blocks and timesteps schedules).', defaultText: "model's" },
  'block-length': { type: 'integer', description: 'Semi-autoregressive block length; the fill length for pure diffusion.' },
  schedule: { type: { choices: SCHEDULES }, description: 'How many tokens are committed per step.' },
  threshold: { type: 'number', description: 'Confidence threshold of the threshold schedule, in (0, 1].' },
  algorithm: { type: { choices: ALGORITHMS }, description: 'Which masked tokens are committed first.' },
  temperature: { type: 'number', description: '0 = argmax; above 0 samples with Gumbel noise.' },
  seed: { type: 'integer', description: 'Seed of every random choice.' },
  cache: { type: { choices: CACHE_MODES }, description: 'K/V reuse between steps (dKV-Cache).' },
  'refresh-interval': { type: 'integer', description: 'Full refresh every N steps (1 = like none, 0 = never).' },
  window: { type: 'integer', description: 'Greedy cache: rows recomputed around each token to decode.' },
  'greedy-order': { type: { choices: GREEDY_ORDERS }, description: "Greedy cache's decoding order." },
};

export const DEVICE_FLAG: OptionSpecs = {
  device: { type: { choices: DEVICE_OPTIONS }, description: 'Execution provider; auto falls back to CPU.', defaultText: 'auto' },
};

/** The decoding overrides given on the command line (values already typed by the parser). */
export function decodingOverrides(options: OptionValues): Partial<DecodingOptions> {
  const overrides: Record<string, unknown> = {};
  for (const [flag, field] of Object.entries(FLAG_FIELDS)) {
    if (options[flag] !== undefined) overrides[field] = options[flag];
  }
  return overrides as Partial<DecodingOptions>;
}

export function deviceOption(options: OptionValues): DeviceOption {
  return (options.device as DeviceOption | undefined) ?? 'auto';
}

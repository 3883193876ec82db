/** The decoding options as command-line flags (from common/decodingOptions.ts), shared by `dlm infill`, `bench` and `eval`. */
import { DEVICE_OPTIONS, type DeviceOption } from '../../common/protocol';
import { DECODING_OPTION_NAMES, DECODING_OPTION_SCHEMA, type DecodingOptions } from '../../common/decodingOptions';
import type { OptionSpecs, OptionValues } from './command';

export const DECODING_FLAGS: OptionSpecs = Object.fromEntries(
  DECODING_OPTION_NAMES.map((name) => {
    const option = DECODING_OPTION_SCHEMA[name];
    const type = option.type === 'enum' ? { choices: option.values } : option.type;
    return [option.flag, { type, description: option.summary, ...(name === 'steps' ? { defaultText: "model's" } : {}) }];
  }),
);

export const DEVICE_FLAG: OptionSpecs = {
  device: { type: { choices: DEVICE_OPTIONS }, description: 'Execution provider; auto falls back to CPU.', defaultText: 'auto' },
};

/** The decoding overrides given on the command line (values typed by the parser, checked by the engine). */
export function decodingOverrides(options: OptionValues): Partial<DecodingOptions> {
  const overrides: Record<string, unknown> = {};
  for (const name of DECODING_OPTION_NAMES) {
    const value = options[DECODING_OPTION_SCHEMA[name].flag];
    if (value !== undefined) overrides[name] = value;
  }
  return overrides as Partial<DecodingOptions>;
}

export function deviceOption(options: OptionValues): DeviceOption {
  return (options.device as DeviceOption | undefined) ?? 'auto';
}

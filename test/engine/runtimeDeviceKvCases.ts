/** The canvas and cache modes runtimeDeviceKvProbe.ts denoises on WebGPU, shared with its test. */
import type { DecodingOptions } from '../../common/decodingOptions';

/** Ordinary (byte) tokens, deterministic. */
function tokens(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 37 + salt * 11 + 5) % 256);
}

export const DEVICE_KV_CANVAS = {
  prefix: tokens(11, 1),
  fill: 16,
  suffix: tokens(5, 2),
  options: { schedule: 'blocks', blockLength: 8, steps: 16, algorithm: 'confidence' } as Partial<DecodingOptions>,
};

export const DEVICE_KV_MODES: { label: string; options: Partial<DecodingOptions> }[] = [
  { label: 'none', options: { cache: 'none' } },
  { label: 'prefill', options: { cache: 'prefill', refreshInterval: 0 } },
  { label: 'prefill N=4', options: { cache: 'prefill', refreshInterval: 4 } },
  { label: 'block-prefix', options: { cache: 'block-prefix', refreshInterval: 0 } },
  { label: 'block-dual', options: { cache: 'block-dual', refreshInterval: 0 } },
  { label: 'decode N=4', options: { cache: 'decode', refreshInterval: 4 } },
  { label: 'greedy N=8 W=2', options: { cache: 'greedy', refreshInterval: 8, window: 2, greedyOrder: 'confidence' } },
];

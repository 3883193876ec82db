/** Maps a request's cache mode to its policy; a new mode is a new file here and one more case. */
import type { DecodingOptions } from '../../../common/decodingOptions';
import type { CachePolicy } from '../cachePolicy';
import { BlockCachePolicy } from './blockCache';
import { DecodePolicy } from './decode';
import { GreedyPolicy } from './greedy';
import { NoCachePolicy } from './none';
import { PrefillDecodePolicy } from './pd';
import { PrefillPolicy } from './prefill';

/** A fresh policy for one request (policies keep per-request scratch state). */
export function createCachePolicy(options: DecodingOptions): CachePolicy {
  switch (options.cache) {
    case 'none':
      return new NoCachePolicy();
    case 'decode':
      return new DecodePolicy(options.refreshInterval);
    case 'greedy':
      return new GreedyPolicy(options.refreshInterval, options.window, options.greedyOrder);
    case 'prefill':
      return new PrefillPolicy(options.refreshInterval);
    case 'pd':
      return new PrefillDecodePolicy(options.refreshInterval);
    case 'block-prefix':
      return new BlockCachePolicy('prefix', options.refreshInterval);
    case 'block-dual':
      return new BlockCachePolicy('dual', options.refreshInterval);
  }
}

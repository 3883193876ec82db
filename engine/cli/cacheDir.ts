import os from 'node:os';
import path from 'node:path';

/** Where downloaded and converted models are kept: $DLM_CACHE_DIR, else the user's cache folder. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DLM_CACHE_DIR) return path.resolve(env.DLM_CACHE_DIR);
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'dlm-complete');
}

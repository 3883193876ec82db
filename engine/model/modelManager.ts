/**
 * Turns the `dlm.model` setting into a model folder the engine can load:
 * - `builtin`: the model shipped with the extension (`dist/models/builtin` next to the engine bundle, or
 *   the folder named by env `DLM_BUILTIN_MODEL`);
 * - a model folder (it holds `dlm-model.json`): used as it is.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoadProgressParams } from '../protocol';
import { MANIFEST_FILE } from './manifest';

export const BUILTIN_SETTING = 'builtin';

export type ModelProgress = Omit<LoadProgressParams, 'progressToken'>;

export interface ResolveOptions {
  /** Where downloads and converted checkpoints are kept between runs. */
  cacheDir: string;
  /** Hugging Face access token, for gated repositories. */
  token?: string;
  onProgress?: (progress: ModelProgress) => void;
}

export class ModelResolveError extends Error {
  override name = 'ModelResolveError';
}

/**
 * The built-in model folder. From the bundle `dist/engine/main.js` this is `dist/models/builtin`; when the
 * sources run directly (tests, `tsx`) it is `engine/models/builtin`, where the built-in model is produced.
 */
export function builtinModelDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.DLM_BUILTIN_MODEL;
  if (override) return path.resolve(override);
  return path.join(__dirname, '..', 'models', 'builtin');
}

export function isModelFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, MANIFEST_FILE));
}

export async function resolveModel(setting: string, options: ResolveOptions): Promise<string> {
  const trimmed = setting.trim();
  if (trimmed === '' || trimmed === BUILTIN_SETTING) {
    const dir = builtinModelDir();
    if (!isModelFolder(dir)) {
      throw new ModelResolveError(
        `The built-in model is missing: no ${MANIFEST_FILE} in ${dir}. Reinstall the extension, or set ` +
          `DLM_BUILTIN_MODEL to a model folder.`,
      );
    }
    return dir;
  }
  void options;
  const dir = path.resolve(trimmed);
  if (isModelFolder(dir)) return dir;
  throw new ModelResolveError(
    `Cannot use model "${setting}": ${fs.existsSync(dir) ? `${dir} has no ${MANIFEST_FILE}` : `${dir} does not exist`}. ` +
      `Use "builtin", a model folder (with ${MANIFEST_FILE}), a Hugging Face checkpoint folder, or a Hugging Face id ` +
      `such as Dream-org/Dream-Coder-v0-Instruct-7B.`,
  );
}

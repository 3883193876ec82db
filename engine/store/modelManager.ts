/**
 * Turns the `dlm.model` setting into a model folder the engine can load:
 * - `builtin`: the model shipped with the extension (`dist/models/builtin` next to the engine bundle, or
 *   the folder named by env `DLM_BUILTIN_MODEL`);
 * - a model folder (it holds `dlm-model.json`): used as it is;
 * - a Hugging Face checkpoint folder (`config.json` + safetensors + tokenizer): converted once, cached under
 *   `<cacheDir>/models/` by its source hash and the graph options;
 * - a Hugging Face id `owner/name[@revision]` (when no such local folder exists): downloaded once into
 *   `<cacheDir>/hub/`, then converted like a checkpoint folder. Once downloaded and converted it is used
 *   without any network access.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultGraphOptions, convertCheckpoint, estimateConvertedBytes } from '../convert/convert';
import { detectFamily } from '../convert/families';
import { checkpointFingerprint } from '../convert/fingerprint';
import type { StepGraphOptions } from '../graph/stepGraphBuilder';
import type { DeviceOption, LoadProgressParams } from '../../common/protocol';
import { parameterCount } from '../architecture/architecture';
import { autoFindsGpu } from '../runtime/executionProviders';
import { DEFAULT_HUB_URL, downloadCheckpoint, hubIdProblem, parseHubModelId, type HubModelId, type HubOptions } from './huggingFaceHub';
import { readJsonFile } from '../model/jsonFile';
import { MANIFEST_FILE, readManifest } from '../model/manifest';

export const BUILTIN_SETTING = 'builtin';

export type ModelProgress = Omit<LoadProgressParams, 'progressToken'>;

export interface ResolveOptions {
  /** Where downloads and converted checkpoints are kept between runs. */
  cacheDir: string;
  /** Hugging Face access token, for gated repositories; defaults to env HF_TOKEN. */
  token?: string;
  /** Hub base URL; defaults to env HF_ENDPOINT, then https://huggingface.co. */
  hubUrl?: string;
  /** The device the model is for: decides the graph a checkpoint is converted to (see `conversionFor`). */
  device?: DeviceOption;
  /** Explicit graph options for a conversion, over those `conversionFor` picks. */
  graph?: Partial<StepGraphOptions>;
  onProgress?: (progress: ModelProgress) => void;
  /** Stops a download (keeping what arrived) or a conversion (leaving nothing); the call then rejects. */
  signal?: AbortSignal;
}

export class ModelResolveError extends Error {
  override name = 'ModelResolveError';
}

/**
 * The built-in model folder. From the bundle `dist/engine/main.js` this is `dist/models/builtin`, which
 * `npm run build` converts from the checkpoint in `engine/models/builtin`; when the sources run directly (`tsx`)
 * it is that checkpoint folder, which is no model folder: set DLM_BUILTIN_MODEL=dist/models/builtin there.
 */
export function builtinModelDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.DLM_BUILTIN_MODEL;
  if (override) return path.resolve(override);
  return path.join(__dirname, '..', 'models', 'builtin');
}

export function isModelFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, MANIFEST_FILE));
}

export function isCheckpointFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'config.json'));
}

/** Above this many parameters a checkpoint is converted to int4 by default (a 7B model then fits 8 GB). */
const INT4_ABOVE_PARAMETERS = 2e9;

/**
 * The graph a checkpoint is converted to when nothing is asked for: on the CPU fp32 activations (its best
 * variant), on GPUs fp16 activations, for `auto` those of a GPU unless it finds none to try on this machine
 * (then it runs on the CPU); the stats head everywhere (defaultGraphOptions); weights in int4 for models above 2B
 * parameters, else int8 on the CPU (a 0.5B fills about 3x faster than with fp32 or int4 weights, README "The
 * cost of one step") and fp16 on GPUs.
 */
export function conversionFor(parameters: number, device: DeviceOption | undefined, gpuFound = autoFindsGpu): StepGraphOptions {
  const large = parameters > INT4_ABOVE_PARAMETERS;
  if (device === 'cpu' || (device === 'auto' && !gpuFound())) return defaultGraphOptions({ precision: large ? 'int4' : 'int8', cacheDtype: 'float32' });
  return defaultGraphOptions({ precision: large ? 'int4' : 'fp16', cacheDtype: 'float16' });
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
  const dir = path.resolve(trimmed);
  if (fs.existsSync(dir)) {
    if (isModelFolder(dir)) return dir;
    if (isCheckpointFolder(dir)) return convertCached(dir, options);
    throw new ModelResolveError(
      `Cannot use model "${setting}": ${dir} has neither ${MANIFEST_FILE} (a model folder) nor config.json ` +
        '(a Hugging Face checkpoint folder).',
    );
  }
  const hubIdTrouble = hubIdProblem(trimmed);
  if (hubIdTrouble) throw new ModelResolveError(`Cannot use model "${clip(trimmed)}": it is no Hugging Face id, since ${hubIdTrouble}.`);
  const hubId = parseHubModelId(trimmed);
  if (hubId) {
    // Once converted, a hub model needs neither the network nor its download (which may be deleted).
    const converted = findConvertedHubModel(hubId, options);
    if (converted) return converted;
    // The conversion follows on the same disk: its size (from config.json) is checked with the download's.
    const convertedBytes = (config: Record<string, unknown>) => {
      const arch = detectFamily(config).architecture(config);
      return estimateConvertedBytes(arch, graphFor(parameterCount(arch), options).precision);
    };
    return convertCached(await downloadToCache(hubId, { ...options, bytesNeededAfter: convertedBytes }), options, hubId);
  }
  throw new ModelResolveError(
    `Cannot use model "${clip(setting)}": ${clip(dir)} does not exist. Use "builtin", a model folder (with ${MANIFEST_FILE}), ` +
      'a Hugging Face checkpoint folder, or a Hugging Face id such as Dream-org/Dream-Coder-v0-Instruct-7B.',
  );
}

/** A setting as errors quote it: a path or id of hundreds of characters is cut. */
function clip(text: string): string {
  return text.length > 120 ? `${text.slice(0, 60)}...${text.slice(-40)}` : text;
}

/** A hub id as a folder name: `owner--name@revision`. */
export const hubSlug = (id: HubModelId) => `${id.repo.replace('/', '--')}@${id.revision.replace(/[^\w.-]/g, '_')}`;

/** Names the graph options in a converted model's folder name. */
function graphKey(graph: StepGraphOptions): string {
  const head = graph.head === 'stats' ? `stats${graph.topK}` : 'logits';
  return `${graph.precision}-${graph.cacheDtype}-${graph.attention}-${head}`;
}

function graphFor(parameters: number, options: Pick<ResolveOptions, 'device' | 'graph'>): StepGraphOptions {
  return { ...conversionFor(parameters, options.device), ...options.graph };
}

/**
 * Converted hub models live in `<cacheDir>/models/<owner>--<name>@<revision>-<graph>`; the graph depends on
 * the model's size, which each candidate's manifest gives.
 */
export function findConvertedHubModel(id: HubModelId, options: Pick<ResolveOptions, 'cacheDir' | 'device' | 'graph'>): string | undefined {
  const models = path.join(options.cacheDir, 'models');
  const prefix = `${hubSlug(id)}-`;
  if (!fs.existsSync(models)) return undefined;
  for (const entry of fs.readdirSync(models)) {
    const dir = path.join(models, entry);
    if (!entry.startsWith(prefix) || !isModelFolder(dir)) continue;
    const parameters = parameterCount(readManifest(dir).architecture);
    if (entry === prefix + graphKey(graphFor(parameters, options))) return dir;
  }
  return undefined;
}

/** Where a hub checkpoint is downloaded to. */
export const hubDownloadDir = (cacheDir: string, id: HubModelId) => path.join(cacheDir, 'hub', hubSlug(id));

/** Downloads a hub checkpoint into `<cacheDir>/hub/` (resuming, checking) and returns its folder. */
export async function downloadToCache(
  id: HubModelId,
  options: Omit<ResolveOptions, 'device' | 'graph'> & Pick<HubOptions, 'bytesNeededAfter'>,
): Promise<string> {
  const dir = hubDownloadDir(options.cacheDir, id);
  const mib = (bytes: number) => (bytes / 1024 ** 2).toFixed(0);
  return downloadCheckpoint(id, dir, {
    baseUrl: options.hubUrl || process.env.HF_ENDPOINT || DEFAULT_HUB_URL,
    token: options.token ?? process.env.HF_TOKEN,
    signal: options.signal,
    bytesNeededAfter: options.bytesNeededAfter,
    onProgress: (p) =>
      options.onProgress?.({
        stage: 'download',
        message: `Downloading ${id.repo}: ${p.file} (${mib(p.receivedBytes)} of ${mib(p.totalBytes)} MiB)`,
        receivedBytes: p.receivedBytes,
        totalBytes: p.totalBytes,
        ...(p.totalBytes > 0 ? { fraction: p.receivedBytes / p.totalBytes } : {}),
      }),
  });
}

/**
 * Converts `srcDir` unless a conversion of the same source with the same graph options is cached: under
 * the hub id for downloads, under the source hash for local checkpoint folders (which may change in place).
 */
async function convertCached(srcDir: string, options: ResolveOptions, hubId?: HubModelId): Promise<string> {
  const config = readJsonFile(path.join(srcDir, 'config.json'), 'checkpoint config') as Record<string, unknown>;
  const graph = graphFor(parameterCount(detectFamily(config).architecture(config)), options);
  const hash = await checkpointFingerprint(srcDir);
  const out = path.join(options.cacheDir, 'models', `${hubId ? hubSlug(hubId) : hash.slice(0, 16)}-${graphKey(graph)}`);
  if (isModelFolder(out)) return out;
  const name = hubId?.repo ?? path.basename(srcDir);
  try {
    await convertCheckpoint(srcDir, out, {
      ...graph,
      sourceHash: hash,
      ...(hubId ? { hubId } : {}),
      signal: options.signal,
      onProgress: (p) =>
        options.onProgress?.({
          stage: 'convert',
          message: `Converting ${name} to ${graph.precision}: tensor ${p.tensor} of ${p.tensors}`,
          fraction: p.totalBytes > 0 ? p.bytesRead / p.totalBytes : p.tensor / p.tensors,
        }),
    });
  } catch (error) {
    // Another engine may have converted the same checkpoint meanwhile.
    if (isModelFolder(out)) return out;
    throw error;
  }
  return out;
}

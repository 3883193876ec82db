/**
 * Downloads a Hugging Face checkpoint (what the converter needs, nothing more) from the hub's
 * `/<owner>/<name>/resolve/<revision>/<file>` routes into a folder, with:
 * - resume and checks per file (fileDownload.ts): an interrupted transfer continues with an HTTP Range request,
 *   in this call or a later one; the size the hub announces (`X-Linked-Size`, else `Content-Length`) and, for
 *   LFS files, the sha256 it announces (`X-Linked-Etag`) are checked, and a mismatch deletes the file;
 * - free disk space checked against what is still to come (plus what the caller needs afterwards, e.g. the
 *   conversion) before the weights are fetched;
 * - an optional token (`Authorization: Bearer`) for gated and private repositories, checked before it is
 *   used and never repeated in a message;
 * - nothing left behind by a download that fails before any file arrived;
 * - cancellation through an AbortSignal, keeping what arrived for a resume.
 * The base URL is configurable (tests serve the same routes from 127.0.0.1).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonFile } from '../model/jsonFile';
import type { HubModelId } from '../../common/hubModelId';
import { ensureFreeSpace } from '../machine/diskSpace';
import { bytesPresent, describeFetchError, downloadFile, DownloadError, type DownloadFailure, type RemoteFile } from './fileDownload';
import { isProcessRunning } from '../machine/processes';

export { hubIdProblem, parseHubModelId, type HubModelId } from '../../common/hubModelId';

export const DEFAULT_HUB_URL = 'https://huggingface.co';
/** Where the token comes from, named in errors so the user knows what to set. */
export const TOKEN_SETTING_HINT = 'VS Code with "DLM: Set Hugging Face Token", or in the HF_TOKEN environment variable of the dlm command';

/** Hugging Face tokens are short printable ASCII (`hf_` and letters and digits); this bounds what is accepted. */
const MAX_TOKEN_CHARS = 512;

/** Why `token` cannot be an access token, never quoting it (it is a secret); undefined when it may be one. */
export function hubTokenProblem(token: string): string | undefined {
  if (token.length === 0) return 'it is empty';
  if (token.length > MAX_TOKEN_CHARS) return `it has ${token.length} characters, more than a token has`;
  if (/[\r\n]/.test(token)) return 'it contains a line break';
  if (/\s/.test(token)) return 'it contains a space';
  if (!/^[\x21-\x7e]+$/.test(token)) return 'it contains characters other than letters, digits and punctuation';
  return undefined;
}

export interface DownloadProgress {
  file: string;
  /** Bytes of all files known so far, received (including resumed bytes) and expected. */
  receivedBytes: number;
  totalBytes: number;
}

export interface HubOptions {
  baseUrl?: string;
  token?: string;
  /** Transfers retried (with Range) after a broken connection, per file. */
  retries?: number;
  onProgress?: (p: DownloadProgress) => void;
  /**
   * Bytes the caller will need on the same disk after the download (e.g. its conversion), from the
   * checkpoint's config.json; checked with the download's own remaining bytes before the weights are fetched.
   */
  bytesNeededAfter?: (config: Record<string, unknown>) => number;
  signal?: AbortSignal;
}

export class HubError extends Error {
  override name = 'HubError';
  constructor(
    message: string,
    /** What went wrong, for callers that react (offer a token, say which URL failed). */
    readonly reason: DownloadFailure | 'invalid' = 'invalid',
    readonly url?: string,
  ) {
    super(message);
  }
}

/** Written into the download folder once every file is in place and checked. */
export const COMPLETE_MARKER = '.dlm-download-complete.json';

const TOKENIZER_EXTRAS = ['tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json'];

/**
 * Downloads the checkpoint `id` into `dir` and returns `dir`. Files already complete (per the marker) are
 * not fetched again.
 */
export async function downloadCheckpoint(id: HubModelId, dir: string, options: HubOptions = {}): Promise<string> {
  if (fs.existsSync(path.join(dir, COMPLETE_MARKER))) return dir;
  const tokenProblem = options.token === undefined ? undefined : hubTokenProblem(options.token);
  if (tokenProblem) throw new HubError(`the Hugging Face access token is not valid: ${tokenProblem}; set it again in ${TOKEN_SETTING_HINT}`);
  const created = fs.mkdirSync(dir, { recursive: true });
  const release = lockDownload(dir, id);
  try {
    await fetchCheckpoint(id, dir, options);
  } catch (error) {
    release();
    // A download that failed before any file arrived (a wrong id, a refused token, no network) leaves nothing;
    // partial files stay, to be resumed.
    if (created !== undefined) removeEmptyFolders(dir, created);
    throw error;
  }
  release();
  return dir;
}

const LOCK_FILE = '.dlm-download.lock';

/**
 * One process writes a download folder at a time (two editor windows may ask for the same model): the lock
 * file holds the writer's pid, and a lock whose process is gone is taken over.
 */
function lockDownload(dir: string, id: HubModelId): () => void {
  const lock = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(lock, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(fs.readFileSync(lock, 'utf8'));
      if (Number.isInteger(owner) && owner !== process.pid && isProcessRunning(owner)) {
        throw new HubError(`${id.repo} is being downloaded by another DLM engine (process ${owner}); wait for it to finish`, 'busy');
      }
      fs.rmSync(lock, { force: true });
    }
  }
  throw new HubError(`cannot lock ${dir} for the download of ${id.repo}`, 'busy');
}


/** Removes `dir` and then its parents up to and including `top`, as long as each is empty. */
function removeEmptyFolders(dir: string, top: string): void {
  for (let folder = dir; folder.startsWith(top); folder = path.dirname(folder)) {
    try {
      fs.rmdirSync(folder);
    } catch {
      return; // not empty (or already gone): keep it and what holds it
    }
    if (folder === top) return;
  }
}

async function fetchCheckpoint(id: HubModelId, dir: string, options: HubOptions): Promise<void> {
  const hub = new HubClient(id, options);

  // Metadata first: it decides which other files exist, and fails fast on a wrong id or a missing token.
  const config = await hub.require('config.json', `${id.repo} has no config.json at revision ${id.revision}; is the id right?`);
  const files: RemoteFile[] = [config];
  for (const name of ['generation_config.json', ...TOKENIZER_EXTRAS]) {
    const f = await hub.optional(name);
    if (f) files.push(f);
  }
  const tokenizer = await hub.optional('tokenizer.json');
  if (tokenizer) files.push(tokenizer);
  else {
    // Slow-tokenizer checkpoints (Dream's) ship the BPE as vocab.json + merges.txt; the converter builds
    // tokenizer.json from them.
    for (const name of ['vocab.json', 'merges.txt']) {
      files.push(await hub.require(name, `${id.repo} has neither tokenizer.json nor ${name}; the converter needs one of them`));
    }
  }
  const index = await hub.optional('model.safetensors.index.json');
  if (index) files.push(index);
  // The small files first: the index names the shards, the config sizes what comes after the download.
  await hub.fetchAll(files, dir);
  if (index) {
    const weightMap = readWeightMap(path.join(dir, index.name));
    for (const shard of [...new Set(Object.values(weightMap))].sort()) {
      files.push(await hub.require(shard, `${id.repo}: shard ${shard} named in ${index.name} is missing on the hub`));
    }
  } else {
    files.push(
      await hub.require(
        'model.safetensors',
        `${id.repo} has no model.safetensors or model.safetensors.index.json at revision ${id.revision}; ` +
          'only safetensors checkpoints can be converted',
      ),
    );
  }
  await ensureRoomFor(files, dir, options);
  await hub.fetchAll(files, dir);
  fs.writeFileSync(
    path.join(dir, COMPLETE_MARKER),
    JSON.stringify(
      { repo: id.repo, revision: id.revision, files: files.map(({ name, size, digest }) => ({ name, size, sha256: digest?.hex ?? null })) },
      null,
      2,
    ),
  );
}

/** Fails before the weights are fetched when the disk cannot hold what is still to come and what follows it. */
async function ensureRoomFor(files: RemoteFile[], dir: string, options: HubOptions): Promise<void> {
  const remaining = files.reduce((n, f) => n + Math.max(0, (f.size ?? 0) - bytesPresent(f, dir)), 0);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const after = options.bytesNeededAfter?.(config) ?? 0;
  const what = after > 0 ? 'the rest of the download and its conversion' : 'the rest of the download';
  await ensureFreeSpace(dir, remaining + after, what, 'free some space and run again (what was downloaded is kept)');
}

function readWeightMap(file: string): Record<string, string> {
  const parsed = readJsonFile(file, 'safetensors index') as { weight_map?: Record<string, string> };
  if (!parsed.weight_map || typeof parsed.weight_map !== 'object') throw new HubError(`${file} has no weight_map`);
  for (const shard of Object.values(parsed.weight_map)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      throw new HubError(`${file}: shard name ${JSON.stringify(shard)} is not a plain file name`);
    }
  }
  return parsed.weight_map;
}


class HubClient {
  private readonly baseUrl: string;
  /** Bytes of the files already finished in this call, for progress. */
  private finished = 0;
  private total = 0;

  constructor(
    private readonly id: HubModelId,
    private readonly options: HubOptions,
  ) {
    this.baseUrl = (options.baseUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
  }

  private url(name: string): string {
    const revision = encodeURIComponent(this.id.revision);
    return `${this.baseUrl}/${this.id.repo}/resolve/${revision}/${encodeURIComponent(name)}`;
  }

  private headers(): Record<string, string> {
    return this.options.token ? { authorization: `Bearer ${this.options.token}` } : {};
  }

  /**
   * HEAD the file; null when the hub says it does not exist. Redirects are not followed blindly: for an LFS
   * file the hub's own 302 carries the size and sha256 (the CDN's answer does not); a relative redirect
   * (a renamed repository) is followed.
   */
  async optional(name: string): Promise<RemoteFile | null> {
    let url = this.url(name);
    let response: Response | undefined;
    for (let hops = 0; hops < 5; hops++) {
      try {
        response = await fetch(url, { method: 'HEAD', headers: this.headers(), redirect: 'manual', signal: this.options.signal });
      } catch (error) {
        if (this.options.signal?.aborted) throw new HubError(`download of ${this.id.repo} cancelled`, 'cancelled', url);
        throw new HubError(
          `cannot reach ${this.baseUrl} for ${this.id.repo} (${describeFetchError(error)} for ${url}); check the network or proxy`,
          'unreachable',
          url,
        );
      }
      const location = response.headers.get('location');
      const isRedirect = response.status >= 300 && response.status < 400;
      if (!isRedirect || response.headers.has('x-linked-size') || !location || !location.startsWith('/')) break;
      url = new URL(location, url).toString();
    }
    if (!response) throw new HubError(`${this.id.repo}/${name}: too many redirects`, 'http', url);
    if (response.status === 404) return null;
    this.checkAccess(response, name);
    const isRedirect = response.status >= 300 && response.status < 400;
    if (!response.ok && !isRedirect) throw new HubError(`${this.id.repo}/${name}: the hub answered HTTP ${response.status}`, 'http', url);
    const announced = response.headers.get('x-linked-size') ?? (isRedirect ? null : response.headers.get('content-length'));
    const size = announced !== null && /^\d+$/.test(announced) ? Number(announced) : null;
    const etag = (response.headers.get('x-linked-etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
    const digest = /^[0-9a-f]{64}$/i.test(etag) ? { algorithm: 'sha256' as const, hex: etag.toLowerCase() } : null;
    return { name, url, size, digest };
  }

  async require(name: string, missing: string): Promise<RemoteFile> {
    const file = await this.optional(name);
    if (!file) throw new HubError(`${missing} (HTTP 404 for ${name})`, 'missing', this.url(name));
    return file;
  }

  private checkAccess(response: Response, name: string): void {
    if (response.status !== 401 && response.status !== 403) return;
    const why = this.options.token
      ? `the token was refused (HTTP ${response.status}); check that it is valid and that you accepted the model's terms on the hub`
      : `the repository is gated or private (HTTP ${response.status}); accept its terms on the hub and put an access token in ${TOKEN_SETTING_HINT}`;
    throw new HubError(`cannot download ${this.id.repo}/${name}: ${why}`, 'denied', response.url || this.url(name));
  }

  async fetchAll(files: RemoteFile[], dir: string): Promise<void> {
    this.total = files.reduce((n, f) => n + (f.size ?? 0), 0);
    this.finished = 0;
    for (const f of files) {
      try {
        await downloadFile(f, dir, {
          label: `${this.id.repo}/${f.name}`,
          source: 'the hub',
          headers: this.headers(),
          retries: this.options.retries,
          signal: this.options.signal,
          checkResponse: (response) => this.checkAccess(response, f.name),
          onBytes: (fileBytes) =>
            this.options.onProgress?.({ file: f.name, receivedBytes: this.finished + fileBytes, totalBytes: this.total }),
        });
      } catch (error) {
        if (error instanceof DownloadError) throw new HubError(error.message, error.reason, error.url);
        throw error;
      }
      // Small files carry no hash to check; a JSON file that does not parse is as corrupt as a hash mismatch.
      if (f.name.endsWith('.json')) this.checkJson(path.join(dir, f.name), f.name);
      this.finished += f.size ?? fs.statSync(path.join(dir, f.name)).size;
    }
  }

  private checkJson(file: string, name: string): void {
    try {
      JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      fs.rmSync(file, { force: true });
      throw new HubError(`${this.id.repo}/${name} as served by the hub is not valid JSON; the file was deleted, run again`);
    }
  }
}

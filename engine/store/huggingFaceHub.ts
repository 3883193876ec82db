/**
 * Downloads a Hugging Face checkpoint (what the converter needs, nothing more) from the hub's
 * `/<owner>/<name>/resolve/<revision>/<file>` routes into a folder, with:
 * - resume: bytes go to `<file>.partial`; an interrupted transfer continues with an HTTP Range request,
 *   both within one call (a few retries) and in a later call;
 * - checks: the size the hub announces (`X-Linked-Size`, else `Content-Length`) and, for LFS files, the
 *   sha256 it announces (`X-Linked-Etag`); a mismatch deletes the file and fails, so no broken checkpoint
 *   is ever left looking complete;
 * - an optional token (`Authorization: Bearer`) for gated and private repositories, checked before it is
 *   used and never repeated in a message;
 * - nothing left behind by a download that fails before any file arrived.
 * The base URL is configurable (tests serve the same routes from 127.0.0.1).
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonFile } from '../model/jsonFile';

export const DEFAULT_HUB_URL = 'https://huggingface.co';
/** Where the token comes from, named in errors so the user knows what to set. */
export const TOKEN_SETTING_HINT = 'VS Code with "DLM: Set Hugging Face Token", or in the HF_TOKEN environment variable of the dlm command';

export interface HubModelId {
  repo: string;
  revision: string;
}

const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@([\w.\-/]+))?$/;
/** The hub's limit on an owner's and a repository's name. */
export const MAX_HUB_NAME_CHARS = 96;
/** Branch names and commit hashes fit; the revision is part of a folder name in the cache. */
export const MAX_HUB_REVISION_CHARS = 100;

/** `owner/name` or `owner/name@revision`; null when `text` is not shaped like a hub id or breaks the hub's limits. */
export function parseHubModelId(text: string): HubModelId | null {
  const match = HUB_ID.exec(text.trim());
  if (!match || hubIdProblem(text) !== undefined) return null;
  return { repo: `${match[1]}/${match[2]}`, revision: match[3] ?? 'main' };
}

/** Why `text`, shaped like a hub id, cannot be one (a name longer than the hub allows); undefined otherwise. */
export function hubIdProblem(text: string): string | undefined {
  const match = HUB_ID.exec(text.trim());
  if (!match) return undefined;
  const [, owner, name, revision] = match;
  for (const [what, value] of [['owner', owner], ['repository name', name]] as const) {
    if (value.length > MAX_HUB_NAME_CHARS) return `its ${what} has ${value.length} characters; the hub allows at most ${MAX_HUB_NAME_CHARS}`;
  }
  if (revision !== undefined && revision.length > MAX_HUB_REVISION_CHARS) {
    return `its revision has ${revision.length} characters; at most ${MAX_HUB_REVISION_CHARS} are accepted`;
  }
  return undefined;
}

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
}

export class HubError extends Error {
  override name = 'HubError';
}

/** Written into the download folder once every file is in place and checked. */
export const COMPLETE_MARKER = '.dlm-download-complete.json';

interface RemoteFile {
  name: string;
  url: string;
  size: number | null;
  sha256: string | null;
}

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
  try {
    return await download(id, dir, new HubClient(id, options));
  } catch (error) {
    // A download that failed before any file arrived (a wrong id, a refused token, no network) leaves nothing;
    // partial files stay, to be resumed.
    if (created !== undefined) removeEmptyFolders(dir, created);
    throw error;
  }
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

async function download(id: HubModelId, dir: string, hub: HubClient): Promise<string> {
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
  if (index) {
    files.push(index);
    // The small files first: the index names the shards.
    await hub.fetchAll(files, dir);
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
  await hub.fetchAll(files, dir);
  fs.writeFileSync(
    path.join(dir, COMPLETE_MARKER),
    JSON.stringify({ repo: id.repo, revision: id.revision, files: files.map(({ name, size, sha256 }) => ({ name, size, sha256 })) }, null, 2),
  );
  return dir;
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

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.options.token ? { ...extra, authorization: `Bearer ${this.options.token}` } : extra;
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
        response = await fetch(url, { method: 'HEAD', headers: this.headers(), redirect: 'manual' });
      } catch (error) {
        throw new HubError(`cannot reach ${this.baseUrl} for ${this.id.repo} (${describe(error)}); check the network or proxy`);
      }
      const location = response.headers.get('location');
      const isRedirect = response.status >= 300 && response.status < 400;
      if (!isRedirect || response.headers.has('x-linked-size') || !location || !location.startsWith('/')) break;
      url = new URL(location, url).toString();
    }
    if (!response) throw new HubError(`${this.id.repo}/${name}: too many redirects`);
    if (response.status === 404) return null;
    this.checkAccess(response, name);
    const isRedirect = response.status >= 300 && response.status < 400;
    if (!response.ok && !isRedirect) throw new HubError(`${this.id.repo}/${name}: the hub answered HTTP ${response.status}`);
    const announced = response.headers.get('x-linked-size') ?? (isRedirect ? null : response.headers.get('content-length'));
    const size = announced !== null && /^\d+$/.test(announced) ? Number(announced) : null;
    const etag = (response.headers.get('x-linked-etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
    const sha256 = /^[0-9a-f]{64}$/i.test(etag) ? etag.toLowerCase() : null;
    return { name, url, size, sha256 };
  }

  async require(name: string, missing: string): Promise<RemoteFile> {
    const file = await this.optional(name);
    if (!file) throw new HubError(`${missing} (HTTP 404 for ${name})`);
    return file;
  }

  private checkAccess(response: Response, name: string): void {
    if (response.status !== 401 && response.status !== 403) return;
    const why = this.options.token
      ? `the token was refused (HTTP ${response.status}); check that it is valid and that you accepted the model's terms on the hub`
      : `the repository is gated or private (HTTP ${response.status}); accept its terms on the hub and put an access token in ${TOKEN_SETTING_HINT}`;
    throw new HubError(`cannot download ${this.id.repo}/${name}: ${why}`);
  }

  async fetchAll(files: RemoteFile[], dir: string): Promise<void> {
    this.total = files.reduce((n, f) => n + (f.size ?? 0), 0);
    this.finished = 0;
    for (const f of files) {
      await this.fetchTo(f, dir);
      this.finished += f.size ?? fs.statSync(path.join(dir, f.name)).size;
    }
  }

  /** A finished file is trusted when its size matches; its hash was checked when it was finished. */
  private isComplete(f: RemoteFile, file: string): boolean {
    return f.size === null || fs.statSync(file).size === f.size;
  }

  /** Downloads one file into `dir/<name>` through `<name>.partial`, resuming and retrying. */
  private async fetchTo(f: RemoteFile, dir: string): Promise<void> {
    const final = path.join(dir, f.name);
    if (fs.existsSync(final) && this.isComplete(f, final)) return;
    const partial = `${final}.partial`;
    const retries = this.options.retries ?? 3;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.transfer(f, partial);
        break;
      } catch (error) {
        if (!(error instanceof InterruptedTransfer) || attempt >= retries) {
          if (error instanceof InterruptedTransfer) {
            throw new HubError(`download of ${this.id.repo}/${f.name} was interrupted (${error.message}); run again to resume`);
          }
          throw error;
        }
      }
    }
    // Small files carry no hash to check; a JSON file that does not parse is as corrupt as a hash mismatch.
    if (f.name.endsWith('.json')) {
      try {
        JSON.parse(fs.readFileSync(partial, 'utf8'));
      } catch {
        fs.rmSync(partial, { force: true });
        throw new HubError(`${this.id.repo}/${f.name} as served by the hub is not valid JSON; the file was deleted, run again`);
      }
    }
    fs.renameSync(partial, final);
  }

  private async transfer(f: RemoteFile, partial: string): Promise<void> {
    let have = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
    if (f.size !== null && have > f.size) have = 0;
    let response: Response;
    try {
      response = await fetch(f.url, { headers: this.headers(have > 0 ? { range: `bytes=${have}-` } : {}), redirect: 'follow' });
    } catch (error) {
      throw new InterruptedTransfer(describe(error));
    }
    this.checkAccess(response, f.name);
    if (response.status === 404) throw new HubError(`${this.id.repo}/${f.name} disappeared from the hub (HTTP 404)`);
    const alreadyComplete = response.status === 416 && have > 0 && have === f.size;
    if (response.status === 416 && !alreadyComplete) {
      // The hub holds fewer bytes than it announced (or than we already have): the partial file is useless.
      fs.rmSync(partial, { force: true });
      throw new HubError(`${this.id.repo}/${f.name}: the hub cannot serve bytes from ${have} on although it announced ${f.size}; the partial file was deleted, run again`);
    }
    if (!alreadyComplete && response.status !== 200 && response.status !== 206) {
      throw new HubError(`${this.id.repo}/${f.name}: the hub answered HTTP ${response.status}`);
    }
    // A server that ignores the Range request answers 200 with the whole file: start over.
    if (response.status === 200) have = 0;
    if (response.status === 206 && !response.headers.get('content-range')?.startsWith(`bytes ${have}-`)) {
      throw new HubError(`${this.id.repo}/${f.name}: the hub resumed at the wrong offset (${response.headers.get('content-range')})`);
    }
    const hash = createHash('sha256');
    if (have > 0 && f.sha256) await hashFile(partial, hash);
    this.report(f, have);
    if (alreadyComplete) await response.body?.cancel();
    else await this.stream(response, partial, have, hash, f);
    this.verify(f, partial, hash);
  }

  private report(f: RemoteFile, fileBytes: number): void {
    this.options.onProgress?.({ file: f.name, receivedBytes: this.finished + fileBytes, totalBytes: this.total });
  }

  private async stream(response: Response, partial: string, have: number, hash: Hash, f: RemoteFile): Promise<void> {
    const out = fs.openSync(partial, have > 0 ? 'a' : 'w');
    let fileBytes = have;
    try {
      if (!response.body) throw new InterruptedTransfer('empty response');
      const reader = response.body.getReader();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (error) {
          throw new InterruptedTransfer(describe(error));
        }
        if (chunk.done) break;
        fs.writeSync(out, chunk.value);
        hash.update(chunk.value);
        fileBytes += chunk.value.length;
        this.report(f, fileBytes);
      }
    } finally {
      fs.closeSync(out);
    }
    if (f.size !== null && fileBytes < f.size) throw new InterruptedTransfer(`${fileBytes} of ${f.size} bytes received`);
  }

  private verify(f: RemoteFile, partial: string, hash: Hash): void {
    const size = fs.statSync(partial).size;
    if (f.size !== null && size !== f.size) {
      fs.rmSync(partial, { force: true });
      throw new HubError(`${this.id.repo}/${f.name}: received ${size} bytes, the hub announced ${f.size}; the file was deleted, run again`);
    }
    if (f.sha256) {
      const actual = hash.digest('hex');
      if (actual !== f.sha256) {
        fs.rmSync(partial, { force: true });
        throw new HubError(
          `${this.id.repo}/${f.name} is corrupt: sha256 ${actual}, the hub announced ${f.sha256}; the file was deleted, run again`,
        );
      }
    }
  }
}

class InterruptedTransfer extends Error {}

async function hashFile(file: string, hash: Hash): Promise<void> {
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

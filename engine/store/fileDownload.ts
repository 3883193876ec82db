/**
 * One file over HTTP into a folder, the way every download of the engine needs it (Hugging Face checkpoints,
 * onnxruntime's CUDA provider package):
 * - resume: bytes go to `<file>.partial`; an interrupted transfer continues with an HTTP Range request, both
 *   within one call (a few retries) and in a later call;
 * - checks: the announced size, and a digest (sha256 or sha512) when the source publishes one; a mismatch
 *   deletes the file and fails, so no broken file is ever left looking complete;
 * - cancellation through an AbortSignal, keeping the partial file for a later resume.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface RemoteFile {
  /** The file name in the destination folder. */
  name: string;
  url: string;
  /** Announced size in bytes, or null when the source announces none. */
  size: number | null;
  /** Announced digest (hex), when the source publishes one. */
  digest: { algorithm: 'sha256' | 'sha512'; hex: string } | null;
}

/** Why a download failed, for callers that explain or react (offer a token, free space, retry). */
export type DownloadFailure = 'unreachable' | 'interrupted' | 'denied' | 'missing' | 'corrupt' | 'http' | 'cancelled' | 'busy';

export class DownloadError extends Error {
  override name = 'DownloadError';
  constructor(
    message: string,
    readonly reason: DownloadFailure,
    /** The URL that failed. */
    readonly url: string,
  ) {
    super(message);
  }
}

export interface FileDownloadOptions {
  /** Names the file in messages, e.g. `org/model/config.json`. */
  label: string;
  /** Names the server in messages: "the hub", "the NuGet feed". */
  source: string;
  headers?: Record<string, string>;
  /** Transfers retried (with Range) after a broken connection. */
  retries?: number;
  /** Bytes of this file present so far (resumed bytes included), after every chunk. */
  onBytes?: (fileBytes: number) => void;
  /** Throws a DownloadError (e.g. access denied) for a response that is not a transfer. */
  checkResponse?: (response: Response) => void;
  signal?: AbortSignal;
}

/** Downloads `file` into `dir/<name>` through `<name>.partial`, resuming and retrying; a complete file is kept. */
export async function downloadFile(file: RemoteFile, dir: string, options: FileDownloadOptions): Promise<void> {
  const final = path.join(dir, file.name);
  if (fs.existsSync(final) && (file.size === null || fs.statSync(final).size === file.size)) return;
  const partial = `${final}.partial`;
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      await transfer(file, partial, options);
      break;
    } catch (error) {
      if (!(error instanceof InterruptedTransfer)) throw error;
      if (options.signal?.aborted) throw cancelled(options, file);
      if (attempt >= retries) {
        throw new DownloadError(`download of ${options.label} was interrupted (${error.message}); run again to resume`, 'interrupted', file.url);
      }
    }
  }
  fs.renameSync(partial, final);
}

/** Bytes already on disk for `file` in `dir`, complete or partial. */
export function bytesPresent(file: Pick<RemoteFile, 'name' | 'size'>, dir: string): number {
  const final = path.join(dir, file.name);
  if (fs.existsSync(final)) return fs.statSync(final).size;
  const partial = `${final}.partial`;
  return fs.existsSync(partial) ? Math.min(fs.statSync(partial).size, file.size ?? Infinity) : 0;
}

function cancelled(options: FileDownloadOptions, file: RemoteFile): DownloadError {
  return new DownloadError(`download of ${options.label} cancelled; the bytes received are kept for a resume`, 'cancelled', file.url);
}

async function transfer(f: RemoteFile, partial: string, options: FileDownloadOptions): Promise<void> {
  const { label, source } = options;
  let have = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
  if (f.size !== null && have > f.size) have = 0;
  let response: Response;
  try {
    const headers: Record<string, string> = { ...options.headers, ...(have > 0 ? { range: `bytes=${have}-` } : {}) };
    response = await fetch(f.url, { headers, redirect: 'follow', signal: options.signal });
  } catch (error) {
    if (options.signal?.aborted) throw cancelled(options, f);
    throw new InterruptedTransfer(describeFetchError(error));
  }
  options.checkResponse?.(response);
  if (response.status === 404) throw new DownloadError(`${label} disappeared from ${source} (HTTP 404)`, 'missing', f.url);
  const alreadyComplete = response.status === 416 && have > 0 && have === f.size;
  if (response.status === 416 && !alreadyComplete) {
    // The source holds fewer bytes than it announced (or than we already have): the partial file is useless.
    fs.rmSync(partial, { force: true });
    throw new DownloadError(
      `${label}: ${source} cannot serve bytes from ${have} on although it announced ${f.size}; the partial file was deleted, run again`,
      'corrupt',
      f.url,
    );
  }
  if (!alreadyComplete && response.status !== 200 && response.status !== 206) {
    throw new DownloadError(`${label}: ${source} answered HTTP ${response.status}`, 'http', f.url);
  }
  // A server that ignores the Range request answers 200 with the whole file: start over.
  if (response.status === 200) have = 0;
  if (response.status === 206 && !response.headers.get('content-range')?.startsWith(`bytes ${have}-`)) {
    throw new DownloadError(`${label}: ${source} resumed at the wrong offset (${response.headers.get('content-range')})`, 'http', f.url);
  }
  const hash = createHash(f.digest?.algorithm ?? 'sha256');
  if (have > 0 && f.digest) await hashFile(partial, hash);
  options.onBytes?.(have);
  if (alreadyComplete) await response.body?.cancel();
  else await stream(response, partial, have, hash, f, options);
  verify(f, partial, hash, options);
}

async function stream(response: Response, partial: string, have: number, hash: Hash, f: RemoteFile, options: FileDownloadOptions): Promise<void> {
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
        if (options.signal?.aborted) throw cancelled(options, f);
        throw new InterruptedTransfer(describeFetchError(error));
      }
      if (chunk.done) break;
      fs.writeSync(out, chunk.value);
      hash.update(chunk.value);
      fileBytes += chunk.value.length;
      options.onBytes?.(fileBytes);
    }
  } finally {
    fs.closeSync(out);
  }
  if (f.size !== null && fileBytes < f.size) throw new InterruptedTransfer(`${fileBytes} of ${f.size} bytes received`);
}

function verify(f: RemoteFile, partial: string, hash: Hash, options: FileDownloadOptions): void {
  const { label, source } = options;
  const size = fs.statSync(partial).size;
  if (f.size !== null && size !== f.size) {
    fs.rmSync(partial, { force: true });
    throw new DownloadError(`${label}: received ${size} bytes, ${source} announced ${f.size}; the file was deleted, run again`, 'corrupt', f.url);
  }
  if (f.digest) {
    const actual = hash.digest('hex');
    if (actual !== f.digest.hex) {
      fs.rmSync(partial, { force: true });
      throw new DownloadError(
        `${label} is corrupt: ${f.digest.algorithm} ${actual}, ${source} announced ${f.digest.hex}; the file was deleted, run again`,
        'corrupt',
        f.url,
      );
    }
  }
}

class InterruptedTransfer extends Error {}

async function hashFile(file: string, hash: Hash): Promise<void> {
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
}

/** The useful part of a fetch failure: the system error code (ECONNREFUSED, ENOTFOUND, ...) when there is one. */
export function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/**
 * What downloads and conversions take on disk, under the cache folder modelManager.ts fills:
 * `<cacheDir>/hub/<owner>--<name>@<revision>` (downloads, complete or partial) and `<cacheDir>/models/<...>`
 * (converted model folders, and the temporary folders of conversions that were stopped). Lists them with their
 * sizes and deletes one, never a folder outside those two, one in use, or one being written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StoredModel } from '../../common/protocol';
import { COMPLETE_MARKER } from './huggingFaceHub';
import { MANIFEST_FILE, readManifest } from '../model/manifest';

export class StoreError extends Error {
  override name = 'StoreError';
}

/** `owner--name@revision` back to `owner/name` (with `@revision` unless it is main). */
function hubName(slug: string): string {
  const [repo, revision] = slug.split('@');
  const id = repo.replace('--', '/');
  return revision && revision !== 'main' ? `${id}@${revision}` : id;
}

/** Everything in the store; `busy` folders (loaded models, downloads running) are marked in use. */
export function listStoredModels(cacheDir: string, busy: ReadonlySet<string>): StoredModel[] {
  const stored: StoredModel[] = [];
  const inUse = (dir: string) => busy.has(path.resolve(dir));
  for (const entry of subfolders(path.join(cacheDir, 'hub'))) {
    stored.push({
      path: entry,
      kind: 'download',
      name: hubName(path.basename(entry)),
      bytes: folderBytes(entry),
      complete: fs.existsSync(path.join(entry, COMPLETE_MARKER)),
      inUse: inUse(entry),
    });
  }
  for (const entry of subfolders(path.join(cacheDir, 'models'))) {
    const base = path.basename(entry);
    if (fs.existsSync(path.join(entry, MANIFEST_FILE))) {
      let manifest;
      try {
        manifest = readManifest(entry);
      } catch {
        manifest = undefined;
      }
      stored.push({
        path: entry,
        kind: 'converted',
        name: manifest?.source?.id ?? manifest?.name ?? base,
        bytes: folderBytes(entry),
        complete: manifest !== undefined,
        ...(manifest ? { precision: manifest.variants[0].precision } : {}),
        inUse: inUse(entry),
      });
    } else {
      // A conversion's temporary folder (`.<name>.partial-<pid>-<random>`), left by one that was stopped.
      const target = /^\.(.+)\.partial-\d+-/.exec(base)?.[1] ?? base;
      stored.push({ path: entry, kind: 'converted', name: hubName(target.replace(/-(fp32|fp16|int4)-.*$/, '')), bytes: folderBytes(entry), complete: false, inUse: inUse(entry) });
    }
  }
  return stored.sort((a, b) => a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind));
}

/** Deletes one stored download or converted model; refuses anything else, and folders in use. */
export function deleteStoredModel(cacheDir: string, target: string, busy: ReadonlySet<string>): void {
  const resolved = path.resolve(target);
  const parent = path.dirname(resolved);
  const allowed = [path.resolve(cacheDir, 'hub'), path.resolve(cacheDir, 'models')];
  if (!allowed.includes(parent) || path.basename(resolved) === '') {
    throw new StoreError(`${target} is not a stored model: only folders directly inside ${allowed.join(' or ')} are deleted`);
  }
  if (!fs.existsSync(resolved)) throw new StoreError(`${target} does not exist (already deleted?)`);
  if (busy.has(resolved)) throw new StoreError(`${target} is in use (loaded, or being downloaded); switch to another model or cancel the download first`);
  fs.rmSync(resolved, { recursive: true, force: true });
}

function subfolders(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => path.join(dir, e.name));
  } catch {
    return [];
  }
}

/** Bytes of the files in a folder tree (0 when it does not exist). */
export function folderBytes(dir: string): number {
  let bytes = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    bytes += entry.isDirectory() ? folderBytes(full) : entry.isFile() ? fs.statSync(full).size : 0;
  }
  return bytes;
}

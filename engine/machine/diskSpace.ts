/**
 * Free disk space, checked before work that writes gigabytes (a download, a conversion), so it fails at once
 * with the numbers instead of hours later on a full disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export class NotEnoughDiskSpace extends Error {
  override name = 'NotEnoughDiskSpace';
  constructor(
    message: string,
    readonly dir: string,
    readonly neededBytes: number,
    readonly freeBytes: number,
  ) {
    super(message);
  }
}

/** Bytes free for this user on the disk holding `dir` (or its nearest existing parent). */
export async function freeDiskBytes(dir: string): Promise<number> {
  let existing = path.resolve(dir);
  while (!fs.existsSync(existing) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  const stats = await fs.promises.statfs(existing);
  return stats.bavail * stats.bsize;
}

/** Throws NotEnoughDiskSpace when `what` (e.g. "the converted model") needs more than is free in `dir`. */
export async function ensureFreeSpace(dir: string, neededBytes: number, what: string, advice: string): Promise<void> {
  const free = await freeDiskBytes(dir);
  if (free < neededBytes) {
    throw new NotEnoughDiskSpace(
      `not enough disk space in ${dir}: ${what} needs about ${gib(neededBytes)}, ${gib(free)} is free; ${advice}`,
      dir,
      neededBytes,
      free,
    );
  }
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;

/**
 * Reading zip archives (a NuGet package, a .vsix) without loading them into memory: the central directory is
 * read from the end of the file, and one entry at a time is streamed out through inflate, its CRC-32 checked.
 * Stored and deflated entries; zip64 archives (over 4 GiB or 65,535 entries) are refused by name.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import * as fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

export class ZipError extends Error {
  override name = 'ZipError';
}

const END_OF_DIRECTORY = 0x06054b50;
const DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
/** The end record is 22 bytes plus a comment of at most 65,535. */
const TAIL_BYTES = 22 + 0xffff;

function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  const read = fs.readSync(fd, buffer, 0, length, position);
  return buffer.subarray(0, read);
}

/** The entries of the zip file at `file`, from its central directory. */
export function readZipEntries(file: string): ZipEntry[] {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const tailStart = Math.max(0, size - TAIL_BYTES);
    const tail = readAt(fd, tailStart, size - tailStart);
    let end = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === END_OF_DIRECTORY) {
        end = i;
        break;
      }
    }
    if (end < 0) throw new ZipError(`${file} is not a zip archive (no end of central directory)`);
    const count = tail.readUInt16LE(end + 10);
    const directorySize = tail.readUInt32LE(end + 12);
    const directoryOffset = tail.readUInt32LE(end + 16);
    if (count === 0xffff || directoryOffset === 0xffffffff) throw new ZipError(`${file} is a zip64 archive, which is not supported`);
    const directory = readAt(fd, directoryOffset, directorySize);
    const entries: ZipEntry[] = [];
    let offset = 0;
    for (let i = 0; i < count; i++) {
      if (offset + 46 > directory.length || directory.readUInt32LE(offset) !== DIRECTORY_ENTRY) {
        throw new ZipError(`${file}: central directory entry ${i} is damaged`);
      }
      const nameLength = directory.readUInt16LE(offset + 28);
      const extraLength = directory.readUInt16LE(offset + 30);
      const commentLength = directory.readUInt16LE(offset + 32);
      const entry: ZipEntry = {
        name: directory.toString('utf8', offset + 46, offset + 46 + nameLength),
        method: directory.readUInt16LE(offset + 10),
        crc32: directory.readUInt32LE(offset + 16),
        compressedSize: directory.readUInt32LE(offset + 20),
        size: directory.readUInt32LE(offset + 24),
        localHeaderOffset: directory.readUInt32LE(offset + 42),
      };
      if (entry.size === 0xffffffff || entry.compressedSize === 0xffffffff || entry.localHeaderOffset === 0xffffffff) {
        throw new ZipError(`${file}: ${entry.name} is a zip64 entry, which is not supported`);
      }
      entries.push(entry);
      offset += 46 + nameLength + extraLength + commentLength;
    }
    return entries;
  } finally {
    fs.closeSync(fd);
  }
}

/** Computes the CRC-32 of what passes through. */
class Crc32 extends Transform {
  value = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.value = zlib.crc32(chunk, this.value);
    callback(null, chunk);
  }
}

/** Writes `entry` of the archive `file` to `dest` (through `dest.partial`), checking its size and CRC-32. */
export async function extractZipEntry(file: string, entry: ZipEntry, dest: string): Promise<void> {
  const fd = fs.openSync(file, 'r');
  let dataStart: number;
  try {
    const header = readAt(fd, entry.localHeaderOffset, 30);
    if (header.length < 30 || header.readUInt32LE(0) !== LOCAL_HEADER) throw new ZipError(`${file}: the local header of ${entry.name} is damaged`);
    dataStart = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  } finally {
    fs.closeSync(fd);
  }
  if (entry.method !== 0 && entry.method !== 8) throw new ZipError(`${file}: ${entry.name} uses compression method ${entry.method}`);
  const partial = `${dest}.partial`;
  const crc = new Crc32();
  const source = entry.compressedSize === 0 ? [] : createReadStream(file, { start: dataStart, end: dataStart + entry.compressedSize - 1 });
  try {
    if (entry.method === 8) await pipeline(source, zlib.createInflateRaw(), crc, createWriteStream(partial));
    else await pipeline(source, crc, createWriteStream(partial));
  } catch (error) {
    fs.rmSync(partial, { force: true });
    throw new ZipError(`${file}: ${entry.name} cannot be extracted (${(error as Error).message})`);
  }
  const written = fs.statSync(partial).size;
  if (written !== entry.size || crc.value !== entry.crc32) {
    fs.rmSync(partial, { force: true });
    throw new ZipError(`${file}: ${entry.name} is damaged (${written} bytes, CRC-32 ${crc.value.toString(16)}; the archive says ${entry.size} bytes, ${entry.crc32.toString(16)})`);
  }
  fs.renameSync(partial, dest);
}

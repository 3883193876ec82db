/**
 * Safetensors, streamed: the header is parsed and validated up front, each tensor is read on its own by file
 * offset, so a 15 GB checkpoint never sits in memory. Single files and sharded checkpoints
 * (`model.safetensors.index.json` + shards) are both supported.
 *
 * Format: u64 little-endian header length N, N bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets:
 * [begin, end]}, "__metadata__": {...}}`, then the data; offsets are relative to the end of the header.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from './floatFormats';

/** Bytes per element of every dtype the format defines; only the float ones can be read as floats. */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};
export type FloatDtype = 'F32' | 'F16' | 'BF16';
const FLOAT_DTYPES: readonly string[] = ['F32', 'F16', 'BF16'];

/** The reference implementation refuses headers above 100 MB; a bigger length means a corrupt file. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  start: number;
  end: number;
  file: string;
}

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

async function readExactly(handle: fs.promises.FileHandle, into: Uint8Array, position: number, file: string) {
  let done = 0;
  while (done < into.length) {
    // One read is capped at 2 GiB by the platform; big tensors take several.
    const chunk = Math.min(into.length - done, 1 << 30);
    const { bytesRead } = await handle.read(into, done, chunk, position + done);
    if (bytesRead === 0) throw new SafetensorsError(`${file}: unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

/** One `.safetensors` file with its header parsed and checked against the file size. */
export class SafetensorsFile {
  private constructor(
    readonly file: string,
    private readonly handle: fs.promises.FileHandle,
    readonly tensors: ReadonlyMap<string, TensorEntry>,
    readonly metadata: Record<string, string>,
  ) {}

  static async open(file: string): Promise<SafetensorsFile> {
    if (os.endianness() !== 'LE') throw new SafetensorsError('safetensors data is little-endian; this machine is not');
    const handle = await fs.promises.open(file, 'r');
    try {
      const { tensors, metadata } = await parseHeader(handle, file);
      return new SafetensorsFile(file, handle, tensors, metadata);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  entry(name: string): TensorEntry {
    const entry = this.tensors.get(name);
    if (!entry) throw new SafetensorsError(`${this.file}: no tensor named ${name}`);
    return entry;
  }

  /** The tensor's raw little-endian bytes, in a buffer of its own (aligned for any typed-array view). */
  async readBytes(name: string): Promise<Uint8Array> {
    const entry = this.entry(name);
    const bytes = new Uint8Array(new ArrayBuffer(entry.end - entry.start));
    await readExactly(this.handle, bytes, entry.start, this.file);
    return bytes;
  }

  async readFloat32(name: string): Promise<Float32Array> {
    const entry = this.entry(name);
    if (!FLOAT_DTYPES.includes(entry.dtype)) {
      throw new SafetensorsError(`${this.file}: tensor ${name} has dtype ${entry.dtype}; only F32, F16 and BF16 can be converted`);
    }
    const bytes = await this.readBytes(name);
    if (entry.dtype === 'F32') return new Float32Array(bytes.buffer);
    const bits = new Uint16Array(bytes.buffer);
    return entry.dtype === 'BF16' ? bf16ToFloat32(bits) : f16ToFloat32(bits);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

async function parseHeader(handle: fs.promises.FileHandle, file: string) {
  const size = (await handle.stat()).size;
  if (size < 8) throw new SafetensorsError(`${file}: truncated (${size} bytes, not even a header length)`);
  const lengthBytes = new Uint8Array(8);
  await readExactly(handle, lengthBytes, 0, file);
  const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES) {
    throw new SafetensorsError(`${file}: corrupt header length ${headerLength} (not a safetensors file?)`);
  }
  if (8 + headerLength > size) {
    throw new SafetensorsError(`${file}: truncated (header of ${headerLength} bytes, file of ${size} bytes)`);
  }
  const headerBytes = new Uint8Array(headerLength);
  await readExactly(handle, headerBytes, 8, file);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw new SafetensorsError(`${file}: header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(`${file}: header is not a JSON object`);
  }
  const dataStart = 8 + headerLength;
  const dataSize = size - dataStart;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (value ?? {}) as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = (value ?? {}) as Record<string, unknown>;
    const where = `${file}: tensor ${name}`;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
      throw new SafetensorsError(`${where} has unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`${where} has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
      throw new SafetensorsError(`${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const expectedBytes = elementCount(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== expectedBytes) {
      throw new SafetensorsError(`${where}: data_offsets span ${end - begin} bytes but ${dtype}${JSON.stringify(shape)} needs ${expectedBytes}`);
    }
    if (end > dataSize) {
      throw new SafetensorsError(`${where} ends at byte ${end} of the data but the file holds only ${dataSize} (truncated download?)`);
    }
    tensors.set(name, { name, dtype, shape: shape as number[], start: dataStart + begin, end: dataStart + end, file });
  }
  const byStart = [...tensors.values()].sort((a, b) => a.start - b.start || a.end - b.end);
  for (let i = 1; i < byStart.length; i++) {
    const previous = byStart[i - 1];
    if (byStart[i].start < previous.end) {
      throw new SafetensorsError(`${file}: tensors ${previous.name} and ${byStart[i].name} overlap (corrupt header)`);
    }
  }
  return { tensors, metadata };
}

/**
 * A whole checkpoint folder: `model.safetensors.index.json` with its shards, or a single `model.safetensors`
 * (or, failing both, every `*.safetensors` in the folder). Every shard's header is checked when the
 * checkpoint is opened; the shards stay open until `close()`.
 */
export class SafetensorsCheckpoint {
  private constructor(
    readonly dir: string,
    private readonly entries: ReadonlyMap<string, TensorEntry>,
    private readonly files: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  /** The safetensors files of a checkpoint folder, in a stable order; throws when there are none. */
  static listFiles(dir: string): string[] {
    const index = path.join(dir, INDEX_FILE);
    if (fs.existsSync(index)) {
      return [...new Set(Object.values(readIndex(index)))].sort().map((f) => path.join(dir, f));
    }
    if (fs.existsSync(path.join(dir, SINGLE_FILE))) return [path.join(dir, SINGLE_FILE)];
    const found = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort() : [];
    if (found.length === 0) {
      throw new SafetensorsError(`${dir}: no ${SINGLE_FILE}, ${INDEX_FILE} or other .safetensors file`);
    }
    return found.map((f) => path.join(dir, f));
  }

  static async open(dir: string): Promise<SafetensorsCheckpoint> {
    const files = new Map<string, SafetensorsFile>();
    try {
      for (const file of SafetensorsCheckpoint.listFiles(dir)) {
        if (!fs.existsSync(file)) throw new SafetensorsError(`${dir}: shard ${path.basename(file)} named in ${INDEX_FILE} is missing`);
        files.set(file, await SafetensorsFile.open(file));
      }
      const entries = new Map<string, TensorEntry>();
      for (const opened of files.values()) {
        for (const [name, entry] of opened.tensors) {
          if (entries.has(name)) throw new SafetensorsError(`${dir}: tensor ${name} appears in two files`);
          entries.set(name, entry);
        }
      }
      const indexFile = path.join(dir, INDEX_FILE);
      if (fs.existsSync(indexFile)) {
        for (const [name, shard] of Object.entries(readIndex(indexFile))) {
          if (entries.get(name)?.file !== path.join(dir, shard)) {
            throw new SafetensorsError(`${dir}: ${INDEX_FILE} places ${name} in ${shard}, but that shard does not hold it`);
          }
        }
      }
      return new SafetensorsCheckpoint(dir, entries, files);
    } catch (error) {
      await Promise.all([...files.values()].map((f) => f.close()));
      throw error;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): TensorEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new SafetensorsError(`${this.dir}: the checkpoint has no tensor named ${name}`);
    return entry;
  }

  /** Total bytes of tensor data (what a conversion reads). */
  dataBytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.end - e.start;
    return total;
  }

  readFloat32(name: string): Promise<Float32Array> {
    return this.files.get(this.entry(name).file)!.readFloat32(name);
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}

function readIndex(indexFile: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  } catch (error) {
    throw new SafetensorsError(`${indexFile}: not valid JSON (${(error as Error).message})`);
  }
  const weightMap = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || !Object.values(weightMap).every((v) => typeof v === 'string')) {
    throw new SafetensorsError(`${indexFile}: no "weight_map" of tensor name → shard file`);
  }
  for (const shard of Object.values(weightMap as Record<string, string>)) {
    if (shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      throw new SafetensorsError(`${indexFile}: shard name ${JSON.stringify(shard)} is not a plain file name`);
    }
  }
  return weightMap as Record<string, string>;
}

// ---------------------------------------------------------------------------------------------------------
// Writing (tests, random checkpoints of real geometries, checking exported checkpoints)

export interface TensorLayout {
  name: string;
  dtype: FloatDtype;
  shape: number[];
}

export interface TensorToWrite extends TensorLayout {
  data: Float32Array;
}

function byteLength(t: TensorLayout): number {
  return elementCount(t.shape) * DTYPE_BYTES[t.dtype];
}

function encodeValues(dtype: FloatDtype, values: Float32Array): Uint8Array {
  const typed = dtype === 'F32' ? values : dtype === 'BF16' ? float32ToBf16(values) : float32ToF16(values);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

function encode(tensor: TensorToWrite): Uint8Array {
  if (tensor.data.length !== elementCount(tensor.shape)) {
    throw new SafetensorsError(`tensor ${tensor.name}: ${tensor.data.length} values for shape ${JSON.stringify(tensor.shape)}`);
  }
  return encodeValues(tensor.dtype, tensor.data);
}

/** The length prefix and JSON header; padded with spaces to 8 bytes, as the reference writer does. */
function headerBytes(tensors: TensorLayout[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + byteLength(t)] };
    offset += byteLength(t);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([length, Buffer.from(json)]);
}

/** Writes one safetensors file from tensors held in memory. */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  fs.writeFileSync(file, Buffer.concat([headerBytes(tensors, metadata), ...tensors.map(encode)]));
}

/**
 * Writes one safetensors file whose tensors are produced piece by piece, in order: the header comes from the
 * layouts, then `values(tensor)` yields each tensor's values in chunks, converted and appended as they come,
 * so the file can be far larger than memory.
 */
export async function writeSafetensorsStreamed(
  file: string,
  tensors: TensorLayout[],
  values: (tensor: TensorLayout) => AsyncIterable<Float32Array> | Iterable<Float32Array>,
  metadata?: Record<string, string>,
): Promise<void> {
  const handle = await fs.promises.open(file, 'w');
  try {
    await handle.write(headerBytes(tensors, metadata));
    for (const tensor of tensors) {
      let written = 0;
      for await (const chunk of values(tensor)) {
        await handle.write(encodeValues(tensor.dtype, chunk));
        written += chunk.length;
      }
      if (written !== elementCount(tensor.shape)) {
        throw new SafetensorsError(`tensor ${tensor.name}: ${written} values for shape ${JSON.stringify(tensor.shape)}`);
      }
    }
  } finally {
    await handle.close();
  }
}

export interface ShardPlan {
  /** `model-0000i-of-0000n.safetensors` */
  file: string;
  tensors: TensorLayout[];
}

/** Tensors in order, split into shards of at most `maxShardBytes` (a bigger tensor gets one of its own), as `save_pretrained` does. */
export function planShards<T extends TensorLayout>(tensors: T[], maxShardBytes: number): { file: string; tensors: T[] }[] {
  const shards: T[][] = [[]];
  let shardBytes = 0;
  for (const t of tensors) {
    if (shardBytes > 0 && shardBytes + byteLength(t) > maxShardBytes) {
      shards.push([]);
      shardBytes = 0;
    }
    shards[shards.length - 1].push(t);
    shardBytes += byteLength(t);
  }
  const pad = (n: number) => String(n).padStart(5, '0');
  return shards.map((shard, i) => ({ file: `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`, tensors: shard }));
}

/** `model.safetensors.index.json` for a sharded checkpoint. */
export function writeShardIndex(dir: string, shards: ShardPlan[]): void {
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const shard of shards) {
    for (const t of shard.tensors) {
      weightMap[t.name] = shard.file;
      totalSize += byteLength(t);
    }
  }
  fs.writeFileSync(path.join(dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2));
}

/**
 * Writes `tensors` as a sharded checkpoint: `model-0000i-of-0000n.safetensors` files of at most
 * `maxShardBytes` each plus `model.safetensors.index.json`, as `save_pretrained` does.
 */
export function writeShardedSafetensors(dir: string, tensors: TensorToWrite[], maxShardBytes: number): string[] {
  const shards = planShards(tensors, maxShardBytes);
  for (const shard of shards) writeSafetensors(path.join(dir, shard.file), shard.tensors, { format: 'pt' });
  writeShardIndex(dir, shards);
  return shards.map((s) => s.file);
}

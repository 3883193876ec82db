/**
 * Position-indexed K/V buffers of one request: per layer `[Hkv, L, D]` for keys and for values, in the step
 * graph's cache dtype (fp32 as Float32Array, fp16 as raw half bits in a Uint16Array: rows are only copied,
 * never converted), plus which positions hold valid rows.
 *
 * Keys are stored after RoPE and attention has no causal mask, so the context rows may be passed to the graph
 * in any order; `gather` packs them in the order given, which is the order of the first C columns of
 * `attention_bias`. The buffers are allocated once at the canvas size, on the first write (a request whose K/V
 * live on the device only marks rows valid here and never allocates them); a step only copies rows.
 */
import type { CacheDtype, KvArray } from '../graph/stepContract';

export interface KvGeometry {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  cacheDtype: CacheDtype;
}

export interface GatheredContext {
  /** Per layer `[Hkv, C, D]` views into reused buffers; valid until the next `gather`. */
  keys: KvArray[];
  values: KvArray[];
}

function allocate(dtype: CacheDtype, size: number): KvArray {
  return dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size);
}

interface HostRows {
  keys: KvArray[];
  values: KvArray[];
  /** The context of the last gather. */
  pastKeys: KvArray[];
  pastValues: KvArray[];
}

export class KvStore {
  readonly capacity: number;
  private readonly heads: number;
  private readonly dim: number;
  private readonly geometry: KvGeometry;
  private host: HostRows | null = null;
  private readonly validRows: Uint8Array;
  private valid = 0;
  /** The rows of the last gather, and whether any of them has been written since (then it must be redone). */
  private lastGather: Int32Array | null = null;
  private readonly inLastGather: Uint8Array;
  private lastGatherStale = true;

  constructor(geometry: KvGeometry, capacity: number) {
    this.geometry = geometry;
    this.capacity = capacity;
    this.heads = geometry.numKvHeads;
    this.dim = geometry.headDim;
    this.validRows = new Uint8Array(capacity);
    this.inLastGather = new Uint8Array(capacity);
  }

  private hostRows(): HostRows {
    if (this.host === null) {
      const { numLayers, cacheDtype } = this.geometry;
      const size = this.heads * this.capacity * this.dim;
      const perLayer = () => Array.from({ length: numLayers }, () => allocate(cacheDtype, size));
      this.host = { keys: perLayer(), values: perLayer(), pastKeys: perLayer(), pastValues: perLayer() };
    }
    return this.host;
  }

  isValid(position: number): boolean {
    return this.validRows[position] === 1;
  }

  get validCount(): number {
    return this.valid;
  }

  /**
   * Copies the K/V of `rows` (all valid) into the context buffers in that order. When the rows are the same
   * as the last gather's and none of them was written since, the buffers already hold them and nothing is copied
   * (a prefill cache passes the same context every step).
   */
  gather(rows: Int32Array): GatheredContext {
    const c = rows.length;
    for (let i = 0; i < c; i++) {
      if (this.validRows[rows[i]] !== 1) throw new Error(`context row ${rows[i]} is not valid in the K/V store`);
    }
    const host = this.hostRows();
    const views = (buffers: KvArray[]) => buffers.map((b) => b.subarray(0, this.heads * c * this.dim));
    if (!this.lastGatherStale && this.lastGather !== null && sameRows(this.lastGather, rows)) {
      return { keys: views(host.pastKeys), values: views(host.pastValues) };
    }
    const { heads, dim, capacity } = this;
    for (let l = 0; l < host.keys.length; l++) {
      copyRows(host.keys[l], host.pastKeys[l], rows, heads, dim, capacity);
      copyRows(host.values[l], host.pastValues[l], rows, heads, dim, capacity);
    }
    if (this.lastGather !== null) for (const r of this.lastGather) this.inLastGather[r] = 0;
    this.lastGather = rows.slice();
    for (const r of this.lastGather) this.inLastGather[r] = 1;
    this.lastGatherStale = false;
    return { keys: views(host.pastKeys), values: views(host.pastValues) };
  }

  /**
   * Writes the new K/V of the query rows flagged in `persist` and marks them valid. `newKeys[l]` is
   * `[Hkv, Q, D]` with query index q holding canvas position `queryRows[q]`.
   */
  scatter(queryRows: Int32Array, persist: Uint8Array, newKeys: KvArray[], newValues: KvArray[]): void {
    const q = queryRows.length;
    const { heads, dim, capacity } = this;
    const host = this.hostRows();
    for (let l = 0; l < host.keys.length; l++) {
      const expected = heads * q * dim;
      if (newKeys[l].length !== expected || newValues[l].length !== expected) {
        throw new Error(`layer ${l}: new K/V have ${newKeys[l].length}/${newValues[l].length} elements, expected ${expected}`);
      }
    }
    for (let i = 0; i < q; i++) {
      if (persist[i] !== 1) continue;
      const row = queryRows[i];
      for (let l = 0; l < host.keys.length; l++) {
        const key = host.keys[l];
        const value = host.values[l];
        const newKey = newKeys[l];
        const newValue = newValues[l];
        for (let h = 0; h < heads; h++) {
          const from = (h * q + i) * dim;
          const to = (h * capacity + row) * dim;
          for (let d = 0; d < dim; d++) {
            key[to + d] = newKey[from + d];
            value[to + d] = newValue[from + d];
          }
        }
      }
    }
    this.markWritten(queryRows, persist);
  }

  /**
   * Marks the query rows flagged in `persist` valid without host K/V: their rows were written where the K/V live
   * for this request (device memory).
   */
  markWritten(queryRows: Int32Array, persist: Uint8Array): void {
    for (let i = 0; i < queryRows.length; i++) {
      if (persist[i] !== 1) continue;
      const row = queryRows[i];
      if (this.validRows[row] === 0) {
        this.validRows[row] = 1;
        this.valid++;
      }
      if (this.inLastGather[row] === 1) this.lastGatherStale = true;
    }
  }
}

function sameRows(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * to[h, c, :] = from[h, rows[c], :], one block copy per run of consecutive rows: context rows come in long
 * runs (everything but a few query rows), so a gather is a few memcpy-like `set` calls per head and layer.
 */
function copyRows(from: KvArray, to: KvArray, rows: Int32Array, heads: number, dim: number, capacity: number): void {
  const c = rows.length;
  let start = 0;
  while (start < c) {
    let end = start + 1;
    while (end < c && rows[end] === rows[end - 1] + 1) end++;
    const first = rows[start];
    const count = end - start;
    for (let h = 0; h < heads; h++) {
      const src = (h * capacity + first) * dim;
      to.set(from.subarray(src, src + count * dim), (h * c + start) * dim);
    }
    start = end;
  }
}

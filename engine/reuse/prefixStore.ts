/**
 * The cross-request prefix store: per (model, settings, document), the K/V a request left for the next one of
 * the same document (its prefix rows with hidden states, and the leading rows of its suffix), under a budget of
 * stored tokens with least-recently-used eviction.
 *
 * Safety rests on two rules. An entry is only ever offered to a request with the same model, settings and
 * document (the key), and only its rows whose tokens equal the request's (`sharedPrefixLength`, an exact
 * comparison: a hash could only add a false match). Each request replaces its key's entry with its own, so an
 * edit before the cursor invalidates the rows after the edit: they are neither offered (the tokens differ) nor
 * kept (the new entry has the new text).
 */
import type { KvArray } from '../graph/stepContract';
import { copyRows, leadingRows, shiftKeyPositions } from './kvRows';
import type { ReusablePrefix, ReusableSuffix } from './reuseHarvest';

export interface PrefixStoreKey {
  /** The loaded model and graph variant. */
  model: string;
  /** Everything about the request besides its text that changes what is computed (decoding options). */
  settings: string;
  document: string;
}

/** The key of `document`'s entry for requests on `model` with decoding `options`. */
export function storeKey(model: string, options: unknown, document: string): PrefixStoreKey {
  return { model, settings: JSON.stringify(options), document };
}

export interface StoredEntry {
  prefix: ReusablePrefix;
  suffix: ReusableSuffix | null;
}

export interface KvGeometry {
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
}

/** Rows an entry holds: its prefix and suffix rows. */
export function entryTokens(entry: StoredEntry): number {
  return entry.prefix.ids.length + (entry.suffix?.ids.length ?? 0);
}

/** How many leading tokens two sequences share. */
export function sharedPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** The first `rows` rows of a stored prefix (the prefix itself when that is all of them). */
export function leadingPrefix(prefix: ReusablePrefix, rows: number, geometry: KvGeometry): ReusablePrefix {
  const n = prefix.ids.length;
  if (rows === n) return prefix;
  const cut = (kv: KvArray) => leadingRows(kv, n, rows, geometry.numKvHeads, geometry.headDim);
  return {
    ids: prefix.ids.slice(0, rows),
    keys: prefix.keys.map(cut),
    values: prefix.values.map(cut),
    hidden: new Map([...prefix.hidden].map(([d, h]) => [d, h.slice(0, rows * geometry.hiddenSize)])),
  };
}

/**
 * Rows [from, to) of a stored suffix as a request whose suffix starts at `suffixStart` needs them: keys rotated
 * by the distance moved (RoPE is a rotation, and keys are stored after it), values as they are.
 */
export function suffixRowsAt(
  suffix: ReusableSuffix,
  from: number,
  to: number,
  suffixStart: number,
  geometry: KvGeometry & { ropeTheta: number },
): ReusableSuffix {
  const { numKvHeads: heads, headDim: dim, ropeTheta } = geometry;
  const total = suffix.ids.length;
  const rows = to - from;
  const cut = (kv: KvArray) => (from === 0 ? leadingRows(kv, total, rows, heads, dim) : takeRows(kv, total, from, rows, heads, dim));
  return {
    ids: suffix.ids.slice(from, to),
    start: suffixStart + from,
    keys: suffix.keys.map((k) => shiftKeyPositions(cut(k), heads, rows, dim, suffixStart - suffix.start, ropeTheta)),
    values: suffix.values.map(cut),
  };
}

/** Rows [from, from + rows) of a `[heads, total, dim]` tensor. */
function takeRows(data: KvArray, total: number, from: number, rows: number, heads: number, dim: number): KvArray {
  const out = data instanceof Uint16Array ? new Uint16Array(heads * rows * dim) : new Float32Array(heads * rows * dim);
  copyRows(data, total, Array.from({ length: rows }, (_, i) => from + i), out, rows, 0, heads, dim);
  return out;
}

export class PrefixStore {
  private readonly entries = new Map<string, StoredEntry>();
  private storedTokens = 0;

  constructor(
    readonly budgetTokens: number,
    private readonly geometry: KvGeometry,
  ) {
    if (!(Number.isInteger(budgetTokens) && budgetTokens >= 0)) throw new RangeError(`the token budget must be an integer >= 0, got ${budgetTokens}`);
  }

  get tokens(): number {
    return this.storedTokens;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The key's entry, now the most recently used; null when there is none. */
  lookup(key: PrefixStoreKey): StoredEntry | null {
    const id = keyId(key);
    const entry = this.entries.get(id);
    if (!entry) return null;
    this.entries.delete(id);
    this.entries.set(id, entry);
    return entry;
  }

  /**
   * Makes `entry` the key's entry (replacing the old one), cut to the budget if it alone exceeds it (suffix
   * rows first, then the prefix's last rows), then evicts the least recently used entries until the store is
   * within its budget.
   */
  put(key: PrefixStoreKey, entry: StoredEntry): void {
    this.remove(key);
    const fitted = this.fit(entry, this.budgetTokens);
    const tokens = entryTokens(fitted);
    if (tokens === 0) return;
    for (const [id, old] of this.entries) {
      if (this.storedTokens + tokens <= this.budgetTokens) break;
      this.entries.delete(id);
      this.storedTokens -= entryTokens(old);
    }
    this.entries.set(keyId(key), fitted);
    this.storedTokens += tokens;
  }

  remove(key: PrefixStoreKey): void {
    const id = keyId(key);
    const old = this.entries.get(id);
    if (!old) return;
    this.entries.delete(id);
    this.storedTokens -= entryTokens(old);
  }

  clear(): void {
    this.entries.clear();
    this.storedTokens = 0;
  }

  private fit(entry: StoredEntry, budget: number): StoredEntry {
    if (entryTokens(entry) <= budget) return entry;
    const prefixRows = Math.min(entry.prefix.ids.length, budget);
    const suffixRows = Math.min(entry.suffix?.ids.length ?? 0, budget - prefixRows);
    const { numKvHeads: heads, headDim: dim, hiddenSize } = this.geometry;
    const cut = (rows: number, total: number) => (kv: KvArray) => leadingRows(kv, total, rows, heads, dim);
    const p = entry.prefix;
    const prefix: ReusablePrefix = {
      ids: p.ids.slice(0, prefixRows),
      keys: p.keys.map(cut(prefixRows, p.ids.length)),
      values: p.values.map(cut(prefixRows, p.ids.length)),
      hidden: new Map([...p.hidden].map(([depth, h]) => [depth, h.slice(0, prefixRows * hiddenSize)])),
    };
    const s = entry.suffix;
    const suffix: ReusableSuffix | null =
      s && suffixRows > 0
        ? { ids: s.ids.slice(0, suffixRows), start: s.start, keys: s.keys.map(cut(suffixRows, s.ids.length)), values: s.values.map(cut(suffixRows, s.ids.length)) }
        : null;
    return { prefix, suffix };
  }
}

function keyId(key: PrefixStoreKey): string {
  return JSON.stringify([key.model, key.settings, key.document]);
}

/**
 * Finished completions, remembered so that typing through a suggestion (or coming back to the same spot)
 * never asks the engine again: a hit is an entry whose context plus some leading characters of its
 * completion is exactly what is around the cursor now; the rest of the completion is served.
 */

export interface CachedCompletion {
  /** The text still to insert at the cursor. */
  text: string;
  /** Characters of the original completion already typed by the user. */
  typed: number;
}

interface Entry {
  /** The end of the code before the cursor when the completion was made. */
  before: string;
  /** The start of the code after the cursor (typing through does not change it). */
  after: string;
  text: string;
}

/** How much context identifies an entry: enough to tell places in a file apart, cheap to compare. */
const BEFORE_CHARS = 512;
const AFTER_CHARS = 256;

export class CompletionCache {
  /** Most recent last (a Map keeps insertion order, so re-inserting marks an entry recently used). */
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity = 64) {}

  get size(): number {
    return this.entries.size;
  }

  /** Remembers `text` as the completion between `before` and `after` (the code either side of the cursor). */
  store(before: string, after: string, text: string): void {
    if (text === '') return;
    const entry: Entry = { before: before.slice(-BEFORE_CHARS), after: after.slice(0, AFTER_CHARS), text };
    const key = keyOf(entry.before, entry.after);
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  /** The remainder of a cached completion the user is typing through at this place, if any. */
  lookup(before: string, after: string): CachedCompletion | undefined {
    const afterHead = after.slice(0, AFTER_CHARS);
    const candidates = [...this.entries.entries()].reverse();
    for (const [key, entry] of candidates) {
      if (entry.after !== afterHead) continue;
      // The typed part is a prefix of the completion; try the longest first (the most recent keystroke).
      for (let typed = entry.text.length - 1; typed >= 0; typed--) {
        const expected = entry.before + entry.text.slice(0, typed);
        if (before.endsWith(expected)) {
          this.entries.delete(key);
          this.entries.set(key, entry);
          return { text: entry.text.slice(typed), typed };
        }
      }
    }
    return undefined;
  }

  clear(): void {
    this.entries.clear();
  }
}

function keyOf(before: string, after: string): string {
  return `${before.length}:${before}\u0000${after}`;
}

/**
 * Real source files for the offline depth profiler and the typing benchmark: the built-in model's held-out
 * evaluation files (a JSON-lines file of `{id, text}`, engine/training/eval/heldout-files.jsonl) or the source
 * files under a folder (e.g. this repository's `engine/`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KeyedRandom, RandomStream } from '../denoiser/rng';

export interface SourceText {
  /** Where the text comes from (a path or the JSON line's id). */
  id: string;
  text: string;
}

export const HELD_OUT_FILES = path.join('engine', 'training', 'eval', 'heldout-files.jsonl');
const SOURCE_EXTENSIONS = new Set(['.ts', '.js', '.py', '.go', '.rs', '.java', '.c', '.h', '.cpp']);
const SKIPPED_DIRS = new Set(['node_modules', '.git', 'dist', '.cache']);

/** The default source: the held-out files when this is a checkout with them, else `engine/`, else none. */
export function defaultSourcePath(cwd = process.cwd()): string | null {
  for (const candidate of [HELD_OUT_FILES, 'engine']) {
    if (fs.existsSync(path.join(cwd, candidate))) return path.join(cwd, candidate);
  }
  return null;
}

/** The texts at `source`: a `.jsonl` of `{id, text}`, one source file, or the source files under a folder. */
export function loadSourceTexts(source: string): SourceText[] {
  const stat = fs.statSync(source);
  if (stat.isFile() && source.endsWith('.jsonl')) {
    return fs
      .readFileSync(source, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line, i) => {
        const parsed = JSON.parse(line) as { id?: unknown; text?: unknown };
        if (typeof parsed.text !== 'string') throw new Error(`${source}:${i + 1}: no "text" string`);
        return { id: typeof parsed.id === 'string' ? parsed.id : `${source}:${i + 1}`, text: parsed.text };
      });
  }
  if (stat.isFile()) return [{ id: source, text: fs.readFileSync(source, 'utf8') }];
  const texts: SourceText[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory() && !SKIPPED_DIRS.has(entry.name)) walk(full);
      else if (entry.isFile() && SOURCE_EXTENSIONS.has(path.extname(entry.name))) texts.push({ id: full, text: fs.readFileSync(full, 'utf8') });
    }
  };
  walk(source);
  if (texts.length === 0) throw new Error(`no source files under ${source}`);
  return texts;
}

/** Uniform draws in (0, 1) from `seed`, so profiles and benchmarks cut the same samples every run. */
export function seededRandom(seed: number): () => number {
  const random = new KeyedRandom(seed);
  // Draws are a pure function of (seed, key, index); any fixed key gives a reproducible sequence.
  const key = random.key(RandomStream.order);
  let index = 0;
  return () => random.uniformAt(key, index++);
}

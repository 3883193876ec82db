/**
 * Edit sequences for the typing benchmark: a region of a real source file typed out again keystroke by
 * keystroke, at a human pace, with one completion request per debounced keystroke (as the extension asks).
 *
 * The typing model (seeded): the interval before a key is log-normal around 170 ms (about 65 words a minute),
 * longer after a space or punctuation; a newline is followed by a pause to think of the next line, and now and
 * then a longer pause happens anywhere. Pressing Enter inserts the next line's indentation with it, as editors
 * auto-indent. A request is made after every keystroke that the next one follows by at least the debounce.
 */
import type { SourceText } from '../prepare/sourceTexts';
import { seededRandom } from '../prepare/sourceTexts';

export interface TypingRequest {
  /** The document's text before and after the cursor when the request is made. */
  before: string;
  after: string;
  /** Milliseconds since the session's first keystroke. */
  atMs: number;
}

export interface TypingSession {
  source: string;
  /** The document's text before the cursor when the session starts (the region not typed yet). */
  openedBefore: string;
  /** Characters typed, and keystrokes (an Enter with its auto-indent is one). */
  typedChars: number;
  keystrokes: number;
  requests: TypingRequest[];
}

export interface TypingSessionOptions {
  sessions: number;
  /** Characters typed per session (the region is extended to the end of its last line). */
  charsPerSession: number;
  debounceMs: number;
  seed: number;
}

const MEDIAN_KEY_MS = 170;

/** `sessions` typing sessions over regions of `texts`, each in a different file when there are enough. */
export function typingSessions(texts: readonly SourceText[], options: TypingSessionOptions): TypingSession[] {
  const random = seededRandom(options.seed);
  const candidates = texts.filter((t) => t.text.length >= options.charsPerSession * 4 && t.text.split('\n').length >= 20);
  if (candidates.length === 0) throw new Error(`no source file is long enough to type ${options.charsPerSession} characters from`);
  const order = candidates.map((t) => ({ t, key: random() })).sort((a, b) => a.key - b.key).map((x) => x.t);
  return Array.from({ length: options.sessions }, (_, i) => session(order[i % order.length], options, random));
}

function session(source: SourceText, options: TypingSessionOptions, random: () => number): TypingSession {
  const text = source.text;
  // Start at a line start between 30% and 80% of the file, so there is code before and after the region.
  const lineStarts = [0, ...[...text.matchAll(/\n/g)].map((m) => m.index! + 1)].filter((i) => i < text.length);
  const eligible = lineStarts.filter((i) => i >= text.length * 0.3 && i <= text.length * 0.8);
  const start = eligible[Math.floor(random() * eligible.length)];
  let end = Math.min(text.length, start + options.charsPerSession);
  const lineEnd = text.indexOf('\n', end);
  end = lineEnd === -1 ? text.length : lineEnd + 1;
  const region = text.slice(start, end);
  const after = text.slice(end);

  // Keystrokes: one character each, except Enter, which brings the next line's indentation.
  const keys: string[] = [];
  for (let i = 0; i < region.length; ) {
    let key = region[i++];
    if (key === '\n') while (i < region.length && (region[i] === ' ' || region[i] === '\t')) key += region[i++];
    keys.push(key);
  }
  const times: number[] = [];
  let now = 0;
  keys.forEach((_, k) => {
    if (k > 0) now += keyInterval(keys[k - 1], random);
    times.push(now);
  });
  const requests: TypingRequest[] = [];
  let typed = text.slice(0, start);
  keys.forEach((key, k) => {
    typed += key;
    const last = k === keys.length - 1;
    if (last || times[k + 1] - times[k] >= options.debounceMs) requests.push({ before: typed, after, atMs: times[k] });
  });
  return { source: source.id, openedBefore: text.slice(0, start), typedChars: region.length, keystrokes: keys.length, requests };
}

/** Milliseconds between pressing `previous` and the next key. */
function keyInterval(previous: string, random: () => number): number {
  const normal = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  let ms = MEDIAN_KEY_MS * Math.exp(0.35 * normal);
  if (/^[\s.,;:()[\]{}]$/.test(previous)) ms += 60;
  if (previous.startsWith('\n')) ms += 300 + 600 * random();
  if (random() < 0.04) ms += 400 + 1100 * random();
  return ms;
}

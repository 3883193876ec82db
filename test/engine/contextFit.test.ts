import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fitContext } from '../../engine/model/contextFit';
import { syntheticTokenizerJson } from '../../engine/model/synthetic';
import { Tokenizer } from '../../engine/model/tokenizer';

describe('fitting an infill to the model (contextFit)', () => {
  let dir: string;
  let tokenizer: Tokenizer;
  /** Real code to cut: a fixed copy of one of the engine's sources, so edits to the engine do not move the cuts. */
  const source = readFileSync(path.join(__dirname, 'fixtures', 'typedSource.ts.txt'), 'utf8');
  const count = (text: string) => tokenizer.encode(text).length;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'dlm-fit-'));
    const file = path.join(dir, 'tokenizer.json');
    writeFileSync(file, syntheticTokenizerJson(2048));
    tokenizer = Tokenizer.load(file);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('leaves a canvas that fits untouched', () => {
    const fitted = fitContext('def f(x):\n    return ', '\n\nprint(f(2))\n', 1000, tokenizer);
    assert.deepEqual(fitted, { prefix: 'def f(x):\n    return ', suffix: '\n\nprint(f(2))\n', droppedPrefixChars: 0, droppedSuffixChars: 0 });
  });

  it('drops whole lines from the start of the prefix and the end of the suffix until the tokens fit', () => {
    const cut = Math.floor(source.length * 0.7);
    const prefix = source.slice(0, cut);
    const suffix = source.slice(cut);
    for (const budget of [600, 250]) {
      const fitted = fitContext(prefix, suffix, budget, tokenizer);
      assert.ok(count(fitted.prefix) + count(fitted.suffix) <= budget, `budget ${budget}`);
      assert.ok(prefix.endsWith(fitted.prefix) && suffix.startsWith(fitted.suffix));
      assert.equal(fitted.droppedPrefixChars, prefix.length - fitted.prefix.length);
      assert.equal(fitted.droppedSuffixChars, suffix.length - fitted.suffix.length);
      // whole lines: the kept prefix starts a line, the kept suffix ends one
      assert.equal(prefix[prefix.length - fitted.prefix.length - 1], '\n');
      assert.ok(fitted.suffix.endsWith('\n'));
      // the suffix keeps at most a quarter when the prefix can use the rest, and the prefix uses most of the rest
      // (cuts land on anchor lines, about one line in eight, so a few lines' worth may go unused)
      assert.ok(count(fitted.suffix) <= Math.floor(budget / 4));
      assert.ok(count(fitted.prefix) >= (budget - count(fitted.suffix)) / 2, `budget ${budget}: prefix of ${count(fitted.prefix)} tokens`);
    }
  });

  it('keeps the cut in place while the user types at the end of the prefix', () => {
    // Type 16 lines of the file after a long prefix (every other keystroke sampled); the model takes 300 tokens.
    const lines = 16;
    const start = source.indexOf('\n', Math.floor(source.length * 0.5)) + 1;
    let end = start;
    for (let i = 0; i < lines; i++) end = source.indexOf('\n', end) + 1;
    const typed = source.slice(start, end);
    const cuts: number[] = [];
    for (let i = 0; i <= typed.length; i += 2) {
      const fitted = fitContext(source.slice(0, start) + typed.slice(0, i), '\n', 300, tokenizer);
      cuts.push(fitted.droppedPrefixChars);
    }
    for (let i = 1; i < cuts.length; i++) assert.ok(cuts[i] >= cuts[i - 1], 'the cut never moves back');
    const moves = cuts.filter((c, i) => i > 0 && c !== cuts[i - 1]).length;
    // Cutting at every line would move the cut about once per typed line; anchors move it far less.
    assert.ok(moves <= lines / 2, `the cut moved ${moves} times over ${lines} typed lines`);
    assert.ok(moves >= 1, 'the prefix outgrew the budget at least once');
  });

  it('tokenizes only the end of a megabyte prefix (and the start of a long suffix), cutting where the whole text would be cut', () => {
    let encodedChars = 0;
    const counting = {
      encode: (text: string) => ((encodedChars += text.length), tokenizer.encode(text)),
      decode: (ids: number[]) => tokenizer.decode(ids),
    };
    const prefix = source.repeat(Math.ceil(1_000_000 / source.length));
    const suffix = source.repeat(12);
    const fitted = fitContext(prefix, suffix, 600, counting);
    assert.ok(count(fitted.prefix) + count(fitted.suffix) <= 600);
    assert.ok(encodedChars < 100_000, `${encodedChars} characters tokenized for a ${prefix.length}-character prefix`);
    // The cut does not depend on how much text lies beyond it: the last 60,000 characters (from a line start)
    // and the first ones of the suffix fit to the same cut.
    const tail = prefix.slice(prefix.indexOf('\n', prefix.length - 60_000) + 1);
    const head = suffix.slice(0, suffix.indexOf('\n', 60_000) + 1);
    const fromParts = fitContext(tail, head, 600, tokenizer);
    assert.deepEqual([fromParts.prefix, fromParts.suffix], [fitted.prefix, fitted.suffix]);
  });

  it('cuts inside the line at the cursor by tokens when that line alone is too long', () => {
    const long = 'x = [' + Array.from({ length: 400 }, (_, i) => String(i)).join(', ');
    const fitted = fitContext(long, '', 50, tokenizer);
    assert.ok(count(fitted.prefix) <= 50 && count(fitted.prefix) >= 45);
    assert.ok(long.endsWith(fitted.prefix));
  });
});

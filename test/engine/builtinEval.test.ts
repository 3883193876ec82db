/** The infill evaluation's cases and scores (engine/training/infillEval.ts), used by `dlm eval`. */
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  characterSimilarity,
  editDistance,
  fitToCanvas,
  makeCases,
  readEvalFiles,
  repeatLinesAbove,
  score,
} from '../../engine/training/infillEval';

const files = readEvalFiles(path.join(__dirname, '..', '..', 'engine', 'training', 'eval', 'heldout-files.jsonl'));

describe('infill evaluation', () => {
  it('measures edit distance over code points', () => {
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('a😀b', 'ab'), 1);
    assert.equal(characterSimilarity('return x;', 'return x;'), 1);
    assert.equal(characterSimilarity('', ''), 1);
    assert.equal(characterSimilarity('', 'abcd'), 0);
    assert.equal(characterSimilarity('abcd', 'abxd'), 0.75);
  });

  it('scores exact match and mean similarity in percent', () => {
    assert.deepEqual(score([{ fill: 'a', truth: 'a' }, { fill: 'ab', truth: 'ac' }]), { cases: 2, exactMatch: 50, similarity: 75 });
  });

  it('cuts holes of whole lines that put the file back together, the same for the same seed', () => {
    const cases = makeCases(files, 30, 7);
    assert.equal(cases.length, 30);
    assert.deepEqual(makeCases(files, 30, 7), cases);
    assert.notDeepEqual(makeCases(files, 30, 8), cases);
    for (const c of cases) {
      const file = files.find((f) => f.id === c.file)!;
      assert.equal(c.prefix + c.middle + c.suffix, file.text);
      assert.ok(c.prefix.endsWith('\n') && c.suffix.startsWith('\n'));
      assert.equal(c.middle.split('\n').length, c.lines);
      assert.equal(file.text.split('\n')[c.line - 1], c.middle.split('\n')[0]);
      assert.equal(c.kind === 'one-line', c.lines === 1);
    }
    assert.equal(cases.filter((c) => c.kind === 'one-line').length, 15);
  });

  it('keeps the whole lines nearest the hole that fit the canvas', () => {
    const c = { file: 'f', kind: 'one-line' as const, line: 3, lines: 1, prefix: 'a\nbb\n', middle: 'x', suffix: '\ncc\nd' };
    const chars = (text: string) => text.length; // one token per character
    assert.deepEqual(fitToCanvas(c, 1, 100, chars), { prefix: 'a\nbb\n', suffix: '\ncc\nd' });
    assert.deepEqual(fitToCanvas(c, 1, 8, chars, 0.5), { prefix: 'bb\n', suffix: '\ncc' });
    assert.deepEqual(fitToCanvas(c, 1, 3, chars, 0.5), { prefix: '', suffix: '' });
  });

  it('repeats the lines above the hole as the copy baseline', () => {
    const c = { file: 'f', kind: 'multi-line' as const, line: 4, lines: 2, prefix: 'a\nb\nc\n', middle: 'x\ny', suffix: '\n' };
    assert.equal(repeatLinesAbove(c), 'b\nc');
    assert.equal(repeatLinesAbove({ ...c, lines: 1 }), 'c');
  });
});

import * as assert from 'node:assert/strict';
import { allowsMultiline } from '../../common/holeShape';
import { buildTextCanvas, contextAround } from '../../common/textCanvas';

const options = { contextBytes: 4096, fillLength: 32, lineFillLength: 12 };

describe('extension canvas', () => {
  it('completes several lines at the end of a line and only the line in the middle of one', () => {
    assert.equal(allowsMultiline(''), true);
    assert.equal(allowsMultiline('   '), true);
    assert.equal(allowsMultiline(')];'), true, 'closers an editor auto-inserts do not count as text');
    assert.equal(allowsMultiline(' + 1)'), false);
    assert.equal(allowsMultiline('foo'), false);

    const atEnd = buildTextCanvas('def f(x):\n    return', '\nprint(f(1))\n', options);
    assert.deepEqual(atEnd, { prefix: 'def f(x):\n    return', suffix: '\nprint(f(1))\n', length: 32, multiline: true });
    const midLine = buildTextCanvas('total = ', ' + 1\n', options);
    assert.equal(midLine.multiline, false);
    assert.equal(midLine.length, 12);
  });

  it('keeps whole lines within the byte budget, three quarters before the cursor', () => {
    const before = ['line one', 'line two', 'line three', 'current'].join('\n');
    const after = ['rest', 'below one', 'below two'].join('\n');
    // 40 bytes: 10 for the suffix share, 30 for the prefix.
    const { prefix, suffix } = contextAround(before, after, 40);
    assert.equal(prefix, 'line two\nline three\ncurrent', 'whole lines, nearest first');
    assert.ok(Buffer.byteLength(prefix) <= 30);
    assert.equal(suffix, 'rest\n', 'the suffix gets what the prefix left: 40 - 27 bytes');
  });

  it('gives an unused share to the other side', () => {
    const { prefix, suffix } = contextAround('a'.repeat(100), '', 80);
    assert.equal(prefix.length, 80);
    assert.equal(suffix, '');
  });

  it('counts bytes, not characters, and never splits a character', () => {
    const before = 'x = "' + 'é'.repeat(20); // 2 bytes each, one line
    const { prefix } = contextAround(before, '', 9);
    assert.ok(Buffer.byteLength(prefix) <= 9);
    assert.equal(prefix, 'éééé', 'the tail of the line when even it is too long');
    const emoji = contextAround('ab😀', '', 4).prefix;
    assert.equal(emoji, '😀');
    assert.equal(contextAround('ab😀', '', 3).prefix, '', 'a surrogate pair is kept whole or not at all');
  });

  it('keeps the first line of the prefix while the user types (cuts at anchor lines)', () => {
    const code = Array.from({ length: 120 }, (_, i) => `    total += weight_${i} * value_${i % 7}\n`).join('');
    const firstLines = new Set<string>();
    for (let typed = 0; typed <= 2000; typed += 3) {
      const before = code.slice(0, 2000 + typed);
      const { prefix } = contextAround(before, '', 1200);
      assert.ok(Buffer.byteLength(prefix) <= 1200);
      firstLines.add(prefix.slice(0, prefix.indexOf('\n')));
    }
    // 2000 bytes typed is about 50 lines: a window that kept "as many lines as fit" would start at ~50 lines.
    assert.ok(firstLines.size <= 15, `${firstLines.size} different first lines`);
  });
});

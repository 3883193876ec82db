import * as assert from 'node:assert/strict';
import { trimFill } from '../../../extension/fillTrimming';

describe('extension fill trimming', () => {
  it('keeps only the first line in the middle of a line', () => {
    assert.equal(trimFill('a + b\n    c = 1', { suffix: ')\n', multiline: false }), 'a + b');
  });

  it('drops a repeated end of the line after the cursor', () => {
    assert.equal(trimFill('foo(x))', { suffix: ')\nnext', multiline: false }), 'foo(x)', 'a repeated closer');
    assert.equal(trimFill('value; // done', { suffix: ' // done\n', multiline: false }), 'value;', 'the whole rest of the line');
    assert.equal(trimFill('a + b', { suffix: 'b + c\n', multiline: false }), 'a + b', 'a coincidental letter stays');
  });

  it('drops trailing lines that repeat the next lines of the file', () => {
    const fill = '\n    return a + b\n\nprint(add(1, 2))';
    assert.equal(trimFill(fill, { suffix: '\n\nprint(add(1, 2))\n', multiline: true }), '\n    return a + b');
  });

  it('trims trailing blank lines only where the document ends the line itself', () => {
    assert.equal(trimFill('return 1\n\n', { suffix: '\nrest', multiline: true }), 'return 1');
    assert.equal(trimFill('\n  return 1;\n', { suffix: '}\n', multiline: true }), '\n  return 1;\n', 'the closing brace needs its own line');
  });

  it('offers nothing when only whitespace is left', () => {
    assert.equal(trimFill('   \n  ', { suffix: '\n', multiline: true }), '');
    assert.equal(trimFill(')', { suffix: ')', multiline: false }), '');
  });

  it('reads Windows line ends and a lone carriage return as line ends, as a document does', () => {
    assert.equal(trimFill('a\r\nb', { suffix: '', multiline: false }), 'a');
    assert.equal(trimFill('a\rb', { suffix: '', multiline: false }), 'a');
    assert.equal(trimFill('a\rb', { suffix: '', multiline: true }), 'a\nb');
  });
});

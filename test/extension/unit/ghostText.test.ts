import * as assert from 'node:assert/strict';
import { MASK_GLYPH } from '../../../common/protocol';
import { fullyMasked, hasPlaceholder, partialGhostText, PLACEHOLDER } from '../../../extension/ghostText';

describe('extension ghost text', () => {
  it('draws one placeholder per masked token', () => {
    assert.equal(PLACEHOLDER, MASK_GLYPH);
    assert.equal(fullyMasked(4), PLACEHOLDER.repeat(4));
    assert.equal(partialGhostText({ pieces: ['re', null, 'urn', null, ' 1'] }, true), `re${PLACEHOLDER}urn${PLACEHOLDER} 1`);
    assert.ok(hasPlaceholder(fullyMasked(1)));
    assert.ok(!hasPlaceholder('return 1'));
  });

  it('shows only the first line where the final fill will be cut to it', () => {
    const pieces = ['a', null, '\n', 'b', null];
    assert.equal(partialGhostText({ pieces }, false), `a${PLACEHOLDER}`);
    assert.equal(partialGhostText({ pieces }, true), `a${PLACEHOLDER}\nb${PLACEHOLDER}`);
  });
});

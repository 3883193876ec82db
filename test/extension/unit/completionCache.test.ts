import * as assert from 'node:assert/strict';
import { CompletionCache } from '../../../extension/completionCache';

describe('extension completion cache', () => {
  it('serves the rest of a completion while the user types through it', () => {
    const cache = new CompletionCache();
    cache.store('def add(a, b):\n    ', '\n\nprint(1)\n', 'return a + b');
    assert.deepEqual(cache.lookup('def add(a, b):\n    ', '\n\nprint(1)\n'), { text: 'return a + b', typed: 0 });
    assert.deepEqual(cache.lookup('def add(a, b):\n    ret', '\n\nprint(1)\n'), { text: 'urn a + b', typed: 3 });
    assert.deepEqual(cache.lookup('# other file\ndef add(a, b):\n    return a +', '\n\nprint(1)\n'), { text: ' b', typed: 10 });
  });

  it('misses when the typing departs from the completion, the code after differs, or all of it was typed', () => {
    const cache = new CompletionCache();
    cache.store('x = ', '\n', 'compute()');
    assert.equal(cache.lookup('x = cab', '\n'), undefined);
    assert.equal(cache.lookup('x = ', '\ny = 2\n'), undefined);
    assert.equal(cache.lookup('x = compute()', '\n'), undefined);
  });

  it('forgets the least recently used entry beyond its capacity', () => {
    const cache = new CompletionCache(2);
    cache.store('a = ', '\n', '1');
    cache.store('b = ', '\n', '2');
    assert.ok(cache.lookup('a = ', '\n'), 'a used: b is now the oldest');
    cache.store('c = ', '\n', '3');
    assert.equal(cache.size, 2);
    assert.equal(cache.lookup('b = ', '\n'), undefined);
    assert.deepEqual(cache.lookup('a = ', '\n'), { text: '1', typed: 0 });
    assert.deepEqual(cache.lookup('c = ', '\n'), { text: '3', typed: 0 });
  });
});

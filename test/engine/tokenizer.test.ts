import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Tokenizer } from '../../engine/model/tokenizer';

/** GPT-2's byte -> printable character table, which byte-level BPE vocabularies are written in. */
function byteToUnicode(): string[] {
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return table;
}

const SPECIALS = ['<|endoftext|>', '<|mask|>'];

/** A byte-level BPE tokenizer.json with a few merges (so some tokens span several bytes) and two specials. */
function writeByteLevelTokenizer(dir: string): { file: string; eos: number; mask: number } {
  const chars = byteToUnicode();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => (vocab[c] = b));
  const merges: [string, string][] = [];
  const merge = (a: string, b: string) => {
    merges.push([a, b]);
    vocab[a + b] = Object.keys(vocab).length;
  };
  const space = chars[0x20];
  merge('d', 'e');
  merge('de', 'f');
  merge(space, 'x');
  merge('r', 'e');
  // The two bytes of 'é' (C3 A9) merge, but the three of '→' (E2 86 92) and the four of '😀' stay apart.
  merge(chars[0xc3], chars[0xa9]);
  const added = SPECIALS.map((content, k) => ({
    id: Object.keys(vocab).length + k,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  const file = path.join(dir, 'tokenizer.json');
  writeFileSync(file, JSON.stringify(json));
  return { file, eos: added[0].id, mask: added[1].id };
}

describe('Tokenizer', () => {
  let dir: string;
  let tokenizer: Tokenizer;
  let mask: number;
  let eos: number;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'dlm-tokenizer-'));
    const written = writeByteLevelTokenizer(dir);
    tokenizer = Tokenizer.load(written.file);
    mask = written.mask;
    eos = written.eos;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const samples = [
    'def f(x):\n    return x + 1\n',
    '  leading and trailing spaces  ',
    'a  .  b , c ; d',
    "caf\u00e9 \u2192 \u{1F600} done\r\n\ttab",
    '',
  ];

  it('round-trips text exactly, spaces before punctuation included', () => {
    for (const text of samples) assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
  });

  it('applies merges and adds no special tokens', () => {
    assert.deepEqual(tokenizer.encode('def'), [tokenizer.tokenId('def')]);
    assert.equal(tokenizer.encode('x').length, 1);
  });

  it('encodes special tokens written in the text as single ids', () => {
    const ids = tokenizer.encode('a<|mask|>b<|endoftext|>');
    assert.deepEqual(ids, [...tokenizer.encode('a'), mask, ...tokenizer.encode('b'), eos]);
  });

  it('gives pieces that concatenate to the decoded text when nothing is masked', () => {
    for (const text of samples) {
      const ids = tokenizer.encode(text);
      const pieces = tokenizer.pieces(ids, mask);
      assert.equal(pieces.length, ids.length);
      assert.equal(pieces.join(''), text);
    }
  });

  it('gives null for masked tokens and never a broken character', () => {
    const text = 'x\u2192y\u{1F600}z';
    const ids = tokenizer.encode(text);
    // 'x' + 3 bytes of the arrow + 'y' + 4 bytes of the emoji + 'z'.
    assert.equal(ids.length, 10);
    const pieces = tokenizer.pieces(ids, mask);
    assert.deepEqual(pieces, ['x', '', '', '\u2192', 'y', '', '', '', '\u{1F600}', 'z']);

    // Mask the last byte of the arrow: the two bytes before it show nothing yet.
    const partial = [...ids];
    partial[3] = mask;
    assert.deepEqual(tokenizer.pieces(partial, mask), ['x', '', '', null, 'y', '', '', '', '\u{1F600}', 'z']);

    // Mask the first byte of the emoji: the continuation bytes cannot form a character and are not shown as text.
    const orphan = [...ids];
    orphan[5] = mask;
    const orphanPieces = tokenizer.pieces(orphan, mask);
    assert.equal(orphanPieces[5], null);
    assert.deepEqual(orphanPieces.slice(0, 5), ['x', '', '', '\u2192', 'y']);
    assert.equal(orphanPieces[9], 'z');
  });

  it('decodes the empty sequence to the empty string', () => {
    assert.equal(tokenizer.decode([]), '');
    assert.deepEqual(tokenizer.pieces([], mask), []);
    assert.deepEqual(tokenizer.pieces([mask, mask], mask), [null, null]);
  });

  it('reports a missing or malformed file clearly', () => {
    assert.throws(() => Tokenizer.load(path.join(dir, 'absent.json')), /Cannot read the tokenizer file/);
    const bad = path.join(dir, 'bad', 'tokenizer.json');
    require('node:fs').mkdirSync(path.dirname(bad));
    writeFileSync(bad, '{"model": ');
    assert.throws(() => Tokenizer.load(bad), /not valid JSON/);
  });
});

/**
 * The built-in model's tokenizer (trained by engine/training/train_tokenizer.py) as the engine loads it:
 * the special tokens are single ids that agree with the checkpoint's config, and the engine's tokenizer
 * gives exactly the ids the Python trainer encoded the corpus with (engine/training/make_eval_set.py
 * recorded them for the held-out evaluation files), with byte-exact round trips.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '../../engine/model/tokenizer';

const repo = path.join(__dirname, '..', '..');
const builtinDir = path.join(repo, 'engine', 'models', 'builtin');
const evalDir = path.join(repo, 'engine', 'training', 'eval');

interface TokenizerFixture {
  files: { id: string; tokens: number; ids_sha256: string }[];
  strings: { text: string; ids: number[] }[];
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;
const heldOutFiles = readFileSync(path.join(evalDir, 'heldout-files.jsonl'), 'utf8')
  .split('\n')
  .filter((line) => line.length > 0)
  .map((line) => JSON.parse(line) as { id: string; text: string });
const idsDigest = (ids: number[]) => createHash('sha256').update(ids.join(',')).digest('hex');

describe('built-in tokenizer', () => {
  const tokenizer = Tokenizer.load(path.join(builtinDir, 'tokenizer.json'));
  const fixture = readJson<TokenizerFixture>(path.join(evalDir, 'tokenizer-ids.json'));

  it('has the special tokens the checkpoint config names, as the last three ids', () => {
    const config = readJson<Record<string, number>>(path.join(builtinDir, 'config.json'));
    assert.equal(tokenizer.tokenId('<|endoftext|>'), config.eos_token_id);
    assert.equal(tokenizer.tokenId('<|mask|>'), config.mask_token_id);
    assert.equal(tokenizer.tokenId('<|pad|>'), config.pad_token_id);
    assert.deepEqual([config.eos_token_id, config.mask_token_id, config.pad_token_id], [
      config.vocab_size - 3,
      config.vocab_size - 2,
      config.vocab_size - 1,
    ]);
  });

  it('encodes special tokens written in text as single ids, as the Python encoder does', () => {
    for (const { text, ids } of fixture.strings) {
      assert.deepEqual(tokenizer.encode(text), ids, JSON.stringify(text));
      assert.equal(tokenizer.decode(ids), text);
    }
  });

  it('gives the Python encoder\'s ids on every held-out evaluation file, and decodes them byte-exactly', () => {
    assert.equal(heldOutFiles.length, fixture.files.length);
    for (const [i, file] of heldOutFiles.entries()) {
      const expected = fixture.files[i];
      assert.equal(file.id, expected.id);
      const ids = tokenizer.encode(file.text);
      assert.equal(ids.length, expected.tokens, `${file.id}: token count`);
      assert.equal(idsDigest(ids), expected.ids_sha256, `${file.id}: ids differ from the Python encoder's`);
      assert.equal(tokenizer.decode(ids), file.text, `${file.id}: round trip`);
    }
  });

  it('encodes code compactly (the vocabulary learned code, not just bytes)', () => {
    const characters = heldOutFiles.reduce((n, f) => n + f.text.length, 0);
    const tokens = fixture.files.reduce((n, f) => n + f.tokens, 0);
    assert.ok(characters / tokens > 2.5, `${(characters / tokens).toFixed(2)} characters per token`);
  });
});

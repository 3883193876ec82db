import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCheckpointTokenizer, leadingSpecialTokens } from '../../engine/convert/tokenizerFiles';
import { Tokenizer } from '../../engine/model/tokenizer';
import { canvasPrefix } from '../../engine/model/prompting';
import { writeFixtureCheckpoint } from './convertFixtures';
import { temporaryDir } from './graphTestSupport';

describe('checkpoint tokenizers (Qwen-style byte-level BPE with added specials)', () => {
  let tmp: string;
  let tokenizer: Tokenizer;
  before(async () => {
    tmp = temporaryDir('tok');
    // Dream's repositories ship only the slow tokenizer's files; the converter builds tokenizer.json.
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
    const built = loadCheckpointTokenizer(src.dir);
    assert.equal(built.origin, 'vocab.json + merges.txt');
    fs.writeFileSync(path.join(tmp, 'tokenizer.json'), built.text);
    tokenizer = Tokenizer.load(path.join(tmp, 'tokenizer.json'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('encodes <|mask|>, <|endoftext|> and <|dlm_pad|> as single ids, also inside code', () => {
    assert.deepEqual(tokenizer.encode('<|mask|>'), [303]);
    assert.deepEqual(tokenizer.encode('<|endoftext|>'), [300]);
    assert.deepEqual(tokenizer.encode('<|dlm_pad|>'), [304]);
    const ids = tokenizer.encode('x<|mask|><|mask|>y<|dlm_pad|>');
    assert.deepEqual(ids.filter((id) => id >= 300), [303, 303, 304]);
    assert.equal(tokenizer.decode(ids), 'x<|mask|><|mask|>y<|dlm_pad|>');
  });

  it('applies the merges and Qwen2 pre-tokenization (digits one by one, contractions split)', () => {
    const alphabet = (s: string) => tokenizer.encode(s);
    assert.deepEqual(alphabet(' ret'), [258]); // "Ġr" + "et" → "Ġret"
    // The vocabulary has the merge "1 2", but Qwen2's pre-tokenizer splits numbers into single digits first.
    assert.equal(tokenizer.tokenId('12'), 264);
    assert.deepEqual(alphabet('12'), [...alphabet('1'), ...alphabet('2')]);
    assert.equal(alphabet('12').length, 2);
    assert.equal(tokenizer.decode(alphabet("I'm")), "I'm");
  });

  it('decodes byte-level pieces cleanly: accents, emoji, newlines, indentation', () => {
    const code = "def f(x):\n    return 'é' + \"😀\"  # ünïcödé\n\t\n";
    assert.equal(tokenizer.decode(tokenizer.encode(code)), code);
    // NFC: a decomposed é encodes like the composed one, as Qwen2's tokenizer normalises.
    assert.deepEqual(tokenizer.encode('e\u0301'), tokenizer.encode('\u00e9'));
    const ids = tokenizer.encode('a😀b');
    const pieces = tokenizer.pieces([...ids, 303, 303], 303);
    assert.equal(pieces.slice(0, ids.length).join(''), 'a😀b');
    assert.deepEqual(pieces.slice(ids.length), [null, null]);
  });

  it('puts the tokenizer\'s own leading special (LLaDA\'s BOS) before the prefix, and nothing for Qwen-style ones', async () => {
    const llada = await writeFixtureCheckpoint(path.join(tmp, 'llada'), 'llada');
    const lladaTokenizer = loadCheckpointTokenizer(llada.dir).json;
    assert.deepEqual(leadingSpecialTokens(lladaTokenizer), [305]);
    assert.deepEqual(canvasPrefix(llada.tokens, [7, 8]), [305, 7, 8]);
    const dream = loadCheckpointTokenizer(path.join(tmp, 'src')).json;
    assert.deepEqual(leadingSpecialTokens(dream), []);
    assert.deepEqual(canvasPrefix({ mask: 303, eos: [300], pad: null, bos: null }, [7, 8]), [7, 8]);
  });
});

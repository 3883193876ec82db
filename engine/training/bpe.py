"""Byte-level BPE as Hugging Face `tokenizers` defines it (GPT-2 / Qwen2 style), for the built-in model.

One module holds everything both the tokenizer trainer and the model trainer need: the pre-tokenizer
regex (Qwen2's), the byte <-> unicode table, an encoder that gives exactly the ids the engine's
`@huggingface/tokenizers` gives, a decoder, and the `tokenizer.json` reader/writer.
"""
import json

import regex

# Qwen2's split pattern: contractions, letters with one leading non-letter, single digits, punctuation
# runs (with trailing newlines), newline runs, and whitespace that leaves its last space to the next word.
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLIT_REGEX = regex.compile(SPLIT_PATTERN)

ENDOFTEXT = '<|endoftext|>'
MASK = '<|mask|>'
PAD = '<|pad|>'
SPECIAL_TOKENS = [ENDOFTEXT, MASK, PAD]


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    printable = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + \
        list(range(ord('®'), ord('ÿ') + 1))
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_UNICODE = bytes_to_unicode()
UNICODE_TO_BYTE = {c: b for b, c in BYTE_TO_UNICODE.items()}


def pretokenize(text):
    """Pre-tokens of `text` as byte-level unicode strings."""
    return [''.join(BYTE_TO_UNICODE[b] for b in piece.encode('utf-8')) for piece in SPLIT_REGEX.findall(text)]


class ByteLevelBPE:
    def __init__(self, vocab, merges, special_tokens):
        """vocab: token string -> id; merges: list of (left, right) strings in rank order."""
        self.vocab = vocab
        self.id_to_token = {i: t for t, i in vocab.items()}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.merges = merges
        self.special_tokens = dict(special_tokens)  # content -> id
        self.id_to_special = {i: t for t, i in self.special_tokens.items()}
        self.special_regex = regex.compile('(' + '|'.join(regex.escape(t) for t in
                                                          sorted(self.special_tokens, key=len, reverse=True)) + ')')
        self.cache = {}

    @property
    def vocab_size(self):
        return max(max(self.vocab.values()), max(self.special_tokens.values())) + 1

    def token_id(self, content):
        return self.special_tokens[content]

    def _bpe(self, piece):
        cached = self.cache.get(piece)
        if cached is not None:
            return cached
        symbols = list(piece)
        while len(symbols) > 1:
            best, best_rank = None, None
            for i in range(len(symbols) - 1):
                rank = self.ranks.get((symbols[i], symbols[i + 1]))
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = i, rank
            if best is None:
                break
            left, right = symbols[best], symbols[best + 1]
            merged = []
            i = 0
            while i < len(symbols):
                if i < len(symbols) - 1 and symbols[i] == left and symbols[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        ids = [self.vocab[s] for s in symbols]
        if len(self.cache) < 1_000_000:
            self.cache[piece] = ids
        return ids

    def encode_ordinary(self, text):
        """Ids of `text` with no special-token matching (training data cannot inject control tokens)."""
        ids = []
        for piece in pretokenize(text):
            ids.extend(self._bpe(piece))
        return ids

    def encode(self, text):
        """Ids as the Hugging Face tokenizer gives them: special-token strings in the text become their ids."""
        ids = []
        for part in self.special_regex.split(text):
            if part in self.special_tokens:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    def decode(self, ids):
        out = bytearray()
        text = []
        for i in ids:
            if i in self.id_to_special:
                text.append(out.decode('utf-8', errors='replace'))
                out = bytearray()
                text.append(self.id_to_special[i])
            else:
                out.extend(UNICODE_TO_BYTE[c] for c in self.id_to_token[i])
        text.append(out.decode('utf-8', errors='replace'))
        return ''.join(text)

    def to_tokenizer_json(self):
        """A Hugging Face `tokenizer.json` (Qwen2's layout without the NFC normalizer, so round trips are exact)."""
        byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False}
        return {
            'version': '1.0',
            'truncation': None,
            'padding': None,
            'added_tokens': [
                {'id': i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
                 'normalized': False, 'special': True}
                for t, i in sorted(self.special_tokens.items(), key=lambda kv: kv[1])
            ],
            'normalizer': None,
            'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
                {'type': 'Split', 'pattern': {'Regex': SPLIT_PATTERN}, 'behavior': 'Isolated', 'invert': False},
                byte_level,
            ]},
            'post_processor': byte_level,
            'decoder': byte_level,
            'model': {
                'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                'vocab': dict(sorted(self.vocab.items(), key=lambda kv: kv[1])),
                'merges': [[a, b] for a, b in self.merges],
            },
        }

    def save(self, path):
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self.to_tokenizer_json(), f, ensure_ascii=False, indent=1)
            f.write('\n')

    @classmethod
    def load(cls, path):
        with open(path, encoding='utf-8') as f:
            spec = json.load(f)
        model = spec['model']
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(' ')) for m in model['merges']]
        specials = {t['content']: t['id'] for t in spec['added_tokens']}
        return cls(model['vocab'], merges, specials)

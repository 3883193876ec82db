#!/usr/bin/python3
"""Train the built-in model's byte-level BPE tokenizer on the training corpus and save `tokenizer.json`.

Vocabulary: 256 byte tokens, then merges, then the special tokens <|endoftext|>, <|mask|>, <|pad|> as the
last ids (as Qwen2 places its specials after the merges). Masked diffusion needs no FIM tokens: a hole is
a run of <|mask|> between the prefix and the suffix.

The trainer is the classic incremental algorithm: count pre-tokens once, then repeatedly merge the most
frequent adjacent pair (ties: the smaller pair of ids), updating only the words that contain it.

Usage: /usr/bin/python3 engine/training/train_tokenizer.py [--data /tmp/dlm-data] [--vocab-size 4096]
"""
import argparse
import collections
import heapq
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import BYTE_TO_UNICODE, SPECIAL_TOKENS, ByteLevelBPE, pretokenize  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def count_pretokens(corpus_file, max_bytes):
    """Pre-token counts over the first `max_bytes` of every other training file (the corpus order is fixed)."""
    counts = collections.Counter()
    used = 0
    with open(corpus_file, encoding='utf-8') as f:
        for n, line in enumerate(f):
            if n % 2:
                continue
            text = json.loads(line)['text']
            counts.update(pretokenize(text))
            used += len(text)
            if used >= max_bytes:
                break
    return counts, used


def train_bpe(counts, target_tokens):
    tokens = [BYTE_TO_UNICODE[b] for b in range(256)]   # id -> string
    token_ids = {t: i for i, t in enumerate(tokens)}
    words = [[token_ids[c] for c in w] for w in counts]
    freqs = list(counts.values())

    pair_counts = collections.defaultdict(int)
    where = collections.defaultdict(set)
    for wi, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += freqs[wi]
            where[(a, b)].add(wi)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    merges = []
    while len(tokens) < target_tokens and heap:
        neg, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg or -neg <= 0:
            continue   # stale entry
        a, b = pair
        merged_string = tokens[a] + tokens[b]
        new_id = token_ids.get(merged_string)
        if new_id is None:
            new_id = len(tokens)
            tokens.append(merged_string)
            token_ids[merged_string] = new_id
        merges.append((tokens[a], tokens[b]))
        changed = set()
        for wi in sorted(where.pop(pair, ())):
            w = words[wi]
            f = freqs[wi]
            i = 0
            out = []
            while i < len(w):
                if i < len(w) - 1 and w[i] == a and w[i + 1] == b:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            for p in zip(w, w[1:]):
                pair_counts[p] -= f
                changed.add(p)
            for p in zip(out, out[1:]):
                pair_counts[p] += f
                where[p].add(wi)
                changed.add(p)
            words[wi] = out
        pair_counts.pop(pair, None)
        for p in changed:
            c = pair_counts.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_counts.pop(p, None)
    return tokens, merges


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=os.environ.get('DLM_DATA_DIR', '/tmp/dlm-data'))
    parser.add_argument('--vocab-size', type=int, default=4096)
    parser.add_argument('--sample-bytes', type=int, default=24_000_000)
    parser.add_argument('--out', default=os.path.join(REPO, 'engine', 'models', 'builtin', 'tokenizer.json'))
    args = parser.parse_args()

    t0 = time.time()
    counts, used = count_pretokens(os.path.join(args.data, 'corpus', 'train.jsonl'), args.sample_bytes)
    print(f'{used / 1e6:.1f} MB sampled, {len(counts)} distinct pre-tokens ({time.time() - t0:.0f}s)', file=sys.stderr)
    # Merges that re-create an existing string add no token: merging goes on until the vocabulary is full.
    tokens, merges = train_bpe(counts, args.vocab_size - len(SPECIAL_TOKENS))
    vocab = {t: i for i, t in enumerate(tokens)}
    specials = {t: len(tokens) + k for k, t in enumerate(SPECIAL_TOKENS)}
    bpe = ByteLevelBPE(vocab, merges, specials)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    bpe.save(args.out)
    print(f'{len(tokens)} tokens, {len(merges)} merges, specials {specials} -> {args.out} '
          f'({time.time() - t0:.0f}s)', file=sys.stderr)


if __name__ == '__main__':
    main()

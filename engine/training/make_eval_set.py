#!/usr/bin/python3
"""Pick the committed evaluation files from the held-out files, and record the Python tokenizer's ids for
them (the JavaScript tokenizer must give the same: test/engine/builtinTokenizer.test.ts).

  /usr/bin/python3 engine/training/make_eval_set.py [--data /tmp/dlm-data]

Writes engine/training/eval/heldout-files.jsonl ({id, lang, licence, text}: whole files held out of
training, under their packages' permissive licences) and engine/training/eval/tokenizer-ids.json
(per file: token count and the sha256 of the ids joined by ','; plus a few strings with special tokens).
"""
import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import ByteLevelBPE  # noqa: E402
from train import DEFAULT_TOKENIZER  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PER_LANGUAGE = {'typescript': 14, 'javascript': 10, 'python': 24}
MIN_BYTES, MAX_BYTES = 1500, 12000
SPECIAL_STRINGS = ['x = <|mask|><|mask|>;', '<|endoftext|>', 'a<|pad|>b<|mask|>\n']


def ids_digest(ids):
    return hashlib.sha256(','.join(map(str, ids)).encode('ascii')).hexdigest()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data', default=os.environ.get('DLM_DATA_DIR', '/tmp/dlm-data'))
    args = p.parse_args()
    with open(os.path.join(HERE, 'data_sources.json')) as f:
        licences = {s['source']: s['licence'] for s in json.load(f)['sources']}
    candidates = []
    with open(os.path.join(args.data, 'corpus', 'heldout.jsonl'), encoding='utf-8') as f:
        for line in f:
            doc = json.loads(line)
            if MIN_BYTES <= len(doc['text'].encode('utf-8')) <= MAX_BYTES:
                candidates.append(doc)
    candidates.sort(key=lambda d: hashlib.sha1(d['id'].encode('utf-8')).hexdigest())
    chosen = []
    for lang, count in PER_LANGUAGE.items():
        chosen += [d for d in candidates if d['lang'] == lang][:count]
    chosen.sort(key=lambda d: d['id'])

    os.makedirs(os.path.join(HERE, 'eval'), exist_ok=True)
    with open(os.path.join(HERE, 'eval', 'heldout-files.jsonl'), 'w', encoding='utf-8') as f:
        for d in chosen:
            source = next(s for s in licences if d['id'].startswith(s + '@'))
            f.write(json.dumps({'id': d['id'], 'lang': d['lang'], 'licence': licences[source], 'text': d['text']},
                               ensure_ascii=False) + '\n')

    bpe = ByteLevelBPE.load(DEFAULT_TOKENIZER)
    fixture = {
        'files': [{'id': d['id'], 'tokens': len(ids), 'ids_sha256': ids_digest(ids)}
                  for d in chosen for ids in [bpe.encode(d['text'])]],
        'strings': [{'text': s, 'ids': bpe.encode(s)} for s in SPECIAL_STRINGS],
    }
    with open(os.path.join(HERE, 'eval', 'tokenizer-ids.json'), 'w') as f:
        json.dump(fixture, f, indent=1)
        f.write('\n')
    print(f'{len(chosen)} files, {sum(len(d["text"]) for d in chosen):,} characters', file=sys.stderr)


if __name__ == '__main__':
    main()

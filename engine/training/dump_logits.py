#!/usr/bin/python3
"""Dump the PyTorch model's logits for a fixed infill canvas, as the reference the engine's ONNX step graph
must reproduce (test/engine/builtinModel.test.ts converts the same checkpoint and compares).

  /usr/bin/python3 engine/training/dump_logits.py [--checkpoint engine/models/builtin] \
      [--out engine/training/fixtures/builtin-logits.json]

The canvas is `prefix <|mask|>*n suffix`. Written: the full logits (base64 float32 little-endian) of the
rows that predict the masked positions (row p - 1 for mask p, Dream's shift) plus the first and last rows,
and every row's argmax.
"""
import argparse
import base64
import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import MASK, ByteLevelBPE  # noqa: E402
from hf_checkpoint import WEIGHTS_FILE, load_checkpoint_folder  # noqa: E402
from train import REPO  # noqa: E402

PREFIX = 'def mean(values):\n    """Arithmetic mean of a non-empty list."""\n    total = 0\n    for v in values:\n'
SUFFIX = '\n    return total / len(values)\n'
MASKS = 8


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--checkpoint', default=os.path.join(REPO, 'engine', 'models', 'builtin'))
    p.add_argument('--out', default=os.path.join(REPO, 'engine', 'training', 'fixtures', 'builtin-logits.json'))
    args = p.parse_args()
    torch.set_num_threads(2)

    model, hf = load_checkpoint_folder(args.checkpoint)
    bpe = ByteLevelBPE.load(os.path.join(args.checkpoint, 'tokenizer.json'))
    input_ids = bpe.encode(PREFIX) + [bpe.token_id(MASK)] * MASKS + bpe.encode(SUFFIX)
    with torch.no_grad():
        logits = model(torch.tensor([input_ids]))[0].numpy().astype('<f4')
    with open(os.path.join(args.checkpoint, WEIGHTS_FILE), 'rb') as f:
        weights_sha256 = hashlib.sha256(f.read()).hexdigest()
    mask_positions = [i for i, t in enumerate(input_ids) if t == bpe.token_id(MASK)]
    rows = sorted({0, len(input_ids) - 1, *(p - 1 for p in mask_positions)})
    fixture = {
        'checkpoint_weights_sha256': weights_sha256,
        'prefix': PREFIX, 'suffix': SUFFIX, 'masks': MASKS,
        'input_ids': input_ids,
        'vocab_size': int(logits.shape[1]),
        'argmax': [int(i) for i in logits.argmax(-1)],
        'rows': rows,
        'logits_f32_base64': base64.b64encode(np.ascontiguousarray(logits[rows]).tobytes()).decode('ascii'),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(fixture, f)
        f.write('\n')
    print(f'{len(input_ids)}-token canvas, {len(rows)} rows x {logits.shape[1]} -> {args.out}', file=sys.stderr)


if __name__ == '__main__':
    main()

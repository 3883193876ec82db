#!/usr/bin/python3
"""Export a training checkpoint as the built-in Hugging Face checkpoint folder.

  /usr/bin/python3 engine/training/export_checkpoint.py --run /tmp/dlm-data/runs/builtin \
      [--checkpoint checkpoint.pt] [--out engine/models/builtin]
  /usr/bin/python3 engine/training/export_checkpoint.py --untrained --out /tmp/dlm-data/untrained

`--untrained` writes the same architecture at its seed initialisation (the eval's untrained baseline).
The tokenizer (engine/models/builtin/tokenizer.json) is copied when the output folder is elsewhere.
"""
import argparse
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import ENDOFTEXT, MASK, PAD, ByteLevelBPE  # noqa: E402
from hf_checkpoint import save_checkpoint_folder  # noqa: E402
from model import DreamConfig, DreamModel  # noqa: E402
from train import DEFAULT_TOKENIZER, REPO  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--run', default='/tmp/dlm-data/runs/builtin')
    p.add_argument('--checkpoint', default='checkpoint.pt', help='file name inside the run folder')
    p.add_argument('--untrained', action='store_true', help='export the seed initialisation instead')
    p.add_argument('--out', default=os.path.join(REPO, 'engine', 'models', 'builtin'))
    args = p.parse_args()

    bpe = ByteLevelBPE.load(DEFAULT_TOKENIZER)
    special_ids = {'mask': bpe.token_id(MASK), 'eos': bpe.token_id(ENDOFTEXT), 'pad': bpe.token_id(PAD)}
    with open(os.path.join(args.run, 'config.json')) as f:
        run_config = json.load(f)
    config = DreamConfig(**run_config['model'])
    if args.untrained:
        torch.manual_seed(run_config['args']['seed'])
        model = DreamModel(config)
        metadata = {'format': 'pt', 'training_step': '0'}
    else:
        state = torch.load(os.path.join(args.run, args.checkpoint))
        model = DreamModel(DreamConfig(**state['config']))
        model.load_state_dict(state['model'])
        metadata = {'format': 'pt', 'training_step': str(state['step']), 'training_tokens': str(state['tokens_seen'])}
    save_checkpoint_folder(args.out, model, special_ids, metadata)
    tokenizer_out = os.path.join(args.out, 'tokenizer.json')
    if os.path.abspath(tokenizer_out) != os.path.abspath(DEFAULT_TOKENIZER):
        shutil.copyfile(DEFAULT_TOKENIZER, tokenizer_out)
    print(f'wrote {args.out} (step {metadata["training_step"]})', file=sys.stderr)


if __name__ == '__main__':
    main()

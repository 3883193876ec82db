#!/usr/bin/python3
"""Train the built-in model (masked diffusion on code) on the CPU with Debian's python3-torch.

  nice -n 5 /usr/bin/python3 engine/training/train.py --run /tmp/dlm-data/runs/builtin

Re-running the same command resumes exactly from the run's last checkpoint (model, optimizer, step, and the
data sampler's random state). Checkpoints are written every --checkpoint-minutes and when the process gets
SIGTERM (`kill <pid>` stops it cleanly after the current step); the log is `<run>/log.jsonl` (one line per
--log-every steps, validation on held-out files every --eval-every, and the settings changed at a resume,
such as --random-share, the share of random-masking examples against infill holes).

Learning rate: linear warm-up, then constant, then a linear decay over the last --decay-fraction of
--total-steps (warmup-stable-decay), so a run can be extended before its decay begins by resuming with a
larger --total-steps.
"""
import argparse
import dataclasses
import hashlib
import json
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import ENDOFTEXT, MASK, PAD, ByteLevelBPE  # noqa: E402
from model import DreamConfig, DreamModel  # noqa: E402
from objective import KINDS, ExampleMaker  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_TOKENIZER = os.path.join(REPO, 'engine', 'models', 'builtin', 'tokenizer.json')

MODEL_PRESETS = {
    # 5.0M parameters (3.9M outside the tied embedding): on a shared 2-core CPU (~400-800 tokens/s) a day
    # of training is ~30M tokens, and at that budget a smaller model reaches a lower loss than a larger one.
    'builtin': dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=2,
                    head_dim=32, intermediate_size=640),
    # For smoke tests of the pipeline.
    'tiny': dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 head_dim=16, intermediate_size=128),
}


def tokenize_corpus(bpe, tokenizer_path, corpus_file, cache_dir):
    """The corpus as one uint16 token stream, documents separated by <|endoftext|>; cached per tokenizer."""
    with open(tokenizer_path, 'rb') as f:
        key = hashlib.sha256(f.read()).hexdigest()[:12]
    name = os.path.splitext(os.path.basename(corpus_file))[0]
    path = os.path.join(cache_dir, f'{name}-{key}.u16')
    if not os.path.exists(path):
        eos = bpe.token_id(ENDOFTEXT)
        chunks = []
        with open(corpus_file, encoding='utf-8') as f:
            for line in f:
                chunks.append(np.asarray(bpe.encode_ordinary(json.loads(line)['text']) + [eos], dtype=np.uint16))
        stream = np.concatenate(chunks)
        os.makedirs(cache_dir, exist_ok=True)
        stream.tofile(path + '.tmp')
        os.replace(path + '.tmp', path)
    return np.fromfile(path, dtype=np.uint16)


def learning_rate(step, args):
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    decay_start = int(args.total_steps * (1 - args.decay_fraction))
    if step < decay_start:
        return args.lr
    progress = min(1.0, (step - decay_start) / max(1, args.total_steps - decay_start))
    return args.lr * (1 - progress * (1 - args.final_lr_fraction))


def weighted_loss(model, x, y, w):
    """Sum over masked positions of weight x cross-entropy, averaged over the batch. The prediction for
    position p is read from row p - 1 (Dream's shift), and the LM head runs only on the rows needed."""
    hidden = model.hidden_states(x)
    b_idx, p_idx = torch.nonzero(y[:, 1:] >= 0, as_tuple=True)
    p_idx = p_idx + 1
    logits = F.linear(hidden[b_idx, p_idx - 1], model.head_weight())
    ce = F.cross_entropy(logits, y[b_idx, p_idx], reduction='none')
    per_example = torch.zeros(x.shape[0]).index_add_(0, b_idx, ce * w[b_idx, p_idx])
    accuracy = (logits.argmax(-1) == y[b_idx, p_idx]).float()
    return per_example.mean(), per_example.detach(), ce.detach(), accuracy, b_idx


def validation_batches(tokens, args, maker):
    """Fixed held-out examples: the same windows and masks at every evaluation."""
    rng = np.random.default_rng(4321)
    kinds = [k for k in KINDS for _ in range(args.eval_examples_per_kind)]
    batches = []
    for i in range(0, len(kinds), args.batch_size):
        part = kinds[i:i + args.batch_size]
        batches.append(maker.batch(rng, tokens, len(part), part))
    return batches


@torch.no_grad()
def evaluate(model, batches):
    model.eval()
    sums = {k: [0.0, 0.0, 0] for k in KINDS}  # weighted loss, token accuracy, examples
    for x, y, w, kinds in batches:
        x, y, w = (torch.from_numpy(a) for a in (x, y, w))
        _, per_example, _, accuracy, b_idx = weighted_loss(model, x, y, w)
        for b, kind in enumerate(kinds):
            sums[kind][0] += float(per_example[b])
            sums[kind][1] += float(accuracy[b_idx == b].mean())
            sums[kind][2] += 1
    model.train()
    return {k: {'loss': round(s[0] / s[2], 4), 'accuracy': round(s[1] / s[2], 4)} for k, s in sums.items() if s[2]}


def save_checkpoint(path, model, optimizer, rng, step, tokens_seen, train_seconds, args):
    state = {
        'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'rng': rng.bit_generator.state,
        'torch_rng': torch.get_rng_state(), 'step': step, 'tokens_seen': tokens_seen,
        'train_seconds': train_seconds, 'config': dataclasses.asdict(model.config), 'args': vars(args),
    }
    torch.save(state, path + '.tmp')
    os.replace(path + '.tmp', path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--run', required=True, help='run folder (checkpoints, log)')
    p.add_argument('--data', default=os.environ.get('DLM_DATA_DIR', '/tmp/dlm-data'))
    p.add_argument('--tokenizer', default=DEFAULT_TOKENIZER)
    p.add_argument('--preset', default='builtin', choices=sorted(MODEL_PRESETS))
    p.add_argument('--length', type=int, default=256, help='canvas length in tokens')
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--lr', type=float, default=1.5e-3)
    p.add_argument('--final-lr-fraction', type=float, default=0.05)
    p.add_argument('--weight-decay', type=float, default=0.1)
    p.add_argument('--warmup-steps', type=int, default=300)
    p.add_argument('--total-steps', type=int, default=8000)
    p.add_argument('--decay-fraction', type=float, default=0.2)
    p.add_argument('--max-steps', type=int, default=None, help='stop after this step (default: total steps)')
    p.add_argument('--random-share', type=float, default=0.3,
                   help='share of random-masking examples; the rest are infill holes (objective.py)')
    p.add_argument('--eos-extension', type=float, default=0.5,
                   help='share of infill holes made longer than their content, the rest <|endoftext|>')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--log-every', type=int, default=10)
    p.add_argument('--eval-every', type=int, default=250)
    p.add_argument('--eval-examples-per-kind', type=int, default=16)
    p.add_argument('--checkpoint-minutes', type=float, default=15)
    p.add_argument('--keep-every-steps', type=int, default=1000, help='also keep a copy at these steps')
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    os.makedirs(args.run, exist_ok=True)
    bpe = ByteLevelBPE.load(args.tokenizer)
    ids = {'mask': bpe.token_id(MASK), 'eos': bpe.token_id(ENDOFTEXT), 'pad': bpe.token_id(PAD)}
    maker = ExampleMaker(bpe, args.length, ids, args.eos_extension)
    cache = os.path.join(args.data, 'tokens')
    train_tokens = tokenize_corpus(bpe, args.tokenizer, os.path.join(args.data, 'corpus', 'train.jsonl'), cache)
    heldout_tokens = tokenize_corpus(bpe, args.tokenizer, os.path.join(args.data, 'corpus', 'heldout.jsonl'), cache)
    print(f'train {len(train_tokens):,} tokens, held-out {len(heldout_tokens):,} tokens', file=sys.stderr)

    checkpoint_path = os.path.join(args.run, 'checkpoint.pt')
    resume = torch.load(checkpoint_path) if os.path.exists(checkpoint_path) else None
    if resume:
        config = DreamConfig(**resume['config'])
    else:
        torch.manual_seed(args.seed)
        config = DreamConfig(vocab_size=bpe.vocab_size, max_position_embeddings=args.length,
                             **MODEL_PRESETS[args.preset])
    model = DreamModel(config)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': args.weight_decay},
                                   {'params': no_decay, 'weight_decay': 0.0}], lr=args.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(args.seed)
    step, tokens_seen, train_seconds = 0, 0, 0.0
    if resume:
        model.load_state_dict(resume['model'])
        optimizer.load_state_dict(resume['optimizer'])
        rng.bit_generator.state = resume['rng']
        torch.set_rng_state(resume['torch_rng'])
        step, tokens_seen, train_seconds = resume['step'], resume['tokens_seen'], resume['train_seconds']
        print(f'resumed at step {step} ({tokens_seen:,} tokens, {train_seconds / 3600:.2f} h)', file=sys.stderr)
        # Lines a stopped session logged after its last checkpoint are dropped: those steps run again.
        log_path = os.path.join(args.run, 'log.jsonl')
        with open(log_path) as f:
            kept = [line for line in f if json.loads(line)['step'] <= step]
        changed = {k: v for k, v in vars(args).items() if resume['args'].get(k) != v}
        if changed:
            # The log keeps the history of settings changed between sessions (e.g. the example mix).
            kept.append(json.dumps({'step': step, 'resumed_with': changed}) + '\n')
        with open(log_path + '.tmp', 'w') as f:
            f.writelines(kept)
        os.replace(log_path + '.tmp', log_path)
    else:
        with open(os.path.join(args.run, 'config.json'), 'w') as f:
            json.dump({'model': dataclasses.asdict(config), 'args': vars(args)}, f, indent=1)
    print(f'{config.parameter_count():,} parameters', file=sys.stderr)

    # Validation examples stay the same whatever the training mix, so the curve is comparable across a run.
    val = validation_batches(heldout_tokens, args, ExampleMaker(bpe, args.length, ids))
    log = open(os.path.join(args.run, 'log.jsonl'), 'a')
    last_checkpoint = time.time()
    window = {'loss': 0.0, 'kinds': {k: [0.0, 0] for k in KINDS}, 'steps': 0, 'tokens': 0, 'seconds': 0.0}
    max_steps = args.max_steps if args.max_steps is not None else args.total_steps
    # SIGTERM (kill <pid>) stops after the current step with a checkpoint, so a stopped run resumes exactly.
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while step < max_steps and not stop:
        t0 = time.time()
        lr = learning_rate(step, args)
        for group in optimizer.param_groups:
            group['lr'] = lr
        x, y, w, kinds = maker.batch(rng, train_tokens, args.batch_size, random_share=args.random_share)
        x, y, w = (torch.from_numpy(a) for a in (x, y, w))
        loss, per_example, _, _, _ = weighted_loss(model, x, y, w)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        optimizer.step()
        step += 1
        dt = time.time() - t0
        train_seconds += dt
        tokens_seen += x.numel()
        window['loss'] += float(loss)
        for kind, value in zip(kinds, per_example.tolist()):
            window['kinds'][kind][0] += value
            window['kinds'][kind][1] += 1
        window['steps'] += 1
        window['tokens'] += x.numel()
        window['seconds'] += dt
        if step % args.log_every == 0:
            entry = {'step': step, 'tokens': tokens_seen, 'hours': round(train_seconds / 3600, 3),
                     'loss': round(window['loss'] / window['steps'], 4), 'lr': lr, 'grad_norm': round(grad_norm, 3),
                     'tokens_per_s': round(window['tokens'] / window['seconds'], 1),
                     'by_kind': {k: round(s / n, 4) for k, (s, n) in window['kinds'].items() if n}}
            log.write(json.dumps(entry) + '\n')
            log.flush()
            window = {'loss': 0.0, 'kinds': {k: [0.0, 0] for k in KINDS}, 'steps': 0, 'tokens': 0, 'seconds': 0.0}
        if step % args.eval_every == 0 or step == max_steps:
            log.write(json.dumps({'step': step, 'tokens': tokens_seen, 'validation': evaluate(model, val)}) + '\n')
            log.flush()
        if time.time() - last_checkpoint > args.checkpoint_minutes * 60 or step == max_steps or stop:
            save_checkpoint(checkpoint_path, model, optimizer, rng, step, tokens_seen, train_seconds, args)
            last_checkpoint = time.time()
        if step % args.keep_every_steps == 0:
            save_checkpoint(os.path.join(args.run, f'checkpoint-{step}.pt'), model, optimizer, rng, step,
                            tokens_seen, train_seconds, args)
    log.close()


if __name__ == '__main__':
    main()

"""Training examples for the masked-diffusion objective, built from windows of the token stream.

Every example is a canvas of L tokens with some positions replaced by <|mask|>; the model must predict the
original token at every masked position (through the Dream shift: from the row before it). Kinds:

- `random`: LLaDA/Dream pre-training. t ~ U(0, 1); every position but the first is masked with probability t.
- `lines`: a hole of whole lines (1 line half the time, 2-3 or 4-10 lines otherwise) between a prefix and
  a suffix: what block infill and line completion ask for.
- `rest_of_line`: from a point inside a line to its end (inline completion at the cursor).
- `span`: any 1-48 tokens.

In hole examples the hole is sometimes longer than its content: the extra positions must be <|endoftext|>,
which teaches the model to end a fill early when it is given more masks than the code needs (the engine
trims the fill at the first <|endoftext|>). Inside the hole, a fraction t ~ U(0, 1) of positions is masked
(at least one), so the model also learns the partly decoded holes it sees during denoising.

Weights: each masked position gets 1 / (t * candidates), the ELBO weighting of masked diffusion; the loss
of an example is the weighted sum of its cross-entropies.
"""
import numpy as np

KINDS = ('random', 'lines', 'rest_of_line', 'span')
KIND_PROBABILITIES = (0.35, 0.35, 0.12, 0.18)
MIN_MASK_RATE = 0.02


def line_end_table(bpe):
    """For every token id: does its text end a line?"""
    table = np.zeros(bpe.vocab_size, dtype=bool)
    for token, i in bpe.vocab.items():
        table[i] = token.endswith('Ċ')  # the byte-level symbol of '\n'
    return table


def _mask_some(rng, n, t):
    """Indices (of n) to mask, each with probability t, at least one."""
    chosen = np.nonzero(rng.random(n) < t)[0]
    if len(chosen) == 0:
        chosen = np.array([rng.integers(n)])
    return chosen


def make_example(rng, window, kind, ids, line_ends):
    """(input_ids, targets, weights) for one window; targets are -1 where nothing is predicted."""
    L = len(window)
    canvas = window.astype(np.int64).copy()
    targets = np.full(L, -1, dtype=np.int64)
    weights = np.zeros(L, dtype=np.float32)
    if kind == 'random':
        t = rng.uniform(MIN_MASK_RATE, 1.0)
        positions = 1 + _mask_some(rng, L - 1, t)
        targets[positions] = canvas[positions]
        weights[positions] = 1.0 / (t * (L - 1))
        canvas[positions] = ids['mask']
        return canvas, targets, weights

    starts = 1 + np.nonzero(line_ends[window[:-1]])[0]  # positions that begin a line
    if kind == 'lines' and len(starts) >= 1:
        first = int(rng.integers(len(starts)))
        u = rng.random()
        count = 1 if u < 0.5 else int(rng.integers(2, 4)) if u < 0.8 else int(rng.integers(4, 11))
        start = int(starts[first])
        end = int(starts[first + count]) if first + count < len(starts) else L
    elif kind == 'rest_of_line':
        start = int(rng.integers(1, L))
        later = starts[starts > start]
        end = int(later[0]) if len(later) else L
    else:  # span, or a window without line breaks
        start = int(rng.integers(1, L))
        end = min(L, start + int(rng.integers(1, 49)))
    content = canvas[start:end]
    extra = int(rng.integers(1, max(1, len(content)) + 1)) if rng.random() < 0.5 else 0
    hole = np.concatenate([content, np.full(extra, ids['eos'], dtype=np.int64)])[:L - start]
    canvas = np.concatenate([canvas[:start], hole, canvas[end:]])[:L]
    t = rng.uniform(MIN_MASK_RATE, 1.0)
    positions = start + _mask_some(rng, len(hole), t)
    targets[positions] = canvas[positions]
    weights[positions] = 1.0 / (t * len(hole))
    canvas[positions] = ids['mask']
    return canvas, targets, weights


def make_batch(rng, tokens, batch_size, length, ids, line_ends, kinds=None):
    """A batch of windows drawn uniformly from the token stream, each made into an example of a random kind."""
    xs, ys, ws, ks = [], [], [], []
    for b in range(batch_size):
        start = int(rng.integers(0, len(tokens) - length))
        kind = kinds[b] if kinds is not None else KINDS[int(rng.choice(len(KINDS), p=KIND_PROBABILITIES))]
        x, y, w = make_example(rng, np.asarray(tokens[start:start + length]), kind, ids, line_ends)
        xs.append(x)
        ys.append(y)
        ws.append(w)
        ks.append(kind)
    return np.stack(xs), np.stack(ys), np.stack(ws), ks

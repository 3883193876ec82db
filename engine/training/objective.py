"""Training examples for the masked-diffusion objective, built from windows of the token stream.

Every example is a canvas of L tokens with some positions replaced by <|mask|>; the model must predict the
original token at every masked position (through the Dream shift: from the row before it). Kinds:

- `random`: LLaDA/Dream pre-training. t ~ U(0, 1); every position but the first is masked with probability t.
- `lines`: a hole of whole lines (1 line half the time, 2-3 or 4-10 lines otherwise) between a prefix and
  a suffix, with or without the newline that ends the last line: what block infill asks for.
- `rest_of_line`: from a point inside a line (inside a word too) to its end: inline completion.
- `span`: any stretch of up to 160 bytes.

Hole examples are cut in the *text* and the prefix, hole and suffix are tokenized separately, exactly as the
engine tokenizes a request, so the token boundaries around the hole are the ones the model meets in use.
The hole is sometimes longer than its content: the extra positions must be <|endoftext|>, which teaches the
model to end a fill early when it is given more masks than the code needs (the engine trims the fill at the
first <|endoftext|>). Inside the hole a fraction t ~ U(0, 1) of positions is masked (at least one), so the
model also learns the partly decoded holes it sees while denoising.

Weights: the masked-diffusion ELBO weights each masked position by 1 / (t * candidates); here t is the
mask ratio the example actually got (masked / candidates), so the loss of an example is the mean
cross-entropy over its masked positions. With batches of 16, the sampled t's 1 / t spikes (one masked
token weighted 50x) made the loss too noisy; in expectation over large canvases the two agree.
"""
import numpy as np

from bpe import UNICODE_TO_BYTE

KINDS = ('random', 'lines', 'rest_of_line', 'span')
# How the hole examples divide among themselves; the share of `random` examples is a training setting
# (train.py --random-share): high while the model learns the language (every position can be a target, so a
# random example teaches ~10x more per forward pass than a hole), lower when it specialises in infilling.
HOLE_KIND_WEIGHTS = {'lines': 0.4, 'rest_of_line': 0.15, 'span': 0.15}


def kind_probabilities(random_share):
    holes = sum(HOLE_KIND_WEIGHTS.values())
    return [random_share] + [(1 - random_share) * HOLE_KIND_WEIGHTS[k] / holes for k in KINDS[1:]]
MIN_MASK_RATE = 0.02
# Extra tokens read beyond the canvas for hole examples, so the suffix still fills the canvas after the
# hole is cut and the pieces are re-tokenized.
WINDOW_MARGIN = 160
SEPARATOR = b'\x00'


def _mask_some(rng, n, t):
    """Indices (of n) to mask, each with probability t, at least one."""
    chosen = np.nonzero(rng.random(n) < t)[0]
    if len(chosen) == 0:
        chosen = np.array([rng.integers(n)])
    return chosen


def _char_start(data, i):
    """The nearest position at or after i that starts a UTF-8 character."""
    while i < len(data) and (data[i] & 0xC0) == 0x80:
        i += 1
    return i


class ExampleMaker:
    def __init__(self, bpe, length, ids, eos_extension=0.5):
        """eos_extension: the share of hole examples whose hole is longer than its content (by 1x-2x), the
        rest being <|endoftext|>. Too high a share teaches the model to end fills early even when the
        length is right; too low, and it cannot stop when it is given too many masks."""
        self.bpe = bpe
        self.eos_extension = eos_extension
        self.length = length
        self.ids = ids  # mask, eos
        self.token_bytes = [b''] * bpe.vocab_size
        for token, i in bpe.vocab.items():
            self.token_bytes[i] = bytes(UNICODE_TO_BYTE[c] for c in token)
        # The stream's document separator becomes one NUL byte (the corpus has none: build_dataset.py drops
        # such files), so no cut can fall inside it and the separator survives re-tokenization.
        self.token_bytes[ids['eos']] = SEPARATOR

    def window_size(self):
        return self.length + WINDOW_MARGIN

    def _encode(self, data):
        ids = []
        for k, part in enumerate(data.split(SEPARATOR)):
            if k:
                ids.append(self.ids['eos'])
            if part:
                ids.extend(self.bpe.encode_ordinary(part.decode('utf-8', errors='replace')))
        return ids

    def random_example(self, rng, window):
        L = self.length
        canvas = np.asarray(window[:L], dtype=np.int64).copy()
        targets = np.full(L, -1, dtype=np.int64)
        weights = np.zeros(L, dtype=np.float32)
        t = rng.uniform(MIN_MASK_RATE, 1.0)
        positions = 1 + _mask_some(rng, L - 1, t)
        targets[positions] = canvas[positions]
        weights[positions] = 1.0 / len(positions)
        canvas[positions] = self.ids['mask']
        return canvas, targets, weights

    def _cut(self, rng, data, anchor, kind):
        """Byte range [start, end) of the hole, around byte `anchor`."""
        line_start = data.rfind(b'\n', 0, anchor) + 1
        if kind == 'lines':
            start = line_start if line_start > 0 else data.find(b'\n', anchor) + 1
            if start <= 0:
                start = anchor
            u = rng.random()
            count = 1 if u < 0.5 else int(rng.integers(2, 4)) if u < 0.8 else int(rng.integers(4, 11))
            end = start
            for _ in range(count):
                nl = data.find(b'\n', end)
                end = len(data) if nl < 0 else nl + 1
            # Half the time the last newline stays in the suffix (a selection of whole lines, as `dlm infill
            # --select-lines` cuts it), half the time it is part of the hole.
            if data[end - 1:end] == b'\n' and end - 1 > start and rng.random() < 0.5:
                end -= 1
            return start, end
        start = _char_start(data, anchor)
        if kind == 'rest_of_line':
            nl = data.find(b'\n', start)
            end = len(data) if nl < 0 else nl + (1 if rng.random() < 0.3 else 0)
            if end <= start:  # the cursor was at the end of its line: complete the next one
                nl = data.find(b'\n', start + 1)
                end = len(data) if nl < 0 else nl
        else:
            end = _char_start(data, start + int(rng.integers(1, 161)))
        return start, max(end, start + 1)

    def hole_example(self, rng, window, kind):
        L = self.length
        window = [int(t) for t in window]
        offsets = np.cumsum([0] + [len(self.token_bytes[t]) for t in window])
        data = b''.join(self.token_bytes[t] for t in window)
        # The hole begins inside the first L - 2 tokens, so there is prefix before it and room after it.
        token = int(rng.integers(1, L - 2))
        anchor = int(offsets[token]) + int(rng.integers(0, max(1, offsets[token + 1] - offsets[token])))
        start, end = self._cut(rng, data, anchor, kind)
        start = max(start, int(offsets[1]))
        end = min(max(end, start + 1), len(data))
        prefix, middle, suffix = self._encode(data[:start]), self._encode(data[start:end]), self._encode(data[end:])
        longer = rng.random() < self.eos_extension
        extra = int(rng.integers(1, max(1, len(middle)) + 1)) if longer else 0
        hole = (middle + [self.ids['eos']] * extra)[:L - 2]
        keep_prefix = max(1, min(len(prefix), L - len(hole)))
        prefix = prefix[-keep_prefix:]
        suffix = suffix[:L - len(prefix) - len(hole)]
        pad = L - len(prefix) - len(hole) - len(suffix)
        canvas = np.asarray(prefix + hole + suffix + [self.ids['eos']] * pad, dtype=np.int64)
        targets = np.full(L, -1, dtype=np.int64)
        weights = np.zeros(L, dtype=np.float32)
        t = rng.uniform(MIN_MASK_RATE, 1.0)
        positions = len(prefix) + _mask_some(rng, len(hole), t)
        targets[positions] = canvas[positions]
        weights[positions] = 1.0 / len(positions)
        canvas[positions] = self.ids['mask']
        return canvas, targets, weights

    def batch(self, rng, tokens, batch_size, kinds=None, random_share=0.3):
        """A batch of windows drawn uniformly from the token stream, each made into an example: of the given
        kinds, or of kinds drawn with `kind_probabilities(random_share)`."""
        probabilities = kind_probabilities(random_share)
        xs, ys, ws, ks = [], [], [], []
        size = self.window_size()
        for b in range(batch_size):
            start = int(rng.integers(0, len(tokens) - size))
            kind = kinds[b] if kinds is not None else KINDS[int(rng.choice(len(KINDS), p=probabilities))]
            window = tokens[start:start + size]
            if kind == 'random':
                x, y, w = self.random_example(rng, window)
            else:
                x, y, w = self.hole_example(rng, window, kind)
            xs.append(x)
            ys.append(y)
            ws.append(w)
            ks.append(kind)
        return np.stack(xs), np.stack(ys), np.stack(ws), ks

"""The built-in model: a small Dream (Qwen2-layout) bidirectional transformer, exactly as the engine's step
graph computes it (engine/graph/stepGraphBuilder.ts): RMSNorm, q/k/v with bias, grouped-query attention,
RoPE in the non-interleaved rotate_half form, SwiGLU MLP, no causal mask, tied or separate LM head.

Module names follow Hugging Face's Qwen2 (`model.embed_tokens`, `model.layers.N.self_attn.q_proj`, ...,
`model.norm`, `lm_head`), so `state_dict()` keys are the canonical weight names of
engine/model/architecture.ts.

Logits are returned unshifted, one row per position; the Dream convention is that row p predicts the
token at position p + 1 (so the engine reads the prediction for position p from row p - 1).
"""
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass
class DreamConfig:
    vocab_size: int = 4096
    hidden_size: int = 256
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    head_dim: int = 32
    intermediate_size: int = 768
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02

    def parameter_count(self):
        h, d, v = self.hidden_size, self.head_dim, self.vocab_size
        q, kv = self.num_attention_heads * d, self.num_key_value_heads * d
        layer = 2 * h + (h * q + q) + 2 * (h * kv + kv) + q * h + 3 * h * self.intermediate_size
        return v * h + self.num_hidden_layers * layer + h + (0 if self.tie_word_embeddings else v * h)


class RMSNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(positions, head_dim, theta):
    """cos/sin of `position * theta^(-2i/D)`, duplicated over both halves: [B, L, D] (float64 then float32,
    as the engine computes its tables)."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = positions.to(torch.float64)[..., None] * inv_freq
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().float(), angles.sin().float()


class Attention(nn.Module):
    def __init__(self, c: DreamConfig):
        super().__init__()
        self.c = c
        h, d = c.hidden_size, c.head_dim
        self.q_proj = nn.Linear(h, c.num_attention_heads * d, bias=True)
        self.k_proj = nn.Linear(h, c.num_key_value_heads * d, bias=True)
        self.v_proj = nn.Linear(h, c.num_key_value_heads * d, bias=True)
        self.o_proj = nn.Linear(c.num_attention_heads * d, h, bias=False)

    def forward(self, x, cos, sin, bias=None):
        c = self.c
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, c.num_attention_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        cos, sin = cos[:, None], sin[:, None]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # Query heads are grouped per K/V head (Qwen2's repeat_kv order: head h uses K/V head h // group).
        group = c.num_attention_heads // c.num_key_value_heads
        q = q.reshape(b, c.num_key_value_heads, group * n, c.head_dim)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim))
        if bias is not None:
            scores = scores + bias
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        out = out.reshape(b, c.num_attention_heads, n, c.head_dim).transpose(1, 2).reshape(b, n, -1)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, c: DreamConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: DreamConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, bias=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class DreamBackbone(nn.Module):
    def __init__(self, c: DreamConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class DreamModel(nn.Module):
    def __init__(self, c: DreamConfig):
        super().__init__()
        self.config = c
        self.model = DreamBackbone(c)
        if not c.tie_word_embeddings:
            self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.apply(self._init)
        # Residual branch outputs start small (GPT-2 style), which keeps a deep narrow stack stable.
        for layer in self.model.layers:
            nn.init.normal_(layer.self_attn.o_proj.weight, std=c.initializer_range / math.sqrt(2 * c.num_hidden_layers))
            nn.init.normal_(layer.mlp.down_proj.weight, std=c.initializer_range / math.sqrt(2 * c.num_hidden_layers))

    def _init(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.initializer_range)

    def head_weight(self):
        return self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight

    def hidden_states(self, input_ids, position_ids=None, attention_bias=None):
        b, n = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(n)[None].expand(b, n)
        cos, sin = rope_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta)
        x = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin, attention_bias)
        return self.model.norm(x)

    def forward(self, input_ids, position_ids=None, attention_bias=None):
        """Logits [B, L, V]; row p is the prediction for position p + 1."""
        return F.linear(self.hidden_states(input_ids, position_ids, attention_bias), self.head_weight())

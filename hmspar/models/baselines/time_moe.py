"""Time-MoE baseline: a decoder-only transformer with sparse mixture-of-experts feed-forward layers.

A compact re-implementation, written from the paper, of the architecture of Time-MoE (Shi et al., 2024,
"Time-MoE: Billion-Scale Time Series Foundation Models with Mixture of Experts"), used here as a
*supervised classifier trained from scratch* with the shared Trainer: no pretrained weights are loaded
and nothing is forecast. What is kept from the paper:

- point-wise tokens: each time step's vector of channel values (and, optionally, the 0/1 activity mask)
  is embedded as one token;
- RMSNorm pre-normalisation, causal self-attention with rotary position embeddings (RoPE);
- sparse mixture-of-experts feed-forward layers: a softmax router picks the top-k of ``n_experts``
  SwiGLU experts per token, plus one *shared* expert gated by a sigmoid, as in Time-MoE;
- the auxiliary load-balancing loss ``n_experts * sum_i f_i * P_i`` (``f_i`` fraction of top-k
  assignments sent to expert ``i``, ``P_i`` its mean router probability), summed over layers, scaled by
  ``aux_weight`` and exposed as ``module.aux_loss`` for the Trainer.

The forecasting heads of the paper are replaced by a classification head on the last token (which, under
causal attention, has seen the whole series) or on the mean of all tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.models.torch_base import TorchClassifier
from hmspar.training.trainer import TrainConfig


# ---------------------------------------------------------------------------------------------- layers
class RMSNorm(nn.Module):
    """Root-mean-square layer normalisation (no centring), as in Time-MoE and LLaMA."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (..., d) -> (..., d)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Apply rotary position embeddings to ``x`` of shape (B, H, T, Dh) (Dh even), positions 0..T-1."""
    _, _, t, dh = x.shape
    half = dh // 2
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)  # (Dh/2,)
    angles = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * inv_freq[None]  # (T, Dh/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, H, T, Dh)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE on queries and keys."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError(f"d_model ({d_model}) must split into n_heads ({n_heads}) heads of even size")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # (B, T, d)
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = rotary(q), rotary(k)  # (B, H, T, Dh)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, d))  # (B, T, d)


class SwiGLU(nn.Module):
    """Gated feed-forward expert ``W_down(silu(W_gate x) * W_up x)``."""

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(d_model, d_hidden, bias=False)
        self.up = nn.Linear(d_model, d_hidden, bias=False)
        self.down = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, d) -> (N, d)
        return self.down(F.silu(self.gate(x)) * self.up(x))


class SparseMoE(nn.Module):
    """Top-k routed mixture of SwiGLU experts plus a sigmoid-gated shared expert.

    ``forward`` returns the mixed output and the load-balancing loss of this layer. Tokens are
    dispatched to the experts that selected them (sparse computation), not run through every expert.
    """

    def __init__(self, d_model: int, d_expert: int, n_experts: int, top_k: int) -> None:
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k ({top_k}) must be between 1 and n_experts ({n_experts})")
        self.n_experts, self.top_k = n_experts, top_k
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(d_model, d_expert) for _ in range(n_experts))
        self.shared = SwiGLU(d_model, d_expert)
        self.shared_gate = nn.Linear(d_model, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        h = x.reshape(-1, shape[-1])  # (N, d)
        probs = self.router(h).softmax(dim=-1)  # (N, E)
        weight, chosen = probs.topk(self.top_k, dim=-1)  # (N, k), (N, k)
        out = torch.zeros_like(h)
        for e, expert in enumerate(self.experts):
            token, slot = torch.nonzero(chosen == e, as_tuple=True)  # tokens routed to expert e
            if token.numel():
                out.index_add_(0, token, expert(h[token]) * weight[token, slot, None])
        out = out + torch.sigmoid(self.shared_gate(h)) * self.shared(h)  # (N, d)
        # Load balancing: E * sum_i f_i P_i (equals 1 for perfectly uniform routing).
        counts = F.one_hot(chosen, self.n_experts).sum(dim=(0, 1)).to(h.dtype)  # (E,)
        frac = counts / max(chosen.numel(), 1)
        balance = self.n_experts * (frac * probs.mean(dim=0)).sum()
        return out.view(shape), balance


class TimeMoEBlock(nn.Module):
    """Pre-norm decoder block: causal attention, then the sparse MoE feed-forward layer."""

    def __init__(self, d_model: int, n_heads: int, d_expert: int, n_experts: int, top_k: int,
                 dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(d_model), RMSNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout)
        self.moe = SparseMoE(d_model, d_expert, n_experts, top_k)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + self.drop(self.attn(self.norm1(x)))  # (B, T, d)
        y, balance = self.moe(self.norm2(x))  # (B, T, d)
        return x + self.drop(y), balance


class TimeMoENet(nn.Module):
    """Time-MoE style classifier network.

    Parameters
    ----------
    n_channels : int
        Channels ``C`` of the series.
    n_outputs : int
        Logit columns (1 for binary).
    use_mask : bool
        Also feed the 0/1 activity mask (2C values per token).
    d_model, n_heads, n_layers, d_expert, n_experts, top_k, dropout
        Transformer sizes; see :class:`TimeMoEConfig`.
    pool : {"last", "mean"}
        Classify from the last token or the mean of all tokens.
    aux_weight : float
        Scale of the summed load-balancing losses stored in ``aux_loss``.
    """

    def __init__(self, n_channels: int, n_outputs: int, use_mask: bool = True, d_model: int = 64,
                 n_heads: int = 4, n_layers: int = 2, d_expert: int = 64, n_experts: int = 4,
                 top_k: int = 2, dropout: float = 0.1, pool: str = "last", aux_weight: float = 0.02) -> None:
        super().__init__()
        self.use_mask, self.pool, self.aux_weight = use_mask, pool, aux_weight
        self.embed = nn.Linear(n_channels * (2 if use_mask else 1), d_model)
        self.blocks = nn.ModuleList(TimeMoEBlock(d_model, n_heads, d_expert, n_experts, top_k, dropout)
                                    for _ in range(n_layers))
        self.norm = RMSNorm(d_model)
        self.head = nn.Linear(d_model, n_outputs)
        self.aux_loss: torch.Tensor | None = None

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["series"]  # (B, C, T)
        if self.use_mask:
            x = torch.cat([x, batch["mask"]], dim=1)  # (B, 2C, T)
        h = self.embed(x.transpose(1, 2))  # (B, T, d): one token per time step
        balance = h.new_zeros(())
        for block in self.blocks:
            h, b = block(h)  # (B, T, d)
            balance = balance + b
        self.aux_loss = self.aux_weight * balance
        h = self.norm(h)
        pooled = h[:, -1] if self.pool == "last" else h.mean(dim=1)  # (B, d)
        return self.head(pooled)  # (B, n_outputs)


# ---------------------------------------------------------------------------------------------- model
def _small_train() -> TrainConfig:
    return TrainConfig(epochs=20, batch_size=256, lr=1e-3, patience=4)


@dataclasses.dataclass(frozen=True)
class TimeMoEConfig:
    """Settings of :class:`TimeMoEModel` (``baselines.time_moe`` in ``params.yaml``).

    Parameters
    ----------
    inputs : list of str
        Must be ``["series"]`` (the mask travels with the series).
    use_mask : bool
        Feed the activity mask as extra token features.
    d_model, n_heads, n_layers : int
        Width, attention heads (``d_model / n_heads`` must be even, for RoPE) and decoder blocks.
    n_experts, top_k, d_expert : int
        Routed experts per MoE layer, experts chosen per token, hidden width of each SwiGLU expert.
    dropout : float
        Dropout on attention weights and residual branches.
    pool : {"last", "mean"}
        Classification token: the last one (sees the whole series under causal attention) or the mean.
    aux_weight : float
        Weight of the load-balancing loss (Time-MoE uses 0.02).
    train : TrainConfig
        Optimisation settings for the shared Trainer.
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["series"])
    use_mask: bool = True
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_experts: int = 4
    top_k: int = 2
    d_expert: int = 64
    dropout: float = 0.1
    pool: Literal["last", "mean"] = "last"
    aux_weight: float = 0.02
    train: TrainConfig = dataclasses.field(default_factory=_small_train)

    def __post_init__(self) -> None:
        _check_series_only(self.inputs)
        for name in ("d_model", "n_heads", "n_layers", "n_experts", "top_k", "d_expert"):
            _check_positive_int(name, getattr(self, name))
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model ({self.d_model}) must split into n_heads ({self.n_heads}) heads of "
                             "even size (RoPE)")
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k ({self.top_k}) must not exceed n_experts ({self.n_experts})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight: must be non-negative, got {self.aux_weight!r}")
        if self.pool not in ("last", "mean"):
            raise ValueError(f"pool: expected 'last' or 'mean', got {self.pool!r}")


def _check_series_only(inputs: list[str]) -> None:
    if list(inputs) != ["series"]:
        raise ValueError(f"inputs: this sequence model reads the series only; expected ['series'], got {inputs!r}")


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")


class TimeMoEModel(TorchClassifier):
    """Time-MoE style sparse-MoE decoder transformer, trained from scratch as a classifier.

    No pretrained Time-MoE weights are used: every parameter is learned on the training split by the
    shared Trainer, with the load-balancing loss added through ``module.aux_loss``.
    """

    Config = TimeMoEConfig
    name = "time_moe"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"d_model": 16, "n_heads": 2, "n_layers": 1, "n_experts": 3, "top_k": 2, "d_expert": 16,
                "train": {"epochs": 12, "batch_size": 32, "lr": 3e-3, "patience": 4, "num_threads": 1}}

    def build_module(self, X: dict[str, np.ndarray], n_outputs: int) -> nn.Module:
        """Build the network for series of ``C = X['series'].shape[1]`` channels."""
        c = self.cfg
        return TimeMoENet(int(np.shape(X["series"])[1]), n_outputs, use_mask=c.use_mask, d_model=c.d_model,
                          n_heads=c.n_heads, n_layers=c.n_layers, d_expert=c.d_expert,
                          n_experts=c.n_experts, top_k=c.top_k, dropout=c.dropout, pool=c.pool,
                          aux_weight=c.aux_weight)

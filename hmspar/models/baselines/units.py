"""UniTS baseline: patch tokens per channel, prompt tokens, time and variable attention, DyLinear mixing.

A compact re-implementation, written from the paper, of the UniTS backbone (Gao et al., NeurIPS 2024,
"UniTS: A Unified Multi-Task Time Series Model"), used here as a *supervised classifier trained from
scratch* with the shared Trainer: no pretrained or multi-task weights, one task. What is kept:

- each channel is cut into non-overlapping patches (left-padded with zeros); a patch of values and its
  activity mask is embedded as one token, plus a sinusoidal position embedding;
- learned prompt tokens are prepended to every channel's token sequence and a learned CLS (class) token
  appended, as UniTS does for its task tokens;
- each block applies self-attention along time (within a channel), self-attention across variables
  (channels, at each token position), and a DyLinear MLP: a token-mixing linear map whose weight is
  stored for ``max_tokens`` positions and resized by interpolation to the actual number of tokens, so
  the same weights serve any series length, followed by a per-token MLP;
- classification from the CLS tokens, averaged over channels (UniTS compares them with class
  embeddings; a linear head is the equivalent for a fixed label set).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.models.baselines.mptsnet import sinusoidal
from hmspar.models.torch_base import TorchClassifier
from hmspar.training.trainer import TrainConfig


class DyLinear(nn.Module):
    """Token-mixing linear map whose (L0, L0) weight is resized to (L, L) for a sequence of L tokens."""

    def __init__(self, max_tokens: int) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.weight = nn.Parameter(torch.randn(max_tokens, max_tokens) / math.sqrt(max_tokens))
        self.bias = nn.Parameter(torch.zeros(max_tokens))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-2]  # x: (..., L, d)
        w, bias = self.weight, self.bias
        if n != self.max_tokens:
            w = F.interpolate(w[None, None], size=(n, n), mode="bilinear", align_corners=False)[0, 0]
            w = w * (self.max_tokens / n)  # keep the row sums' scale
            bias = F.interpolate(bias[None, None], size=n, mode="linear", align_corners=False)[0, 0]
        return torch.einsum("lk,...kd->...ld", w, x) + bias[:, None]  # (..., L, d)


class DyLinearMLP(nn.Module):
    """Half of the features mixed across tokens by :class:`DyLinear`, then a per-token MLP."""

    def __init__(self, d_model: int, max_tokens: int, dropout: float) -> None:
        super().__init__()
        self.split = d_model // 2
        self.dylinear = DyLinear(max_tokens)
        self.mlp = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, L, d) -> (B, C, L, d)
        mixed = torch.cat([self.dylinear(x[..., : self.split]), x[..., self.split:]], dim=-1)
        return self.mlp(mixed)


class UniTSBlock(nn.Module):
    """Time attention, variable attention and DyLinear MLP, each pre-normalised with a residual."""

    def __init__(self, d_model: int, n_heads: int, max_tokens: int, dropout: float) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.time_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.var_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.mlp = DyLinearMLP(d_model, max_tokens, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n, d = x.shape  # (B, C, L, d)
        h = self.norms[0](x).reshape(b * c, n, d)  # attention along time, per channel
        x = x + self.drop(self.time_attn(h, h, h, need_weights=False)[0].view(b, c, n, d))
        h = self.norms[1](x).transpose(1, 2).reshape(b * n, c, d)  # attention across channels, per token
        x = x + self.drop(self.var_attn(h, h, h, need_weights=False)[0].view(b, n, c, d).transpose(1, 2))
        return x + self.drop(self.mlp(self.norms[2](x)))  # (B, C, L, d)


class UniTSNet(nn.Module):
    """UniTS style classifier network.

    Parameters
    ----------
    n_outputs : int
        Logit columns (1 for binary).
    patch_len : int
        Time steps per patch token.
    use_mask, d_model, n_heads, n_layers, n_prompts, max_tokens, dropout
        See :class:`UniTSConfig`. The network itself accepts any number of channels.
    """

    def __init__(self, n_outputs: int, patch_len: int = 4, use_mask: bool = True, d_model: int = 64,
                 n_heads: int = 4, n_layers: int = 2, n_prompts: int = 2, max_tokens: int = 32,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.patch_len, self.use_mask = patch_len, use_mask
        self.embed = nn.Linear(patch_len * (2 if use_mask else 1), d_model)
        self.prompts = nn.Parameter(torch.randn(n_prompts, d_model) * 0.02)
        self.cls = nn.Parameter(torch.randn(1, d_model) * 0.02)
        self.blocks = nn.ModuleList(UniTSBlock(d_model, n_heads, max_tokens, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_outputs)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["series"]  # (B, C, T)
        b, c, t = x.shape
        p = self.patch_len
        n = math.ceil(t / p)
        parts = [x, batch["mask"]] if self.use_mask else [x]
        patches = torch.cat([F.pad(a, (n * p - t, 0)).view(b, c, n, p) for a in parts], dim=-1)  # (B, C, N, kP)
        tokens = self.embed(patches) + sinusoidal(n, self.prompts.shape[1], x.device)  # (B, C, N, d)
        d = tokens.shape[-1]
        prompts = self.prompts.expand(b, c, -1, -1)  # (B, C, n_prompts, d)
        cls = self.cls.expand(b, c, 1, d)  # (B, C, 1, d)
        h = torch.cat([prompts, tokens, cls], dim=2)  # (B, C, L, d), L = n_prompts + N + 1
        for block in self.blocks:
            h = block(h)
        pooled = self.norm(h[:, :, -1]).mean(dim=1)  # CLS tokens averaged over channels: (B, d)
        return self.head(pooled)  # (B, n_outputs)


def _small_train() -> TrainConfig:
    return TrainConfig(epochs=20, batch_size=256, lr=1e-3, patience=4)


@dataclasses.dataclass(frozen=True)
class UniTSConfig:
    """Settings of :class:`UniTSModel` (``baselines.units`` in ``params.yaml``).

    Parameters
    ----------
    inputs : list of str
        Must be ``["series"]``.
    use_mask : bool
        Embed each patch's activity mask with its values.
    patch_len : int
        Time steps per patch token.
    d_model, n_heads, n_layers : int
        Width, attention heads, blocks.
    n_prompts : int
        Learned prompt tokens per channel.
    max_tokens : int
        Stored size of the DyLinear weight (resized to the actual token count).
    dropout : float
        Dropout on attention and residual branches.
    train : TrainConfig
        Optimisation settings for the shared Trainer.
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["series"])
    use_mask: bool = True
    patch_len: int = 4
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_prompts: int = 2
    max_tokens: int = 32
    dropout: float = 0.1
    train: TrainConfig = dataclasses.field(default_factory=_small_train)

    def __post_init__(self) -> None:
        if list(self.inputs) != ["series"]:
            raise ValueError(f"inputs: UniTS reads the series only; expected ['series'], got {self.inputs!r}")
        for name in ("patch_len", "d_model", "n_heads", "n_layers", "n_prompts", "max_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads or self.d_model < 2:
            raise ValueError(f"d_model ({self.d_model}) must be at least 2 and divisible by n_heads ({self.n_heads})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")


class UniTSModel(TorchClassifier):
    """UniTS style prompt/CLS-token transformer with time and variable attention, trained from scratch.

    No pretrained UniTS weights are used; the network is trained on the training split alone.
    """

    Config = UniTSConfig
    name = "units"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"patch_len": 4, "d_model": 16, "n_heads": 2, "n_layers": 1, "n_prompts": 1, "max_tokens": 8,
                "train": {"epochs": 12, "batch_size": 32, "lr": 3e-3, "patience": 4, "num_threads": 1}}

    def build_module(self, X: dict[str, np.ndarray], n_outputs: int) -> nn.Module:
        """Build the network (it is independent of the number of channels and of the series length)."""
        c = self.cfg
        return UniTSNet(n_outputs, patch_len=c.patch_len, use_mask=c.use_mask, d_model=c.d_model,
                        n_heads=c.n_heads, n_layers=c.n_layers, n_prompts=c.n_prompts,
                        max_tokens=c.max_tokens, dropout=c.dropout)

"""SASRec (Kang & McAuley, 2018): item-ID embeddings, a causal self-attention encoder and cross-entropy
over the whole catalogue at every position, trained by the torch loop of :mod:`hmspar.rec.train`.

torch is imported at module level: the registry imports this module only when SASRec is asked for.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from hmspar.rec.base import Histories, ItemFeatures
from hmspar.rec.train import (
    ItemAge,
    NextItemNet,
    RecTrainConfig,
    TorchSeqRecommender,
    init_embedding_,
    item_age_module,
)


@dataclasses.dataclass(frozen=True)
class SASRecConfig:
    """``rec.recommenders.sasrec``: the encoder's size, ``item_age`` (add the learned score of each candidate's
    age at the last history interaction, :class:`~hmspar.rec.train.ItemAge`, as the multimodal models can) and
    the loop's settings (``train``)."""

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])
    d_model: int = 64
    n_heads: int = 2
    n_layers: int = 2
    dropout: float = 0.2
    item_age: bool = False
    train: RecTrainConfig = RecTrainConfig()

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model must be a multiple of n_heads, got {self.d_model!r}")


class SASRecBlock(nn.Module):
    """Pre-LN causal self-attention block with a GELU feed-forward layer."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.p = n_heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x (B, L, d), allowed (B, 1, L, L) bool (True = may attend) -> (B, L, d)."""
        b, length, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.n_heads, d // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))                # (B, H, L, d/H)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, length, d)))   # (B, L, d)
        return x + self.drop(self.ff(self.norm2(x)))


class SASRecNet(NextItemNet):
    """Item embeddings (scaled by sqrt(d)) plus learned positions counted back from the last item, then
    ``n_layers`` causal blocks and a final layer norm. Both embedding tables start at a truncated normal
    with std 0.02 (:func:`~hmspar.rec.train.init_embedding_`; torch's default N(0, 1) positions drown the
    items early in training); with ``train.request_time`` the request gap is added to the states."""

    def __init__(self, n_items: int, cfg: SASRecConfig, age: ItemAge | None = None) -> None:
        super().__init__(n_items, cfg.d_model, request_time=cfg.train.request_time, age=age)
        d = cfg.d_model
        self.max_len, self.scale = cfg.train.max_len, d ** 0.5
        self.pos = init_embedding_(nn.Embedding(cfg.train.max_len + 1, d))  # position = distance to the last item
        self.blocks = nn.ModuleList(SASRecBlock(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """items (B, L) -> states (B, L, d); state t has attended to the real items up to t."""
        b, length = items.shape
        dev = items.device
        back = torch.arange(length - 1, -1, -1, device=dev).clamp(max=self.max_len)  # (L,)
        x = self.drop(self.item(items) * self.scale + self.pos(back)[None])          # (B, L, d)
        real = items > 0                                                              # (B, L)
        causal = torch.ones(length, length, dtype=torch.bool, device=dev).tril()
        eye = torch.eye(length, dtype=torch.bool, device=dev)
        allowed = causal[None] & real[:, None, :] | eye[None]                         # (B, L, L)
        for blk in self.blocks:
            x = blk(x, allowed[:, None])
        return self.norm(x)


class SASRec(TorchSeqRecommender):
    """SASRec: item-ID embeddings, causal self-attention, full-catalogue cross-entropy at every position."""

    Config = SASRecConfig
    name = "sasrec"

    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        return SASRecNet(items.n_items, self.cfg, item_age_module(self.cfg.item_age, train, items))

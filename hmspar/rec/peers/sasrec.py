"""SASRec (Kang & McAuley, 2018): item-ID embeddings, a causal self-attention encoder and cross-entropy
over the whole catalogue at every position, trained by the shared loop of :mod:`hmspar.rec.train`.
torch is imported when the net is built."""

from __future__ import annotations

import dataclasses
from typing import Any

from hmspar.rec.train import SeqTrainConfig, TorchSequentialRecommender, next_item_loss


def _build_sasrec(n_items: int, cfg: "SASRecConfig") -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = cfg.d_model
            self.n_heads = cfg.n_heads
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)
            self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(2 * d, d))
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
            b, length, d = x.shape
            q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.n_heads, d // self.n_heads).unbind(2)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))          # (B, H, L, d/H)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                               dropout_p=cfg.dropout if self.training else 0.0)
            x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, length, d)))   # (B, L, d)
            return x + self.drop(self.ff(self.norm2(x)))

    class SASRecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = cfg.d_model
            self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
            self.pos = nn.Embedding(cfg.train.max_len + 1, d)           # position = distance to the last item
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.n_layers))
            self.norm = nn.LayerNorm(d)
            self.drop = nn.Dropout(cfg.dropout)
            nn.init.normal_(self.item.weight, std=0.05)
            with torch.no_grad():
                self.item.weight[0].zero_()

        def encode(self, items: torch.Tensor) -> torch.Tensor:
            # items (B, L) -> states (B, L, d); state t has attended to the real items up to t
            b, length = items.shape
            back = torch.arange(length - 1, -1, -1).clamp(max=cfg.train.max_len)
            x = self.drop(self.item(items) * cfg.d_model ** 0.5 + self.pos(back)[None])
            real = items > 0                                            # (B, L)
            causal = torch.ones(length, length, dtype=torch.bool).tril()
            allowed = causal[None] & real[:, None, :] | torch.eye(length, dtype=torch.bool)[None]  # (B, L, L)
            for blk in self.blocks:
                x = blk(x, allowed[:, None])
            return self.norm(x)

        def loss(self, items: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
            return next_item_loss(self.encode(items[:, :-1]), self.item.weight, items)

        def score(self, items: torch.Tensor, times: torch.Tensor, target_times: Any) -> torch.Tensor:
            return self.encode(items)[:, -1] @ self.item.weight.T          # (B, d) -> (B, n_items + 1)

    return SASRecNet()


@dataclasses.dataclass(frozen=True)
class SASRecConfig:
    """``rec.recommenders.sasrec``: the encoder's size and the shared loop's settings (``train``)."""

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])
    d_model: int = 64
    n_heads: int = 2
    n_layers: int = 2
    dropout: float = 0.2
    train: SeqTrainConfig = SeqTrainConfig()

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model must be a multiple of n_heads, got {self.d_model!r}")


class SASRec(TorchSequentialRecommender):
    """SASRec: item-ID embeddings, causal self-attention, full-catalogue cross-entropy at every position."""

    Config = SASRecConfig
    name = "sasrec"
    _build = staticmethod(_build_sasrec)

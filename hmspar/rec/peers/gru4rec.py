"""GRU4Rec (Hidasi et al., 2016): a GRU over the item-ID sequence with cross-entropy over the whole catalogue
at every position, trained by the shared loop of :mod:`hmspar.rec.train`. torch is imported when the net
is built."""

from __future__ import annotations

import dataclasses
from typing import Any

from hmspar.rec.train import SeqTrainConfig, TorchSequentialRecommender, next_item_loss


def _build_gru4rec(n_items: int, cfg: "GRU4RecConfig") -> Any:
    import torch
    from torch import nn

    class GRU4RecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = cfg.d_model
            self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
            self.gru = nn.GRU(d, cfg.hidden, num_layers=cfg.n_layers, batch_first=True)
            self.proj = nn.Linear(cfg.hidden, d)
            self.drop = nn.Dropout(cfg.dropout)
            nn.init.normal_(self.item.weight, std=0.05)
            with torch.no_grad():
                self.item.weight[0].zero_()

        def encode(self, items: torch.Tensor) -> torch.Tensor:
            # items (B, L) -> (B, L, d); left padding runs the GRU over zero vectors first
            out, _ = self.gru(self.drop(self.item(items)))               # (B, L, hidden)
            return self.proj(self.drop(out))

        def loss(self, items: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
            return next_item_loss(self.encode(items[:, :-1]), self.item.weight, items)

        def score(self, items: torch.Tensor, times: torch.Tensor, target_times: Any) -> torch.Tensor:
            return self.encode(items)[:, -1] @ self.item.weight.T          # (B, d) -> (B, n_items + 1)

    return GRU4RecNet()


@dataclasses.dataclass(frozen=True)
class GRU4RecConfig:
    """``rec.recommenders.gru4rec``."""

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])
    d_model: int = 64
    hidden: int = 64
    n_layers: int = 1
    dropout: float = 0.2
    train: SeqTrainConfig = SeqTrainConfig()


class GRU4Rec(TorchSequentialRecommender):
    """GRU4Rec: a GRU over the item-ID sequence, full-catalogue cross-entropy at every position."""

    Config = GRU4RecConfig
    name = "gru4rec"
    _build = staticmethod(_build_gru4rec)

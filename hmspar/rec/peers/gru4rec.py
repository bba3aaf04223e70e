"""GRU4Rec (Hidasi et al., 2016): a GRU over the item-ID sequence with cross-entropy over the whole catalogue
at every position, trained by the torch loop of :mod:`hmspar.rec.train`.

torch is imported at module level: the registry imports this module only when GRU4Rec is asked for.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from hmspar.rec.base import Histories, ItemFeatures
from hmspar.rec.train import ItemAge, NextItemNet, RecTrainConfig, TorchSeqRecommender, item_age_module


@dataclasses.dataclass(frozen=True)
class GRU4RecConfig:
    """``rec.recommenders.gru4rec``: the encoder's size, ``item_age`` (add the learned score of each candidate's
    age at the last history interaction, :class:`~hmspar.rec.train.ItemAge`, as the multimodal models can) and
    the loop's settings (``train``)."""

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])
    d_model: int = 64
    hidden: int = 64
    n_layers: int = 1
    dropout: float = 0.2
    item_age: bool = False
    train: RecTrainConfig = RecTrainConfig()


class GRU4RecNet(NextItemNet):
    """Item embeddings -> a GRU over the real items of each history -> a linear map to the embedding size.
    The item table starts at a truncated normal with std 0.02 (``NextItemNet``); with
    ``train.request_time`` the request gap is added to the states."""

    def __init__(self, n_items: int, cfg: GRU4RecConfig, age: ItemAge | None = None) -> None:
        super().__init__(n_items, cfg.d_model, request_time=cfg.train.request_time, age=age)
        self.gru = nn.GRU(cfg.d_model, cfg.hidden, num_layers=cfg.n_layers, batch_first=True)
        self.proj = nn.Linear(cfg.hidden, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """items (B, L) left-padded -> (B, L, d) states (zero input state on padding).

        The GRU runs over each history's real items only (packed sequences), so a user's states do not
        depend on how much padding its batch has (the loop trims batches to their longest history).
        """
        b, length = items.shape
        n = (items > 0).sum(1)                                            # (B,) history lengths
        ar = torch.arange(length, device=items.device)[None]              # (1, L)
        shift = (length - n)[:, None]                                     # (B, 1) padding per row
        first = items.gather(1, (ar + shift) % length)                    # (B, L) real items first
        packed = nn.utils.rnn.pack_padded_sequence(self.drop(self.item(first)), n.clamp(min=1).cpu(),
                                                   batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=length)  # (B, L, hidden)
        out = out.gather(1, ((ar - shift) % length)[..., None].expand(-1, -1, out.shape[-1]))  # back to left-padded
        return self.proj(self.drop(out))                                  # (B, L, d)


class GRU4Rec(TorchSeqRecommender):
    """GRU4Rec: a GRU over the item-ID sequence, full-catalogue cross-entropy at every position."""

    Config = GRU4RecConfig
    name = "gru4rec"

    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        return GRU4RecNet(items.n_items, self.cfg, item_age_module(self.cfg.item_age, train, items))

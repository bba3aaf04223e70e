"""MostPop: every user gets the catalogue ranked by training popularity (a peer and a leak guard)."""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.rec.base import Histories, ItemFeatures, Recommender


@dataclasses.dataclass(frozen=True)
class MostPopConfig:
    """``rec.recommenders.mostpop``: no settings beyond ``inputs``."""

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])


class MostPop(Recommender):
    """Every user gets the items ranked by their number of training interactions."""

    Config = MostPopConfig
    name = "mostpop"

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "MostPop":
        self.n_items = items.n_items
        counts = np.bincount(train.whole().items, minlength=self.n_items + 1).astype(np.float32)
        counts[0] = 0.0
        self.popularity_ = counts
        return self

    def score(self, histories: Histories) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(histories), self.n_items + 1)).copy()

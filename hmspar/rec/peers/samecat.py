"""SameCategory: a sanity heuristic ranking the last item's category first (a leak guard, not a contender)."""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.rec.base import Histories, ItemFeatures, Recommender


@dataclasses.dataclass(frozen=True)
class SameCategoryConfig:
    """``rec.recommenders.samecat``: uses item ids and categories."""

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id", "category"])


class SameCategory(Recommender):
    """Sanity heuristic: items of the last item's category first, each group by training popularity.

    With MostPop it bounds what shallow signals reach (the leak guard): the simulator must not let the
    last item's category (or popularity) alone give the answer away.
    """

    Config = SameCategoryConfig
    name = "samecat"

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "SameCategory":
        self.n_items = items.n_items
        counts = np.bincount(train.whole().items, minlength=self.n_items + 1).astype(np.float32)
        counts[0] = 0.0
        self.popularity_ = counts / max(float(counts.max()), 1.0)    # in [0, 1]
        self.category_ = np.asarray(items.category, dtype=np.int64)
        return self

    def score(self, histories: Histories) -> np.ndarray:
        last_cat = self.category_[histories.items[:, -1]]             # (B,), 0 for an empty history
        same = (self.category_[None, :] == last_cat[:, None]) & (last_cat[:, None] > 0)
        return (same.astype(np.float32) * 2.0 + self.popularity_[None, :]).astype(np.float32)

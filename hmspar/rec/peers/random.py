"""Random: every user gets an independent random ranking of the catalogue (the chance level; a seed-004 baseline)."""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures, Recommender


@dataclasses.dataclass(frozen=True)
class RandomConfig:
    """``rec.recommenders.random``: no settings beyond ``inputs``."""

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])


class Random(Recommender):
    """Scores drawn uniformly at random, per user: user ``u`` draws from ``numpy.random.default_rng([seed, u, 0])``,
    so a user's ranking depends on the run seed and the user only (the same in every scoring batch); without
    user indices, row ``r`` draws from ``[seed, (-1 - r) & 0x7FFFFFFF, 1]``."""

    Config = RandomConfig
    name = "random"

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "Random":
        self.n_items = items.n_items
        return self

    def score(self, histories: Histories) -> np.ndarray:
        if self.n_items is None:
            raise HmsparError("random: score called before fit")
        B = len(histories)
        users = (np.asarray(histories.users, dtype=np.int64) if histories.users is not None
                 else -1 - np.arange(B, dtype=np.int64))
        out = np.empty((B, self.n_items + 1), dtype=np.float32)
        for r, u in enumerate(users):
            out[r] = np.random.default_rng([self.seed, int(u) & 0x7FFFFFFF, int(u < 0)]).random(self.n_items + 1,
                                                                                             dtype=np.float32)
        out[:, 0] = 0.0
        return out

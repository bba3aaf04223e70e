"""ItemKNN: item-item cosine similarity on the binary user-item training matrix."""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.rec.base import Histories, ItemFeatures, Recommender
from hmspar.rec.data import cooccurrence, history_matrix


@dataclasses.dataclass(frozen=True)
class ItemKNNConfig:
    """``rec.recommenders.itemknn``.

    Attributes
    ----------
    neighbours : int
        Keep the ``neighbours`` most similar items per item (0: all).
    shrink : float
        Cosine shrinkage: ``co / (sqrt(n_i n_j) + shrink)``.
    n_recent : int
        Score from the last ``n_recent`` interactions (0: the whole history).
    decay : float
        Weight ``decay ** age`` of a history item (1: all equal).
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])
    neighbours: int = 100
    shrink: float = 10.0
    n_recent: int = 0
    decay: float = 1.0


class ItemKNN(Recommender):
    """Item-item cosine similarity on the binary user-item training matrix (users as features)."""

    Config = ItemKNNConfig
    name = "itemknn"

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "ItemKNN":
        self.n_items = n = items.n_items
        co = cooccurrence(train, n).astype(np.float32)                # (I+1, I+1)
        norms = np.sqrt(np.diag(co)).astype(np.float32)
        sim = co / (norms[:, None] * norms[None, :] + self.cfg.shrink)
        np.fill_diagonal(sim, 0.0)
        sim[0, :] = sim[:, 0] = 0.0
        k = self.cfg.neighbours
        if 0 < k < n:
            cut = np.partition(sim, -k, axis=1)[:, -k][:, None]       # k-th largest per row
            sim = np.where(sim >= cut, sim, 0.0)
        self.sim_ = sim.astype(np.float32)
        return self

    def score(self, histories: Histories) -> np.ndarray:
        from scipy import sparse

        x = history_matrix(histories, self.n_items, self.cfg.n_recent, self.cfg.decay)
        return np.asarray(sparse.csr_matrix(x) @ self.sim_, dtype=np.float32)  # sparse rows: nnz x I work

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

    def __post_init__(self) -> None:
        if self.neighbours < 0:
            raise ValueError(f"neighbours must be 0 (all) or positive, got {self.neighbours!r}")
        if self.shrink < 0:
            raise ValueError(f"shrink must be 0 or positive, got {self.shrink!r}")


class ItemKNN(Recommender):
    """Item-item cosine similarity on the binary user-item training matrix (users as features)."""

    Config = ItemKNNConfig
    name = "itemknn"

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "ItemKNN":
        self.n_items = n = items.n_items
        co = cooccurrence(train, n).astype(np.float32)                # (I+1, I+1)
        norms = np.sqrt(np.diag(co)).astype(np.float32)
        denom = norms[:, None] * norms[None, :] + self.cfg.shrink
        sim = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)  # shrink 0: unseen items score 0, not NaN
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

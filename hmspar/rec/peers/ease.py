"""EASE (Steck, 2019): a linear item-item autoencoder with a zero diagonal, fitted in closed form.

Implemented here in numpy rather than taken from a library: the closed form is three lines
(``P = (X^T X + l2 I)^-1``, ``B = -P / diag(P)``, ``diag(B) = 0``), while the libraries that ship it
(RecBole, Cornac, ...) bring their own data pipelines, pinned framework versions and evaluation code that
would bypass this track's protocol.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.rec.base import Histories, ItemFeatures, Recommender
from hmspar.rec.data import cooccurrence, history_matrix


@dataclasses.dataclass(frozen=True)
class EASEConfig:
    """``rec.recommenders.ease``: ``l2`` is the ridge penalty of the closed form."""

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])
    l2: float = 500.0

    def __post_init__(self) -> None:
        if self.l2 <= 0:
            raise ValueError(f"l2 must be positive, got {self.l2!r}")


class EASE(Recommender):
    """EASE: a linear item-item autoencoder with a zero diagonal, fitted in closed form."""

    Config = EASEConfig
    name = "ease"

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "EASE":
        self.n_items = n = items.n_items
        g = cooccurrence(train, n)[1:, 1:]                            # (I, I) X^T X
        g[np.diag_indices(n)] += self.cfg.l2
        p = np.linalg.inv(g)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        self.b_ = np.zeros((n + 1, n + 1), dtype=np.float32)
        self.b_[1:, 1:] = b
        return self

    def score(self, histories: Histories) -> np.ndarray:
        from scipy import sparse

        x = (history_matrix(histories, self.n_items) > 0).astype(np.float32)
        return np.asarray(sparse.csr_matrix(x) @ self.b_, dtype=np.float32)  # sparse rows: nnz x I work

"""UserKNN: user-user cosine similarity on the binary user-item training matrix (a seed-004 baseline)."""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures, Recommender, user_rows


@dataclasses.dataclass(frozen=True)
class UserKNNConfig:
    """``rec.recommenders.userknn``.

    Attributes
    ----------
    neighbours : int
        Most similar training users that vote for a query user's items (0: all).
    shrink : float
        Cosine shrinkage: ``common / (sqrt(n_u n_v) + shrink)``.
    batch_users : int
        Query users per similarity block (memory only).
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id"])
    neighbours: int = 100
    shrink: float = 10.0
    batch_users: int = 1024

    def __post_init__(self) -> None:
        if self.neighbours < 0:
            raise ValueError(f"neighbours must be 0 (all) or positive, got {self.neighbours!r}")
        if self.shrink < 0:
            raise ValueError(f"shrink must be 0 or positive, got {self.shrink!r}")
        if self.batch_users < 1:
            raise ValueError(f"batch_users must be positive, got {self.batch_users!r}")


def _binary(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """CSR float32 0/1 matrix with a one at each ``(row, col)``, column 0 (padding) left out."""
    from scipy import sparse

    keep = cols > 0
    x = sparse.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])), shape=shape)
    x.data[:] = 1.0  # duplicates were summed: binarise
    return x


class UserKNN(Recommender):
    """Score of item ``i`` for a query user ``u``: the sum of ``sim(u, v)`` over the ``neighbours`` most similar
    training users ``v`` who have ``i`` in their training history; ``sim`` is the shrunk cosine of the binary
    item sets. A query user's own training row (matched by ``users``) is never its own neighbour."""

    Config = UserKNNConfig
    name = "userknn"

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "UserKNN":
        self.n_items = n = items.n_items
        whole = train.whole()
        self.matrix_ = _binary(np.repeat(np.arange(len(whole)), whole.lengths), np.asarray(whole.items),
                               (len(whole), n + 1))                                  # (U, I+1) binary
        self.norms_ = np.sqrt(np.asarray(self.matrix_.sum(1)).ravel()).astype(np.float32)
        self.users_ = None if train.users is None else np.asarray(train.users, dtype=np.int64)
        return self

    def score(self, histories: Histories) -> np.ndarray:
        if getattr(self, "matrix_", None) is None:
            raise HmsparError("userknn: score called before fit")
        n = self.n_items
        items = np.asarray(histories.items, dtype=np.int64)
        B = items.shape[0]
        out = np.empty((B, n + 1), dtype=np.float32)
        k = self.cfg.neighbours
        U = self.matrix_.shape[0]
        own = None
        if histories.users is not None and self.users_ is not None:
            own = user_rows(self.users_, histories.users)                  # the query's own training row, or -1
        for a in range(0, B, self.cfg.batch_users):
            it = items[a:a + self.cfg.batch_users]
            b = it.shape[0]
            q = _binary(np.repeat(np.arange(b), it.shape[1]), it.ravel(), (b, n + 1))
            qn = np.sqrt(np.asarray(q.sum(1)).ravel()).astype(np.float32)
            common = np.asarray((q @ self.matrix_.T).todense(), dtype=np.float32)      # (b, U)
            sim = common / (qn[:, None] * self.norms_[None, :] + self.cfg.shrink + 1e-12)
            if own is not None:
                mine = own[a:a + b]
                hit = mine >= 0
                sim[np.flatnonzero(hit), mine[hit]] = 0.0
            if 0 < k < U:
                cut = np.partition(sim, -k, axis=1)[:, -k][:, None]
                sim = np.where(sim >= cut, sim, 0.0)
            out[a:a + b] = np.asarray((self.matrix_.T @ sim.T).T, dtype=np.float32)  # (b, I+1) votes
        out[:, 0] = 0.0
        return out

"""Ranker: a learned feature ranker, logistic regression over the shared features of
:mod:`hmspar.rec.peers.features` (positives: observed next items; negatives: sampled catalogue items).

Where its training targets come from (``fit_on``):

``train_last`` (default)  each training history's own last interaction is the target and the features are
    computed from the history before it; the item statistics of these examples (popularity, recent
    popularity, re-buy shares, transitions) are learned from the training data *without* the held-out
    interactions (:func:`~hmspar.rec.peers.features.holdout_last`), so a target never counts in its own
    features. The ranking itself then uses statistics of the whole training data. Neither validation nor
    test targets are read, so its validation score is as honest as any other model's.
``validation``  the validation targets, features from the training histories and statistics. Its
    validation score is then *optimistic* (fitted on the very targets it is scored on), which would bias
    the choice of the best reference model (``rec.evaluate.reference_models``) toward it; test targets
    are still never read.

Negatives are ``n_negatives`` items per example drawn uniformly from the catalogue, never the target and, when
the protocol masks seen items, never a seen item (examples whose target is masked are dropped). Uniform
negatives keep the fitted weights those of the full ranking; popularity-sampled negatives, tried on a small
simulated shop, taught the model to *penalise* popularity (validation NDCG@10 0.111 against 0.198) for want of a
sampling correction, and are not offered. The fit is a Newton (IRLS) solve of the L2-penalised log-likelihood on
standardised features, deterministic given the seed (which draws the negatives and, beyond ``max_examples``,
the examples).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures, Recommender
from hmspar.rec.peers.features import FEATURES, FeatureConfig, ItemStats, compute, holdout_last, linear_scores


@dataclasses.dataclass(frozen=True)
class RankerConfig:
    """``rec.recommenders.ranker`` (see the module docstring).

    Attributes
    ----------
    inputs : list of str
        ``id`` and ``category`` (without categories the category features are 0).
    fit_on : {"train_last", "validation"}
        Where the training targets come from.
    use_features : list of str
        Features used (a subset of :data:`hmspar.rec.peers.features.FEATURES`).
    n_negatives : int
        Negatives per example.
    max_examples : int
        At most this many examples (a seeded subset beyond it).
    l2 : float
        Ridge penalty on the standardised weights (not the intercept).
    mask_seen : "auto" or bool
        Whether training examples follow seen-item masking; ``auto``: as the protocol does (the flag of
        the validation histories given to ``fit``; off without them).
    features : FeatureConfig
        How the features are computed (decay, smoothing, windows).
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id", "category"])
    fit_on: str = "train_last"
    use_features: list[str] = dataclasses.field(default_factory=lambda: list(FEATURES))
    n_negatives: int = 50
    max_examples: int = 50000
    l2: float = 1.0
    mask_seen: str | bool = "auto"
    features: FeatureConfig = FeatureConfig()

    def __post_init__(self) -> None:
        if self.fit_on not in ("train_last", "validation"):
            raise ValueError(f"fit_on must be train_last or validation, got {self.fit_on!r}")
        uf = self.use_features
        if not uf or any(f not in FEATURES for f in uf) or len(set(uf)) != len(uf):
            raise ValueError(f"use_features must be distinct names among {', '.join(FEATURES)}, got {uf!r}")
        if self.n_negatives < 1:
            raise ValueError(f"n_negatives must be positive, got {self.n_negatives!r}")
        if self.max_examples < 1:
            raise ValueError(f"max_examples must be positive, got {self.max_examples!r}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be non-negative, got {self.l2!r}")
        if self.mask_seen not in ("auto", True, False):
            raise ValueError(f"mask_seen must be auto, true or false, got {self.mask_seen!r}")


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, max_iter: int = 100, tol: float = 1e-9
                 ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, float]:
    """L2-penalised logistic regression by Newton steps on standardised columns.

    Parameters
    ----------
    x : np.ndarray
        (N, F) features.
    y : np.ndarray
        (N,) 0/1 labels.
    l2 : float
        Penalty ``l2 / 2 * |w|^2`` on the standardised weights (not the intercept).

    Returns
    -------
    tuple
        ``(w, b, mean, scale, loss)``: weights and intercept on the standardised columns ``(x - mean) /
        scale`` (a constant column gets scale 1 and, with ``l2 > 0``, weight 0) and the mean log loss.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, f = x.shape
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = np.hstack([(x - mean) / scale, np.ones((n, 1))])
    theta = np.zeros(f + 1)
    pen = np.full(f + 1, float(l2))
    pen[-1] = 0.0
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(z @ theta)))
        grad = z.T @ (p - y) + pen * theta
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(pen + 1e-9)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < tol:
            break
    m = z @ theta
    loss = float(np.mean(np.logaddexp(0.0, m) - y * m))
    return theta[:-1], float(theta[-1]), mean, scale, loss


class Ranker(Recommender):
    """Learned feature ranker: logistic regression over repeat, session, popularity and transition features."""

    Config = RankerConfig
    name = "ranker"

    def _examples(self, train: Histories, items: ItemFeatures, val: Histories | None
                  ) -> tuple[Histories, ItemStats]:
        """The training examples (histories with targets) and the item statistics their features use."""
        category = items.category if "category" in self.uses else None
        if self.cfg.fit_on == "validation":
            if val is None or val.targets is None:
                raise HmsparError("ranker: fit_on is 'validation' but fit received no validation targets")
            return val, self.stats_
        examples, rest = holdout_last(train)
        return examples, ItemStats.fit(rest, items.n_items, category, self.cfg.features)

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "Ranker":
        self.n_items = n = items.n_items
        category = items.category if "category" in self.uses else None
        self.stats_ = ItemStats.fit(train.whole(), n, category, self.cfg.features)
        examples, stats = self._examples(train, items, val)
        mask = self.cfg.mask_seen if self.cfg.mask_seen != "auto" else bool(val is not None and val.exclude_seen)
        rng = np.random.default_rng([self.seed, 7])
        if mask:  # the target of a masked protocol is never a seen item: drop examples that could not occur
            examples = examples.subset(np.flatnonzero(~(examples.items == examples.targets[:, None]).any(axis=1)))
        if len(examples) > self.cfg.max_examples:
            examples = examples.subset(np.sort(rng.choice(len(examples), self.cfg.max_examples, replace=False)))
        if len(examples) == 0:
            raise HmsparError("ranker: no training example (every history is too short, or every target masked)")
        m = self.cfg.n_negatives
        neg = rng.integers(1, n + 1, size=(len(examples), m))
        cand = np.concatenate([examples.targets[:, None], neg], axis=1)   # (E, 1 + m), column 0 the positive
        valid = np.ones(cand.shape, dtype=bool)
        valid[:, 1:] = neg != examples.targets[:, None]
        names = tuple(self.cfg.use_features)
        x = np.zeros(cand.shape + (len(names),), dtype=np.float32)
        rows = max(1, (1 << 22) // (n + 1))
        for s in range(0, len(examples), rows):
            idx = np.arange(s, min(s + rows, len(examples)))
            feats = compute(examples.subset(idx), stats, tuple(dict.fromkeys(names + ("seen",))))
            for j, name in enumerate(names):
                x[idx, :, j] = np.take_along_axis(np.asarray(feats[name]), cand[idx], axis=1)
            if mask:
                valid[idx, 1:] &= np.take_along_axis(feats["seen"], neg[idx], axis=1) == 0
        y = np.zeros(cand.shape)
        y[:, 0] = 1.0
        w, b, mean, scale, loss = fit_logistic(x[valid], y[valid], self.cfg.l2)
        self.weights_ = {name: float(w[j] / scale[j]) for j, name in enumerate(names)}
        self.report_ = {"fit_on": self.cfg.fit_on, "n_examples": int(len(examples)),
                        "n_rows": int(valid.sum()), "log_loss": loss,
                        "standardised_weights": {name: float(w[j]) for j, name in enumerate(names)},
                        "weights": self.weights_}
        return self

    def score(self, histories: Histories) -> np.ndarray:
        return linear_scores(histories, self.stats_, self.weights_)

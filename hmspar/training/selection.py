"""The small-data selection policy, in one place: how every model's training budget (epochs, boosting
rounds) and the binary decision threshold are chosen on a run.

Two regimes, decided per run from the split sizes (``params.yaml: selection``):

``validation`` (the default for datasets of ordinary size)
    The model is fitted on the training split with the validation split for early stopping; the binary
    threshold maximises F1 on the validation predictions.
``kfold`` (fewer than ``small_train_rows`` training rows, or a split without validation rows)
    Stratified ``folds``-fold cross-validation *inside the training rows*: each fold model early-stops on
    its held-out fold, its chosen budget (``Model.budget_``) is recorded and its out-of-fold probabilities
    kept. The model is then refitted on all training rows with the median fold budget
    (``Model.fixed_budget``) and no validation data, and the binary threshold maximises F1 on the
    out-of-fold probabilities. With ``refit: ensemble`` the fold models are kept instead and averaged
    (:class:`FoldEnsemble`): no sixth fit, and every prediction is the mean of five models. A model without a
    budget to choose (random forest, MiniRocket's logistic head, ...) skips the folds on multi-class tasks,
    where there is no threshold either, and is fitted once on all training rows whatever ``refit`` says. Torch models train
    with a batch small enough for ``min_steps_per_epoch`` optimiser steps per epoch (at batch 256, 42
    training rows gave one step per epoch and a model that never left the class prior).

Validation or test rows are never used in the ``kfold`` regime (a validation split, if there is one, is
ignored there apart from being predicted for the record), and test rows are never used at all: selection
reads training rows only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hmspar.errors import HmsparError

REGIMES = ("validation", "kfold")


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
    """``params.yaml: selection`` — when and how the k-fold regime is used.

    Attributes
    ----------
    small_train_rows : int
        Runs with fewer training rows than this use k-fold selection (0 = only splits without validation).
    folds : int
        Folds of the stratified k-fold (reduced to the smallest class count when a class is rarer).
    min_steps_per_epoch : int
        In the k-fold regime, torch models use ``batch_size = min(batch_size, ceil(n_train / this))``.
    refit : {"refit", "ensemble"}
        In the k-fold regime: refit on every training row for the folds' median budget (``refit``), or
        average the fold models' probabilities (``ensemble``).
    max_steps_per_row : float
        In the k-fold regime, torch models with a step budget (``train.max_steps``) train for at most
        ``max(min_steps, ceil(max_steps_per_row * n_train))`` steps: the budget shrinks with the data (a
        50-row set gets ``min_steps``, not 2,000 steps per fold). 0 leaves ``max_steps`` as it is.
    """

    small_train_rows: int = 500
    folds: int = 5
    min_steps_per_epoch: int = 8
    refit: Literal["refit", "ensemble"] = "ensemble"
    max_steps_per_row: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.small_train_rows, bool) or self.small_train_rows < 0:
            raise ValueError(f"small_train_rows: must be a non-negative integer, got {self.small_train_rows!r}")
        if isinstance(self.folds, bool) or self.folds < 2:
            raise ValueError(f"folds: must be an integer of at least 2, got {self.folds!r}")
        if isinstance(self.min_steps_per_epoch, bool) or self.min_steps_per_epoch < 1:
            raise ValueError(f"min_steps_per_epoch: must be a positive integer, got {self.min_steps_per_epoch!r}")
        if isinstance(self.max_steps_per_row, bool) or not self.max_steps_per_row >= 0:
            raise ValueError(f"max_steps_per_row: must be a non-negative number, got {self.max_steps_per_row!r}")
        if self.refit not in ("refit", "ensemble"):
            raise ValueError(f"refit: must be 'refit' or 'ensemble', got {self.refit!r}")


@dataclasses.dataclass
class Selection:
    """Outcome of :func:`fit_with_selection`.

    Attributes
    ----------
    model : Model
        The fitted model (for ``kfold``: refitted on every training row).
    regime : {"validation", "kfold"}
    threshold : float or None
        Binary decision threshold (None for multi-class tasks).
    threshold_source : str or None
        ``"validation"`` or ``"out-of-fold"`` (None for multi-class tasks).
    folds : int or None
        Folds used (``kfold`` only; None when the folds were skipped).
    fold_budgets : list
        Budget chosen by each fold model (``kfold`` only).
    budget : int or None
        Budget of the refit (``kfold`` only).
    oof : np.ndarray or None
        (n_train, K) out-of-fold probabilities (``kfold`` with folds only).
    """

    model: Any
    regime: str
    threshold: float | None
    threshold_source: str | None
    folds: int | None = None
    fold_budgets: list = dataclasses.field(default_factory=list)
    budget: int | None = None
    oof: np.ndarray | None = None
    refit: str | None = None

    def record(self) -> dict[str, Any]:
        """The JSON-able summary written into ``metrics.json: selection`` (``refit`` in the k-fold regime only:
        ``refit`` or ``ensemble``)."""
        out = {"regime": self.regime, "folds": self.folds, "fold_budgets": list(self.fold_budgets),
               "budget": self.budget, "threshold_source": self.threshold_source}
        if self.refit is not None:
            out["refit"] = self.refit
        return out


def regime(cfg: SelectionConfig, n_train: int, n_val: int) -> str:
    """``"kfold"`` for a split without validation rows or fewer than ``small_train_rows`` training rows."""
    return "kfold" if n_val == 0 or n_train < cfg.small_train_rows else "validation"


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold indices: each class's rows, shuffled with ``np.random.default_rng([seed, 2203])``,
    are dealt round-robin into the folds.

    Parameters
    ----------
    y : np.ndarray
        (n,) labels.
    folds : int
        Requested folds; reduced to the smallest class count.
    seed : int
        Run seed.

    Returns
    -------
    list of (train_idx, held_out_idx)
        Sorted index arrays; every class appears in every training part.

    Raises
    ------
    HmsparError
        If some class has fewer than two rows.
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        raise HmsparError(f"k-fold selection: class {classes[np.argmin(counts)].item()!r} has {int(counts.min())} training "
                          "row(s); every class needs at least two")
    k = int(min(folds, counts.min()))
    rng = np.random.default_rng([int(seed), 2203])
    fold_of = np.empty(y.size, dtype=np.int64)
    for c in classes:
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        fold_of[idx] = (np.arange(idx.size) + int(rng.integers(k))) % k
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def adapt_to_rows(model: Any, n_train: int, cfg: SelectionConfig) -> Any:
    """For the k-fold regime: a copy of a torch model whose training batch gives at least
    ``cfg.min_steps_per_epoch`` optimiser steps per epoch on ``n_train`` rows and whose step budget is at
    most ``cfg.max_steps_per_row`` steps per row (never below ``min_steps``); other models unchanged."""
    train = getattr(model.cfg, "train", None)  # a TrainConfig; duck-typed so tree stages need no Trainer code
    if not (dataclasses.is_dataclass(train) and isinstance(getattr(train, "batch_size", None), int)):
        return model
    batch = max(2, min(train.batch_size, math.ceil(n_train / cfg.min_steps_per_epoch)))
    changes = {"batch_size": batch} if batch != train.batch_size else {}
    max_steps = getattr(train, "max_steps", 0)
    if cfg.max_steps_per_row and max_steps:
        steps = min(max_steps, max(getattr(train, "min_steps", 0), math.ceil(cfg.max_steps_per_row * n_train)))
        if steps != max_steps:
            changes["max_steps"] = steps
    if not changes:
        return model
    new = dataclasses.replace(model.cfg, train=dataclasses.replace(train, **changes))
    return type(model)(new, seed=model.seed)


def _binary_threshold(y01: np.ndarray, p1: np.ndarray) -> float:
    from hmspar.metrics import choose_threshold

    return choose_threshold(y01, p1)


def fit_with_selection(make: Callable[[], Any], train: Any, val: Any, cfg: SelectionConfig, seed: int,
                       on_final: Callable[[Any], None] | None = None) -> Selection:
    """Fit a model on a run under the regime :func:`regime` picks, and choose its binary threshold.

    Parameters
    ----------
    make : callable
        ``make() -> Model``: a fresh, unfitted model (same config and seed every call).
    train, val : SplitData
        The run's training and validation splits (``val`` may have no rows).
    cfg : SelectionConfig
        The policy's settings.
    seed : int
        The run seed (seeds the folds).
    on_final : callable, optional
        Called with the model that is fitted last, before its fit (the refit on all training rows, or
        with ``refit: ensemble`` the last fold model), e.g. to attach progress output and a DVCLive
        callback to it only.

    Returns
    -------
    Selection
    """
    n_val = len(val)
    mode = regime(cfg, len(train), n_val)
    if mode == "validation":
        model = make()
        if on_final is not None:
            on_final(model)
        model.fit(train.X, train.y, val.X, val.y)
        threshold = None
        classes = np.asarray(model.classes_)
        if classes.size == 2:
            threshold = _binary_threshold((val.y == classes[1]).astype(np.int64),
                                          _positive(model.predict_proba(val.X)))
        return Selection(model, "validation", threshold, "validation" if threshold is not None else None)

    binary = np.unique(train.y).size == 2
    folds = stratified_folds(train.y, cfg.folds, seed)
    budgets: list[int | None] = []
    members: list[Any] = []
    oof = None
    classes = np.unique(train.y)
    for i, (tr, ho) in enumerate(folds):
        fold_model = adapt_to_rows(make(), len(train), cfg)
        if cfg.refit == "ensemble" and i == len(folds) - 1 and on_final is not None:
            on_final(fold_model)  # no refit to come: progress and curves follow the last fold model
        part, held = train.subset(tr), train.subset(ho)
        fold_model.fit(part.X, part.y, held.X, held.y)
        budgets.append(fold_model.budget_)
        if i == 0 and fold_model.budget_ is None and not binary:
            budgets, folds = [], []  # nothing to select: no budget, no threshold
            break
        members.append(fold_model)
        proba = np.asarray(fold_model.predict_proba(held.X), dtype=np.float64)
        if oof is None:
            oof = np.zeros((len(train), proba.shape[1]))
        if not np.array_equal(np.asarray(fold_model.classes_), classes):
            raise HmsparError("k-fold selection: a fold model saw different classes than the training split")
        oof[ho] = proba
    threshold = source = None
    if binary:
        threshold = _binary_threshold((train.y == classes[1]).astype(np.int64), oof[:, 1])
        source = "out-of-fold"
    if cfg.refit == "ensemble" and members:
        return Selection(FoldEnsemble(members), "kfold", threshold, source, folds=len(folds), fold_budgets=budgets,
                         budget=None, oof=oof, refit="ensemble")
    chosen = [b for b in budgets if b is not None]
    budget = int(round(float(np.median(chosen)))) if chosen and len(chosen) == len(budgets) else None
    model = adapt_to_rows(make(), len(train), cfg)
    model.fixed_budget = budget
    if on_final is not None:
        on_final(model)
    model.fit(train.X, train.y)
    return Selection(model, "kfold", threshold, source, folds=len(folds) or None, fold_budgets=budgets,
                     budget=budget, oof=oof, refit="refit")


class FoldEnsemble:
    """The k-fold regime's ``refit: ensemble``: the fold models, each fitted on its folds' training rows and
    early-stopped on its held-out fold, predicting the mean of their probabilities.

    It answers what the runner asks of a fitted model: ``classes_``, ``uses``, ``predict_proba`` and
    ``save`` (one pickle holding every member).

    Parameters
    ----------
    members : list of Model
        Fitted fold models with identical ``classes_``.
    """

    def __init__(self, members: list[Any]) -> None:
        if not members:
            raise HmsparError("FoldEnsemble: no fold models")
        classes = np.asarray(members[0].classes_)
        for m in members[1:]:
            if not np.array_equal(np.asarray(m.classes_), classes):
                raise HmsparError("FoldEnsemble: the fold models saw different classes")
        self.members = list(members)
        self.classes_ = classes

    @property
    def uses(self) -> tuple[str, ...]:
        """The members' input modalities."""
        return tuple(self.members[0].uses)

    def predict_proba(self, X: dict[str, np.ndarray]) -> np.ndarray:
        """(n, K) mean of the members' probabilities, columns ordered as ``classes_``."""
        total = None
        for m in self.members:
            p = np.asarray(m.predict_proba(X), dtype=np.float64)
            total = p if total is None else total + p
        return total / len(self.members)

    def save(self, path: str | Path) -> None:
        """Pickle the ensemble to ``path`` atomically (:meth:`hmspar.models.base.Model.save`'s code)."""
        from hmspar.models.base import Model

        Model.save(self, path)  # type: ignore[arg-type]  # pickles whatever it is given


def _positive(proba: np.ndarray) -> np.ndarray:
    return np.asarray(proba, dtype=np.float64)[:, 1]

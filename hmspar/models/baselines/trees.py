"""Gradient-boosted trees (XGBoost, LightGBM, CatBoost) and a random forest on the flattened table.

Every tree model reads the same table, :func:`hmspar.models.tabular.flatten_inputs` of its ``inputs``
(default ``[series, static]``: standardised series, activity mask, static attributes; add ``text`` to
append the sentence embedding as extra columns), and handles class imbalance the same way: with
``class_weight: true`` (the default) each training row is weighted ``n / (K * n_class)`` from the
*training* labels ("balanced"). Validation data, when given, is used only for early stopping (ROC-AUC
for binary tasks, multi-class log loss otherwise) of the boosted models; the forest ignores it. The test
split is never seen.

Small data: leaf-size floors scale with the number of training rows (LightGBM's ``min_child_samples``
and XGBoost's ``min_child_weight`` are capped at :func:`scaled_leaf_size`, so 40 rows can still be split;
with the defaults, 20 rows per leaf on 42 training rows gave a constant prediction), and early stopping
watches the validation *log loss* instead of ROC-AUC when the validation split is small
(< :data:`SMALL_VALIDATION` rows), since ROC-AUC on a few dozen rows saturates or ties after one round and
stops the booster while it still predicts nearly the prior. A boosted model refitted after a k-fold
selection (:attr:`~hmspar.models.base.Model.fixed_budget`) trains exactly that many rounds. CatBoost, whose
cost per round does not shrink with the rows, grows fewer, shallower trees at a higher rate on small data
(:meth:`CatBoostConfig.budget_for`), so the ``folds + 1`` fits of the k-fold regime stay cheap.

Determinism: every model is seeded from the run seed (``random_state``/``random_seed``). Results are
reproducible for a fixed ``n_jobs``: XGBoost's CPU ``hist`` method and CatBoost's CPU training are
deterministic given seed and thread count, LightGBM is run with ``deterministic=True`` and
``force_row_wise=True`` (its documented recipe for run-to-run stability); changing ``n_jobs`` may change
LightGBM's and XGBoost's floating-point summation order and so the last digits of predictions.
``n_jobs: auto`` (the default) follows :mod:`hmspar.threads` (CPUs available / jobs side by side); set an
integer for the same bytes on machines with different CPU counts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from hmspar import threads
from hmspar.errors import HmsparError
from hmspar.models.base import Model
from hmspar.models.tabular import check_inputs, flatten_inputs


#: Validation splits smaller than this stop boosting on log loss instead of ROC-AUC.
SMALL_VALIDATION = 200


def scaled_leaf_size(configured: float, n_rows: int) -> float:
    """The leaf-size floor used on ``n_rows`` training rows: ``min(configured, max(2, n_rows // 20))``
    (unchanged from 400 rows up for the default of 20)."""
    return min(configured, max(2, n_rows // 20))


def _stop_on_loss(val: tuple[np.ndarray, np.ndarray] | None) -> bool:
    return val is not None and val[1].size < SMALL_VALIDATION


def _default_inputs() -> list[str]:
    return ["series", "static"]


def balanced_sample_weight(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-row weights ``n / (K * count[y])`` from encoded training labels ``codes`` (0..K-1).

    Returns
    -------
    np.ndarray
        (n,) float64 weights averaging to 1.
    """
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    return (codes.size / (n_classes * counts))[codes]


@dataclasses.dataclass(frozen=True)
class _TreeConfig:
    """Fields shared by every tree model."""

    inputs: list[str] = dataclasses.field(default_factory=_default_inputs)
    include_mask: bool = True
    class_weight: bool = True
    n_jobs: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        check_inputs(self.inputs)
        threads.check(self.n_jobs, "n_jobs")

    def jobs(self) -> int:
        """``n_jobs`` as a thread count (``auto``: the policy of :mod:`hmspar.threads`)."""
        return threads.resolve(self.n_jobs, "n_jobs")


class _TreeModel(Model):
    """Shared fit/predict plumbing: flatten, encode labels, weight, delegate to :meth:`_fit_estimator`."""

    def _table(self, X: dict[str, np.ndarray]) -> np.ndarray:
        return flatten_inputs(self.select_inputs(X), self.cfg.inputs, self.cfg.include_mask)

    def fit(self, X, y, X_val=None, y_val=None):
        """Fit on the flattened training table; validation data only for early stopping.

        Parameters
        ----------
        X : dict of str to np.ndarray
            Training modalities.
        y : np.ndarray
            (n,) labels.
        X_val, y_val : optional
            Validation modalities and labels (both or neither).
        """
        if (X_val is None) != (y_val is None):
            raise HmsparError(f"{type(self).__name__}: give both X_val and y_val, or neither")
        codes = self._fit_classes(y)
        table = self._table(X)
        if table.shape[0] != codes.size:
            raise HmsparError(f"{type(self).__name__}: X has {table.shape[0]} rows but y has {codes.size}")
        self.n_features_in_ = int(table.shape[1])
        k = int(self.classes_.size)
        weight = balanced_sample_weight(codes, k) if self.cfg.class_weight else None
        val = None
        if X_val is not None:
            val = (self._table(X_val), self._encode_labels(y_val))
        self.early_stopped_ = False
        self.estimator_ = self._fit_estimator(table, codes, weight, val, k)
        return self

    @property
    def budget_(self) -> int | None:
        """Boosting rounds kept by early stopping in the last fit (None without early stopping)."""
        return int(self.n_estimators_) if getattr(self, "early_stopped_", False) else None

    def _rounds(self, configured: int) -> int:
        """Boosting rounds to grow: :attr:`fixed_budget` when set (a refit), else the configured number."""
        return int(self.fixed_budget) if self.fixed_budget is not None else int(configured)

    def predict_proba(self, X):
        """(n, K) class probabilities, columns ordered as ``classes_``."""
        self._check_fitted()
        table = self._table(X)
        if table.shape[1] != self.n_features_in_:
            raise HmsparError(f"{type(self).__name__}: X gives {table.shape[1]} features, "
                              f"the model was fitted on {self.n_features_in_}")
        proba = np.asarray(self.estimator_.predict_proba(table), dtype=np.float64)
        proba = np.clip(proba, 0.0, 1.0)
        return proba / proba.sum(axis=1, keepdims=True)

    def _fit_estimator(self, table: np.ndarray, codes: np.ndarray, weight: np.ndarray | None,
                       val: tuple[np.ndarray, np.ndarray] | None, n_classes: int) -> Any:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- XGBoost
@dataclasses.dataclass(frozen=True)
class XGBoostConfig(_TreeConfig):
    """``baselines.xgboost``: :class:`xgboost.XGBClassifier` settings (``hist`` trees)."""

    n_estimators: int = 500
    learning_rate: float = 0.05
    max_depth: int = 6
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 50


class XGBoostModel(_TreeModel):
    """XGBoost on the flattened table, early-stopped on validation ROC-AUC."""

    Config = XGBoostConfig
    name = "xgboost"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"n_estimators": 40, "learning_rate": 0.2, "max_depth": 3, "early_stopping_rounds": 10, "n_jobs": 1}

    def _fit_estimator(self, table, codes, weight, val, n_classes):
        import xgboost as xgb

        c = self.cfg
        early = c.early_stopping_rounds if (val is not None and c.early_stopping_rounds > 0) else None
        metric = "mlogloss" if n_classes > 2 else ("logloss" if _stop_on_loss(val) else "auc")
        est = xgb.XGBClassifier(
            n_estimators=self._rounds(c.n_estimators), learning_rate=c.learning_rate, max_depth=c.max_depth,
            min_child_weight=scaled_leaf_size(c.min_child_weight, codes.size), subsample=c.subsample,
            colsample_bytree=c.colsample_bytree, reg_lambda=c.reg_lambda, tree_method="hist", n_jobs=c.jobs(),
            random_state=self.seed, eval_metric=metric, early_stopping_rounds=early,
        )
        est.fit(table, codes, sample_weight=weight,
                eval_set=[val] if val is not None else None, verbose=False)
        # predict_proba uses the best iteration automatically after early stopping.
        self.n_estimators_ = int(est.best_iteration) + 1 if early is not None else self._rounds(c.n_estimators)
        self.early_stopped_ = early is not None
        return est


# -------------------------------------------------------------------------------------------- LightGBM
@dataclasses.dataclass(frozen=True)
class LightGBMConfig(_TreeConfig):
    """``baselines.lightgbm``: :class:`lightgbm.LGBMClassifier` settings (``max_depth: -1`` = no limit)."""

    n_estimators: int = 500
    learning_rate: float = 0.05
    num_leaves: int = 31
    max_depth: int = -1
    min_child_samples: int = 20
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 50


class LightGBMModel(_TreeModel):
    """LightGBM on the flattened table, deterministic mode, early-stopped on validation ROC-AUC."""

    Config = LightGBMConfig
    name = "lightgbm"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"n_estimators": 40, "learning_rate": 0.2, "num_leaves": 7, "min_child_samples": 5,
                "early_stopping_rounds": 10, "n_jobs": 1}

    def _fit_estimator(self, table, codes, weight, val, n_classes):
        import lightgbm as lgb

        c = self.cfg
        metric = "multi_logloss" if n_classes > 2 else ("binary_logloss" if _stop_on_loss(val) else "auc")
        est = lgb.LGBMClassifier(
            n_estimators=self._rounds(c.n_estimators), learning_rate=c.learning_rate, num_leaves=c.num_leaves,
            max_depth=c.max_depth, min_child_samples=int(scaled_leaf_size(c.min_child_samples, codes.size)),
            subsample=c.subsample, subsample_freq=1 if c.subsample < 1.0 else 0,
            colsample_bytree=c.colsample_bytree, reg_lambda=c.reg_lambda, random_state=self.seed,
            n_jobs=c.jobs(), deterministic=True, force_row_wise=True, verbose=-1, metric=metric,
        )
        callbacks = []
        if val is not None and c.early_stopping_rounds > 0:
            callbacks.append(lgb.early_stopping(c.early_stopping_rounds, first_metric_only=True, verbose=False))
        if val is not None:
            est.fit(table, codes, sample_weight=weight, eval_X=(val[0],), eval_y=(val[1],), callbacks=callbacks)
        else:
            est.fit(table, codes, sample_weight=weight)
        # predict_proba uses best_iteration_ automatically after early stopping.
        self.early_stopped_ = bool(callbacks and est.best_iteration_)
        self.n_estimators_ = int(est.best_iteration_) if self.early_stopped_ else self._rounds(c.n_estimators)
        return est


# -------------------------------------------------------------------------------------------- CatBoost
@dataclasses.dataclass(frozen=True)
class CatBoostConfig(_TreeConfig):
    """``baselines.catboost``: :class:`catboost.CatBoostClassifier` settings (Bernoulli row subsampling,
    ``rsm`` = fraction of features per split).

    Small data (:meth:`budget_for`): on fewer than ``small_rows`` training rows (0: never) at most
    ``small_n_estimators`` rounds of depth at most ``small_depth``, the learning rate scaled up to keep
    rounds x rate. Early stopping on the validation part (or the held-out fold) still applies within that.
    """

    n_estimators: int = 1000
    learning_rate: float = 0.05
    depth: int = 6
    l2_leaf_reg: float = 3.0
    subsample: float = 0.8
    rsm: float = 1.0
    early_stopping_rounds: int = 50
    small_rows: int = 1000
    small_n_estimators: int = 200
    small_depth: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_estimators", "depth", "small_n_estimators", "small_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if isinstance(self.small_rows, bool) or not isinstance(self.small_rows, int) or self.small_rows < 0:
            raise ValueError(f"small_rows: must be a non-negative integer, got {self.small_rows!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: must be positive, got {self.learning_rate!r}")

    def budget_for(self, n_rows: int) -> tuple[int, float, int]:
        """``(rounds, learning_rate, depth)`` used on ``n_rows`` training rows: the configured values, or on
        fewer than ``small_rows`` rows at most ``small_n_estimators`` rounds and ``small_depth`` levels, with
        the learning rate raised so that rounds x rate stays as configured (at most 0.5).

        CatBoost's cost per round hardly shrinks with the row count (it scores every feature border at
        every level, for every class), so 1000 rounds of depth 6 cost as much on 160 rows as on 16,000; the
        small-data policy fits a model ``folds + 1`` times (:mod:`hmspar.training.selection`).
        """
        if n_rows >= self.small_rows:
            return self.n_estimators, self.learning_rate, self.depth
        rounds = min(self.n_estimators, self.small_n_estimators)
        rate = max(self.learning_rate, min(0.5, self.learning_rate * self.n_estimators / rounds))
        return rounds, rate, min(self.depth, self.small_depth)


class CatBoostModel(_TreeModel):
    """CatBoost (oblivious trees) on the flattened table, early-stopped on validation ROC-AUC."""

    Config = CatBoostConfig
    name = "catboost"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"n_estimators": 60, "learning_rate": 0.2, "depth": 3, "early_stopping_rounds": 10, "n_jobs": 1}

    def _fit_estimator(self, table, codes, weight, val, n_classes):
        from catboost import CatBoostClassifier

        c = self.cfg
        early = val is not None and c.early_stopping_rounds > 0
        rounds, rate, depth = c.budget_for(int(table.shape[0]))
        est = CatBoostClassifier(
            iterations=self._rounds(rounds), learning_rate=rate, depth=depth, l2_leaf_reg=c.l2_leaf_reg,
            bootstrap_type="Bernoulli", subsample=c.subsample, rsm=c.rsm, random_seed=self.seed,
            thread_count=c.jobs(), loss_function="Logloss" if n_classes == 2 else "MultiClass",
            eval_metric="MultiClass" if n_classes > 2 else ("Logloss" if _stop_on_loss(val) else "AUC"),
            verbose=False, allow_writing_files=False,
            early_stopping_rounds=c.early_stopping_rounds if early else None, use_best_model=early,
        )
        est.fit(table, codes, sample_weight=weight, eval_set=val if early else None)
        # CatBoost stamps each trained model with a random GUID and its finish time, both saved in the
        # pickled model: fixed here so that identical fits give identical model.pkl bytes.
        metadata = est.get_metadata()
        metadata["model_guid"] = "hmspar"
        metadata["train_finish_time"] = "1970-01-01T00:00:00Z"
        self.n_estimators_ = int(est.tree_count_)
        self.early_stopped_ = bool(early)
        return est


# -------------------------------------------------------------------------------------- random forest
@dataclasses.dataclass(frozen=True)
class RandomForestConfig(_TreeConfig):
    """``baselines.random_forest``: :class:`sklearn.ensemble.RandomForestClassifier` settings
    (``max_depth: null`` = grow fully; ``max_features`` a fraction or ``sqrt``/``log2``)."""

    n_estimators: int = 300
    max_depth: int | None = None
    min_samples_leaf: int = 1
    max_features: float | str = "sqrt"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.max_features, str) and self.max_features not in ("sqrt", "log2"):
            raise ValueError(f"max_features: expected a fraction, 'sqrt' or 'log2', got {self.max_features!r}")


class RandomForestModel(_TreeModel):
    """scikit-learn random forest on the flattened table (no early stopping; validation ignored)."""

    Config = RandomForestConfig
    name = "random_forest"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"n_estimators": 50, "min_samples_leaf": 2, "n_jobs": 1}

    def _fit_estimator(self, table, codes, weight, val, n_classes):
        from sklearn.ensemble import RandomForestClassifier

        c = self.cfg
        est = RandomForestClassifier(
            n_estimators=c.n_estimators, max_depth=c.max_depth, min_samples_leaf=c.min_samples_leaf,
            max_features=c.max_features, n_jobs=c.jobs(), random_state=self.seed,
        )
        est.fit(table, codes, sample_weight=weight)
        self.n_estimators_ = c.n_estimators
        return est

"""MiniRocket (Dempster et al. 2021) random-convolution features of the series, then a linear classifier.

Pipeline: the standardised series (n, C, T), with the activity mask appended as ``C`` more channels
(``include_mask: true``), go through aeon's multivariate
:class:`aeon.transformations.collection.convolution_based.MiniRocket` (seeded with the run seed; about
``n_kernels`` PPV features in [0, 1]). Optional ``static``/``text`` inputs are appended as extra columns.
The features are standardised on the training split and classified by

* ``head: logistic``: L2 logistic regression (``C``), probabilities directly;
* ``head: ridge``: the classic MiniRocket head, as aeon's ``MiniRocketClassifier`` ships it:
  :class:`~sklearn.linear_model.RidgeClassifierCV` (``alphas`` chosen by leave-one-out on training). Its
  decision scores become probabilities through a sigmoid (Platt scaling; a softmax of scaled scores for
  K > 2) fitted on *out-of-fold* ridge scores of the training rows (``calibration_folds`` ridge fits at
  the chosen penalty), so calibration reads no validation row. A binary sigmoid is kept increasing: the
  calibrated probabilities rank rows exactly as the ridge scores do.
* ``head: auto`` (default): both heads on the same features, and the one with the lower validation log
  loss is kept; ridge is tried only up to ``ridge_max_rows`` training rows (on more rows than features
  its leave-one-out search costs minutes: aeon's classifier took over ten on 16,450 rows, and the
  MiniRocket paper recommends logistic regression for large sets). Without validation data the choice
  made on validation elsewhere is applied (:attr:`fixed_budget`: in the k-fold regime the folds vote,
  :mod:`hmspar.training.selection`); with neither, ridge up to ``ridge_max_rows`` rows, logistic above.

Measured against aeon's ``MiniRocketClassifier`` on every run by ``python -m
benchmarks.bench_minirocket_reference``; ``docs/models.md`` has the table.

aeon's MiniRocket needs at least 9 periods (its kernels have length 9). Shorter series (e.g. Ta-Feng's
T = 4) are left-padded by repeating the first period until T = 9, so the most recent periods stay at the
end and no artificial zeros (which are meaningful after standardisation) are introduced.

The first call compiles aeon's numba kernels (about 20 s, cached on disk afterwards).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Literal

import numpy as np

from hmspar import threads
from hmspar.errors import HmsparError
from hmspar.models.base import Model

#: aeon's MiniRocket kernel length: the shortest series it accepts.
MIN_LENGTH = 9
_ACCEPTED_INPUTS = ("series", "static", "text")
#: The heads, in the order of :attr:`MiniRocketModel.budget_` (the k-fold vote of ``head: auto``).
HEADS = ("logistic", "ridge", "auto")


def pad_to_min_length(series: np.ndarray, min_length: int = MIN_LENGTH) -> np.ndarray:
    """Left-pad (n, C, T) series to ``min_length`` periods by repeating the first period.

    Examples
    --------
    >>> pad_to_min_length(np.array([[[1.0, 2.0, 3.0]]]), 5)
    array([[[1., 1., 1., 2., 3.]]])
    """
    t = series.shape[2]
    if t >= min_length:
        return series
    return np.pad(series, ((0, 0), (0, 0), (min_length - t, 0)), mode="edge")


def _default_inputs() -> list[str]:
    return ["series"]


def _default_alphas() -> list[float]:
    return [float(a) for a in np.logspace(-3, 3, 10)]


@dataclasses.dataclass(frozen=True)
class MiniRocketConfig:
    """``baselines.minirocket`` settings.

    Parameters
    ----------
    inputs : list of str
        Must contain ``series``; ``static``/``text`` are appended to the MiniRocket features.
    include_mask : bool
        Add the activity mask as extra channels of the convolution input.
    n_kernels : int
        Number of features (rounded down to a multiple of 84 by aeon).
    max_dilations_per_kernel : int
        aeon's cap on dilations per kernel.
    head : {"auto", "logistic", "ridge"}
        Linear classifier on the standardised features (see the module notes).
    C : float
        Inverse L2 strength of the logistic head. Thousands of standardised PPV features need strong
        regularisation: on a 7,000-row synthetic task C = 1e-1, 1e-2, 1e-3, 1e-4 gave test ROC-AUC
        0.86, 0.88, 0.91, 0.92 (ridge head: 0.89); tune per dataset in ``params.yaml``.
    max_iter : int
        L-BFGS iterations of the logistic head (and of the Platt sigmoid).
    alphas : list of float
        Ridge penalties tried by the ridge head's leave-one-out CV.
    calibration_folds : int
        Stratified folds of the training rows whose out-of-fold ridge scores fit the ridge head's sigmoid.
    ridge_max_rows : int
        ``head: auto`` tries the ridge head only up to this many training rows.
    class_weight : bool
        Balanced class weights from the training labels (both heads). Off by default, as in aeon: with
        them the argmax decision trades accuracy for minority recall (merchant Industry-0, seed 0: test
        accuracy at 0.5 0.819 with, 0.921 without; ROC-AUC 0.761 and 0.769).
    n_jobs : int or "auto"
        Threads for the MiniRocket transform and the head's BLAS; ``auto``: :mod:`hmspar.threads`.
    """

    inputs: list[str] = dataclasses.field(default_factory=_default_inputs)
    include_mask: bool = True
    n_kernels: int = 10000
    max_dilations_per_kernel: int = 32
    head: Literal["auto", "logistic", "ridge"] = "auto"
    C: float = 1e-3
    max_iter: int = 1000
    alphas: list[float] = dataclasses.field(default_factory=_default_alphas)
    calibration_folds: int = 5
    ridge_max_rows: int = 10000
    class_weight: bool = False
    n_jobs: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        if "series" not in self.inputs:
            raise ValueError(f"inputs: must contain 'series', got {list(self.inputs)}")
        for m in self.inputs:
            if m not in _ACCEPTED_INPUTS:
                raise ValueError(f"inputs: {m!r} is not accepted by minirocket "
                                 f"(accepted: {', '.join(_ACCEPTED_INPUTS)})")
        threads.check(self.n_jobs, "n_jobs")
        if isinstance(self.calibration_folds, bool) or not isinstance(self.calibration_folds, int) \
                or self.calibration_folds < 2:
            raise ValueError(f"calibration_folds: must be an integer of at least 2, got {self.calibration_folds!r}")
        for name in ("n_kernels", "max_dilations_per_kernel", "max_iter", "ridge_max_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be a positive integer, got {getattr(self, name)!r}")
        if not self.C > 0:
            raise ValueError(f"C: must be positive, got {self.C!r}")
        if not self.alphas or any(not a > 0 for a in self.alphas):
            raise ValueError(f"alphas: must be a non-empty list of positive numbers, got {list(self.alphas)}")


class MiniRocketModel(Model):
    """MiniRocket features + standardisation + a logistic or Platt-calibrated ridge head (or the better of
    the two on validation).

    Attributes
    ----------
    transform_ : aeon MiniRocket
        The fitted transform.
    scaler_ : sklearn StandardScaler
        Feature standardisation fitted on the training rows.
    head_ : sklearn classifier
        LogisticRegression or RidgeClassifierCV.
    head_name_ : {"logistic", "ridge"}
        The head kept.
    platt_ : sklearn LogisticRegression or None
        Sigmoid/softmax calibration of ridge scores (ridge head only).
    val_log_loss_ : dict of str to float
        ``head: auto`` with validation data: each head's validation log loss.
    n_features_in_ : int
        Columns given to the head.
    """

    Config = MiniRocketConfig
    name = "minirocket"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"n_kernels": 168, "max_dilations_per_kernel": 8, "n_jobs": 1}

    @property
    def budget_(self) -> int | None:
        """``head: auto`` after a fit with validation data: the head chosen there (0 logistic, 1 ridge), which
        the k-fold selection hands to the refit as :attr:`fixed_budget` (the folds' median is their majority
        vote); None otherwise (nothing was chosen)."""
        if self.cfg.head != "auto" or not getattr(self, "val_log_loss_", None):
            return None
        return HEADS.index(self.head_name_)

    # ------------------------------------------------------------------
    def _series_input(self, X: dict[str, np.ndarray]) -> np.ndarray:
        series = np.asarray(X["series"], dtype=np.float32)
        if self.cfg.include_mask:
            series = np.concatenate([series, np.asarray(X["mask"], dtype=np.float32)], axis=1)  # (n, 2C, T)
        return np.ascontiguousarray(pad_to_min_length(series))

    def _features(self, X: dict[str, np.ndarray]) -> np.ndarray:
        X = self.select_inputs(X)
        parts = [np.asarray(self.transform_.transform(self._series_input(X)), dtype=np.float32)]
        parts += [np.asarray(X[m], dtype=np.float32).reshape(self.n_rows(X), -1)
                  for m in ("static", "text") if m in self.cfg.inputs]
        return np.concatenate(parts, axis=1)

    def _candidate_heads(self, n_rows: int, has_val: bool) -> list[str]:
        c = self.cfg
        if c.head != "auto":
            return [c.head]
        if self.fixed_budget is not None:
            if self.fixed_budget not in (0, 1):
                raise HmsparError(f"MiniRocketModel: fixed_budget must be 0 (logistic) or 1 (ridge) for head: "
                                  f"auto, got {self.fixed_budget!r}")
            return [HEADS[self.fixed_budget]]
        if n_rows > c.ridge_max_rows:
            return ["logistic"]
        return ["logistic", "ridge"] if has_val else ["ridge"]

    def fit(self, X, y, X_val=None, y_val=None):
        """Fit transform, scaler and head(s) on training data; validation data only choose the head
        (``head: auto``).

        Parameters
        ----------
        X : dict of str to np.ndarray
            Training modalities.
        y : np.ndarray
            (n,) labels.
        X_val, y_val : optional
            Validation modalities and labels (both or neither).
        """
        from aeon.transformations.collection.convolution_based import MiniRocket
        from sklearn.preprocessing import StandardScaler

        if (X_val is None) != (y_val is None):
            raise HmsparError("MiniRocketModel: give both X_val and y_val, or neither")
        c = self.cfg
        codes = self._fit_classes(y)
        Xs = self.select_inputs(X)
        if self.n_rows(Xs) != codes.size:
            raise HmsparError(f"MiniRocketModel: X has {self.n_rows(Xs)} rows but y has {codes.size}")
        n_jobs = threads.resolve(c.n_jobs, "n_jobs")
        with threads.limited(n_jobs):  # the transform's numba threads, and BLAS in the scaler and head
            self.transform_ = MiniRocket(n_kernels=c.n_kernels, max_dilations_per_kernel=c.max_dilations_per_kernel,
                                         n_jobs=n_jobs, random_state=self.seed)
            self.transform_.fit(self._series_input(Xs))
            # aeon records the fit's wall time on the transform; zeroed so that identical fits pickle to
            # identical bytes (model.pkl is a cached DVC output).
            if hasattr(self.transform_, "fit_time_millis_"):
                self.transform_.fit_time_millis_ = 0
            feats = self._features(Xs)
            self.n_features_in_ = int(feats.shape[1])
            self.scaler_ = StandardScaler().fit(feats)
            feats = self.scaler_.transform(feats)
            candidates = self._candidate_heads(codes.size, X_val is not None)
            fitted = {name: self._fit_head(name, feats, codes) for name in candidates}
            self.val_log_loss_ = {}
            if len(fitted) > 1:
                from sklearn.metrics import log_loss

                val_feats = self.scaler_.transform(self._features(X_val))
                val_codes = self._encode_labels(y_val)
                for name, (head, platt) in fitted.items():
                    proba = self._head_proba(head, platt, val_feats)
                    self.val_log_loss_[name] = float(log_loss(val_codes, proba, labels=np.arange(self.classes_.size)))
            self.head_name_ = (min(self.val_log_loss_, key=lambda k: (self.val_log_loss_[k], HEADS.index(k)))
                               if self.val_log_loss_ else candidates[0])
            self.head_, self.platt_ = fitted[self.head_name_]
        return self

    def _fit_head(self, name: str, feats: np.ndarray, codes: np.ndarray) -> tuple[Any, Any]:
        """One head on standardised training features: ``(classifier, platt calibrator or None)``."""
        from sklearn.linear_model import LogisticRegression, RidgeClassifier, RidgeClassifierCV

        from hmspar.training.selection import stratified_folds

        c = self.cfg
        weight = "balanced" if c.class_weight else None
        if name == "logistic":
            return LogisticRegression(C=c.C, max_iter=c.max_iter, class_weight=weight,
                                      random_state=self.seed).fit(feats, codes), None
        head = RidgeClassifierCV(alphas=list(c.alphas), class_weight=weight).fit(feats, codes)
        # out-of-fold ridge scores at the chosen penalty: the sigmoid is fitted on scores of rows the ridge
        # did not see (in-sample scores of 10,000 features on a few hundred rows separate perfectly)
        oof = None
        if np.bincount(codes).min() < 2:  # too few rows to hold any out: calibrate on in-sample scores
            folds = [(np.arange(codes.size), np.arange(codes.size))]
        else:
            folds = stratified_folds(codes, c.calibration_folds, self.seed)
        for tr, ho in folds:
            with warnings.catch_warnings():
                # thousands of features on a few hundred rows at a small penalty: scipy reports an
                # ill-conditioned dual system and sklearn falls back to least squares, as intended
                warnings.filterwarnings("ignore", message=r".*(ill-conditioned|Singular matrix).*")
                fold = RidgeClassifier(alpha=head.alpha_, class_weight=weight).fit(feats[tr], codes[tr])
            s = _as_matrix(fold.decision_function(feats[ho]))
            if oof is None:
                oof = np.zeros((codes.size, s.shape[1]))
            oof[ho] = s
        platt = LogisticRegression(C=1e4, max_iter=c.max_iter, random_state=self.seed).fit(oof, codes)
        if oof.shape[1] == 1 and not platt.coef_[0, 0] > 0:
            # no out-of-fold signal: keep the ridge's ranking, with probabilities near the base rate
            rate = float(np.clip(np.mean(codes == 1), 1e-6, 1 - 1e-6))
            platt.coef_ = np.array([[1e-6]])
            platt.intercept_ = np.array([np.log(rate / (1 - rate))])
        return head, platt

    @staticmethod
    def _head_proba(head: Any, platt: Any, feats: np.ndarray) -> np.ndarray:
        """(n, K) probabilities of one head, rows summing to one."""
        if platt is None:
            proba = np.asarray(head.predict_proba(feats), dtype=np.float64)
        else:
            proba = np.asarray(platt.predict_proba(_as_matrix(head.decision_function(feats))), dtype=np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_proba(self, X):
        """(n, K) class probabilities, columns ordered as ``classes_``."""
        self._check_fitted()
        with threads.limited(threads.resolve(self.cfg.n_jobs, "n_jobs")):  # BLAS of the scaler and the head
            return self._head_proba(self.head_, self.platt_, self.scaler_.transform(self._features(X)))


def _as_matrix(scores: np.ndarray) -> np.ndarray:
    """Ridge decision scores as a 2-D matrix ((n, 1) binary, (n, K) otherwise)."""
    scores = np.asarray(scores, dtype=np.float64)
    return scores[:, None] if scores.ndim == 1 else scores

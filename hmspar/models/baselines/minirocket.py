"""MiniRocket (Dempster et al. 2021) random-convolution features of the series, then a linear classifier.

Pipeline: the standardised series (n, C, T), with the activity mask appended as ``C`` more channels
(``include_mask: true``), go through aeon's multivariate
:class:`aeon.transformations.collection.convolution_based.MiniRocket` (seeded with the run seed; about
``n_kernels`` PPV features in [0, 1]). Optional ``static``/``text`` inputs are appended as extra columns.
The features are standardised on the training split and classified by

* ``head: logistic`` (default): L2 logistic regression (``C``), probabilities directly;
* ``head: ridge``: the classic MiniRocket :class:`~sklearn.linear_model.RidgeClassifierCV` (``alphas``
  chosen by leave-one-out on training), whose decision scores are turned into probabilities by a
  sigmoid (Platt scaling; softmax of scaled scores for K > 2) fitted on the *validation* split, or on the
  training scores when no validation data are given. Validation data are used for nothing else.

aeon's MiniRocket needs at least 9 periods (its kernels have length 9). Shorter series (e.g. Ta-Feng's
T = 4) are left-padded by repeating the first period until T = 9, so the most recent periods stay at the
end and no artificial zeros (which are meaningful after standardisation) are introduced.

The first call compiles aeon's numba kernels (about 20 s, cached on disk afterwards).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from hmspar import threads
from hmspar.errors import HmsparError
from hmspar.models.base import Model

#: aeon's MiniRocket kernel length: the shortest series it accepts.
MIN_LENGTH = 9
_ACCEPTED_INPUTS = ("series", "static", "text")


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
    head : {"logistic", "ridge"}
        Linear classifier on the standardised features (see the module notes).
    C : float
        Inverse L2 strength of the logistic head. Thousands of standardised PPV features need strong
        regularisation: on a 7,000-row synthetic task C = 1e-1, 1e-2, 1e-3, 1e-4 gave test ROC-AUC
        0.86, 0.88, 0.91, 0.92 (ridge head: 0.89); tune per dataset in ``params.yaml``.
    max_iter : int
        L-BFGS iterations of the logistic head (and of the Platt sigmoid).
    alphas : list of float
        Ridge penalties tried by the ridge head's leave-one-out CV.
    class_weight : bool
        Balanced class weights from the training labels (both heads).
    n_jobs : int or "auto"
        Threads for the MiniRocket transform and the head's BLAS; ``auto``: :mod:`hmspar.threads`.
    """

    inputs: list[str] = dataclasses.field(default_factory=_default_inputs)
    include_mask: bool = True
    n_kernels: int = 10000
    max_dilations_per_kernel: int = 32
    head: Literal["logistic", "ridge"] = "logistic"
    C: float = 1e-3
    max_iter: int = 1000
    alphas: list[float] = dataclasses.field(default_factory=_default_alphas)
    class_weight: bool = True
    n_jobs: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        if "series" not in self.inputs:
            raise ValueError(f"inputs: must contain 'series', got {list(self.inputs)}")
        for m in self.inputs:
            if m not in _ACCEPTED_INPUTS:
                raise ValueError(f"inputs: {m!r} is not accepted by minirocket "
                                 f"(accepted: {', '.join(_ACCEPTED_INPUTS)})")
        threads.check(self.n_jobs, "n_jobs")
        for name in ("n_kernels", "max_dilations_per_kernel", "max_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be a positive integer, got {getattr(self, name)!r}")
        if not self.C > 0:
            raise ValueError(f"C: must be positive, got {self.C!r}")
        if not self.alphas or any(not a > 0 for a in self.alphas):
            raise ValueError(f"alphas: must be a non-empty list of positive numbers, got {list(self.alphas)}")


class MiniRocketModel(Model):
    """MiniRocket features + standardisation + logistic (or Platt-calibrated ridge) classifier.

    Attributes
    ----------
    transform_ : aeon MiniRocket
        The fitted transform.
    scaler_ : sklearn StandardScaler
        Feature standardisation fitted on the training rows.
    head_ : sklearn classifier
        LogisticRegression or RidgeClassifierCV.
    platt_ : sklearn LogisticRegression or None
        Sigmoid/softmax calibration of ridge scores (ridge head only).
    n_features_in_ : int
        Columns given to the head.
    """

    Config = MiniRocketConfig
    name = "minirocket"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"n_kernels": 168, "max_dilations_per_kernel": 8, "n_jobs": 1}

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

    def fit(self, X, y, X_val=None, y_val=None):
        """Fit transform, scaler and head on training data; validation only calibrates the ridge head.

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
        from sklearn.linear_model import LogisticRegression, RidgeClassifierCV
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
            weight = "balanced" if c.class_weight else None
            self.platt_ = None
            if c.head == "logistic":
                self.head_ = LogisticRegression(C=c.C, max_iter=c.max_iter, class_weight=weight,
                                                random_state=self.seed).fit(feats, codes)
            else:
                self.head_ = RidgeClassifierCV(alphas=list(c.alphas), class_weight=weight).fit(feats, codes)
                if X_val is not None:
                    cal_x, cal_y = self._scores(self.scaler_.transform(self._features(X_val))), self._encode_labels(y_val)
                else:
                    cal_x, cal_y = self._scores(feats), codes
                self.platt_ = LogisticRegression(C=1e4, max_iter=c.max_iter, class_weight=weight,
                                                 random_state=self.seed).fit(cal_x, cal_y)
        return self

    def _scores(self, feats: np.ndarray) -> np.ndarray:
        """Ridge decision scores as a 2-D matrix ((n, 1) binary, (n, K) otherwise)."""
        s = self.head_.decision_function(feats)
        return s[:, None] if s.ndim == 1 else s

    def predict_proba(self, X):
        """(n, K) class probabilities, columns ordered as ``classes_``."""
        self._check_fitted()
        with threads.limited(threads.resolve(self.cfg.n_jobs, "n_jobs")):  # BLAS of the scaler and the head
            feats = self.scaler_.transform(self._features(X))
            if self.platt_ is None:
                proba = self.head_.predict_proba(feats)
            else:
                proba = self.platt_.predict_proba(self._scores(feats))
        proba = np.asarray(proba, dtype=np.float64)
        if proba.shape[1] != self.classes_.size:  # the calibration set may lack a class
            raise HmsparError("MiniRocketModel: the validation split lacks a class seen in training; "
                              "cannot calibrate the ridge head")
        return proba / proba.sum(axis=1, keepdims=True)

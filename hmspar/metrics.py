"""The one definition of every evaluation metric: the decision threshold chosen on validation (max F1),
binary / multi-class metric dictionaries (scikit-learn, ``zero_division=0``) and the ROC-AUC used for
early stopping. The trainer (:func:`hmspar.training.trainer.validation_auc`), the runner (``metrics.json``)
and the report (``hmspar.report.leaderboard.compute_metrics``) all call this module; it stays torch-free
and imports scikit-learn inside functions.

Edge cases (one rule each, everywhere):

- Binary predictions are ``p >= threshold``; multi-class predictions are the argmax class.
- ROC-AUC and AUPRC are NaN unless every class occurs in ``y`` (binary: both 0 and 1; multi-class: all
  ``K``). Multi-class ROC-AUC is macro one-vs-rest (rows renormalised to sum to 1 only if
  they do not already, within ``np.allclose``); multi-class AUPRC is
  the macro mean of the one-vs-rest average precisions.
- Brier: binary, the mean of ``(p - y) ** 2`` (defined with one class too); multi-class, the mean over rows
  of the squared error summed over the ``K`` classes (so a binary task scored as two columns gives twice the
  binary value).
- ``balanced_accuracy`` is the mean recall over the classes that occur in ``y``.
- Precision, recall and F1 use ``zero_division=0``. Key names: binary ``f1, precision, recall``;
  multi-class ``f1_macro, precision_macro, recall_macro`` (macro over all ``K`` classes). The leaderboard
  shows both under ``f1, precision, recall`` (:data:`LEADERBOARD_KEYS`).

Undefined values are NaN; callers writing JSON turn NaN into ``null`` (see :func:`json_safe`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hmspar.errors import HmsparError

BINARY_KEYS = ("roc_auc", "auprc", "f1", "precision", "recall", "accuracy", "balanced_accuracy", "brier")
MULTICLASS_KEYS = ("roc_auc", "auprc", "f1_macro", "precision_macro", "recall_macro", "accuracy",
                   "balanced_accuracy", "log_loss", "brier")
#: Leaderboard column -> multi-class key (binary keys are the column names themselves).
LEADERBOARD_KEYS = {"f1": "f1_macro", "precision": "precision_macro", "recall": "recall_macro"}


def _positive_proba(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim != 1:
        raise HmsparError(f"binary metrics expect (n,) positive-class probabilities, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise HmsparError("binary metrics: probabilities contain NaN or infinity")
    return p


def _binary_labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise HmsparError(f"labels have shape {y.shape}, probabilities {n} rows")
    if not np.all(np.isin(y, (0, 1))):
        raise HmsparError(f"binary metrics expect labels 0/1, got {np.unique(y)[:5].tolist()}")
    return y.astype(np.int64)


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes that occur in ``y`` (NaN without rows)."""
    present = np.unique(y)
    if present.size == 0:
        return float("nan")
    return float(np.mean([np.mean(pred[y == c] == c) for c in present]))


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """ROC-AUC of probabilities: binary for (n,) or (n, 2) (column 1), macro one-vs-rest for (n, K > 2).

    NaN unless every class occurs in ``y``. Multi-class rows that do not sum to 1 (``np.allclose``) are
    renormalised.

    Parameters
    ----------
    y : np.ndarray
        (n,) integer labels in 0..K-1.
    proba : np.ndarray
        (n,) positive-class probabilities or (n, K) class probabilities, all finite.

    Returns
    -------
    float
    """
    from sklearn.metrics import roc_auc_score

    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    if proba.ndim == 1 or proba.shape[1] == 2:
        p = _positive_proba(proba)
        y = _binary_labels(y, p.size)
        return float(roc_auc_score(y, p)) if np.unique(y).size == 2 else float("nan")
    P, y = _multiclass_inputs(y, proba)
    k = P.shape[1]
    if np.unique(y).size < k:
        return float("nan")
    sums = P.sum(axis=1, keepdims=True)
    if not np.allclose(sums, 1.0):   # renormalise only when needed: dividing by ~1 would break score ties
        P = P / sums
    return float(roc_auc_score(y, P, multi_class="ovr", average="macro", labels=np.arange(k)))


def _multiclass_inputs(y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] < 2:
        raise HmsparError(f"multi-class metrics expect (n, K) probabilities, got shape {P.shape}")
    if not np.all(np.isfinite(P)):
        raise HmsparError("multi-class metrics: probabilities contain NaN or infinity")
    y = np.asarray(y)
    if y.shape != (P.shape[0],):
        raise HmsparError(f"labels have shape {y.shape}, probabilities {P.shape[0]} rows")
    k = P.shape[1]
    if y.size and (y.min() < 0 or y.max() >= k):
        raise HmsparError(f"multi-class metrics expect labels in 0..{k - 1}")
    return P, y.astype(np.int64)


def choose_threshold(y_val: np.ndarray, p_val: np.ndarray) -> float:
    """Threshold on ``p_val`` maximising F1 on validation (predict positive when ``p >= threshold``).

    Candidates are the distinct validation probabilities; among equal F1 the smallest threshold wins, so
    the choice is deterministic. If no threshold gives a positive F1 (no positives in ``y_val``), 0.5.

    Parameters
    ----------
    y_val : np.ndarray
        (n,) 0/1 validation labels.
    p_val : np.ndarray
        (n,) positive-class probabilities (or (n, 2), column 1 is used).

    Returns
    -------
    float
    """
    p = _positive_proba(p_val)
    y = _binary_labels(y_val, p.size)
    if p.size == 0:
        raise HmsparError("choose_threshold: no validation rows")
    thresholds, inverse = np.unique(p, return_inverse=True)   # ascending
    pos_at = np.bincount(inverse, weights=y, minlength=thresholds.size)
    cnt_at = np.bincount(inverse, minlength=thresholds.size).astype(np.float64)
    tp = np.cumsum(pos_at[::-1])[::-1]          # positives with p >= thresholds[i]
    predicted = np.cumsum(cnt_at[::-1])[::-1]   # rows with p >= thresholds[i]
    f1 = 2 * tp / (predicted + y.sum())         # 2TP / (2TP + FP + FN)
    best = float(f1.max())
    if best <= 0:
        return 0.5
    return float(thresholds[np.flatnonzero(f1 >= best - 1e-12)[0]])


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Binary metrics of positive-class probabilities ``p`` at ``threshold``.

    Returns
    -------
    dict
        ``roc_auc`` and ``auprc`` (average precision; both NaN with one class), ``f1``, ``precision``,
        ``recall``, ``accuracy``, ``balanced_accuracy`` (at ``p >= threshold``) and ``brier`` (mean squared
        error of ``p``).
    """
    from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, precision_score,
                                 recall_score)

    p = _positive_proba(p)
    y = _binary_labels(y, p.size)
    pred = (p >= threshold).astype(np.int64)
    two = np.unique(y).size == 2
    return {
        "roc_auc": roc_auc(y, p),
        "auprc": float(average_precision_score(y, p)) if two else float("nan"),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": _balanced_accuracy(y, pred),
        "brier": float(np.mean((p - y) ** 2)),
    }


def multiclass_metrics(y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    """Multi-class metrics of (n, K) probabilities ``P`` for labels ``y`` in 0..K-1 (argmax decisions).

    Returns
    -------
    dict
        ``roc_auc`` (one-vs-rest macro) and ``auprc`` (macro one-vs-rest average precision), both NaN
        unless every class occurs in ``y``; ``f1_macro``,
        ``precision_macro``, ``recall_macro``, ``accuracy``, ``balanced_accuracy`` (mean recall over the
        classes present in ``y``), ``log_loss`` and ``brier`` (mean over rows of the squared error summed
        over classes).
    """
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_score, recall_score

    P, y = _multiclass_inputs(y, P)
    k = P.shape[1]
    labels = np.arange(k)
    pred = P.argmax(axis=1)
    all_present = np.unique(y).size == k
    onehot = np.eye(k)[y]
    return {
        "roc_auc": roc_auc(y, P),
        "auprc": float(np.mean([average_precision_score(onehot[:, c], P[:, c]) for c in labels]))
        if all_present else float("nan"),
        "f1_macro": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "precision_macro": float(precision_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "recall_macro": float(recall_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": _balanced_accuracy(y, pred),
        "log_loss": float(-np.mean(np.log(np.clip(P[np.arange(y.size), y], 1e-15, None)))),
        "brier": float(np.mean(np.sum((P - onehot) ** 2, axis=1))),
    }


def json_safe(obj: Any) -> Any:
    """Recursively replace NaN/infinite floats by ``None`` and numpy scalars by Python ones (for JSON)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

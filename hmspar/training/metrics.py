"""Evaluation metrics shared by every model: the decision threshold chosen on validation (max F1) and
binary / multi-class metric dictionaries (scikit-learn, ``zero_division=0``).

Binary predictions are ``p >= threshold``. Metrics that are undefined (ROC-AUC with a single class in
``y``) are NaN; callers writing JSON should turn NaN into ``null`` (see :func:`json_safe`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hmspar.errors import HmsparError

BINARY_KEYS = ("roc_auc", "auprc", "f1", "precision", "recall", "accuracy", "brier")


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
        ``roc_auc`` (NaN with one class), ``auprc`` (average precision), ``f1``, ``precision``, ``recall``,
        ``accuracy`` (at ``p >= threshold``) and ``brier`` (mean squared error of ``p``).
    """
    from sklearn.metrics import (accuracy_score, average_precision_score, brier_score_loss, f1_score,
                                 precision_score, recall_score, roc_auc_score)

    p = _positive_proba(p)
    y = _binary_labels(y, p.size)
    pred = (p >= threshold).astype(np.int64)
    two = np.unique(y).size == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if two else float("nan"),
        "auprc": float(average_precision_score(y, p)) if y.any() else float("nan"),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "brier": float(brier_score_loss(y, p, pos_label=1)) if two else float(np.mean((p - y) ** 2)),
    }


def multiclass_metrics(y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    """Multi-class metrics of (n, K) probabilities ``P`` for labels ``y`` in 0..K-1 (argmax decisions).

    Returns
    -------
    dict
        ``roc_auc`` (one-vs-rest macro; NaN unless every class occurs in ``y``), ``f1_macro``,
        ``precision_macro``, ``recall_macro``, ``accuracy``, ``balanced_accuracy`` (mean recall over the
        classes present in ``y``), ``log_loss`` and ``brier`` (mean over rows of the squared error summed
        over classes).
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] < 2:
        raise HmsparError(f"multi-class metrics expect (n, K) probabilities, got shape {P.shape}")
    y = np.asarray(y)
    if y.shape != (P.shape[0],):
        raise HmsparError(f"labels have shape {y.shape}, probabilities {P.shape[0]} rows")
    k = P.shape[1]
    if y.size and (y.min() < 0 or y.max() >= k):
        raise HmsparError(f"multi-class metrics expect labels in 0..{k - 1}")
    y = y.astype(np.int64)
    labels = np.arange(k)
    pred = P.argmax(axis=1)
    all_present = np.unique(y).size == k
    onehot = np.eye(k)[y]
    present = np.unique(y)
    recall_per = recall_score(y, pred, labels=present, average=None, zero_division=0)
    return {
        "roc_auc": float(roc_auc_score(y, P, multi_class="ovr", average="macro", labels=labels))
        if all_present else float("nan"),
        "f1_macro": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "precision_macro": float(precision_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "recall_macro": float(recall_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(np.mean(recall_per)),
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

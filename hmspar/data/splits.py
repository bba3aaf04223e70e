"""Train/validation/test splits, computed once per dataset and task and stored: stratified (drawn from a
seed) or temporal (earliest entities train, latest test, with a gap between the parts)."""

from __future__ import annotations

import numpy as np

from hmspar.errors import HmsparError

TRAIN, VAL, TEST = 0, 1, 2
#: Code of entities left out of every part (the gap of a temporal split); the loader never selects them.
DROPPED = -1
SPLIT_NAMES = {"train": TRAIN, "val": VAL, "test": TEST}


def stratified_split(strata: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Assign each entity to train (0), validation (1) or test (2), stratified by ``strata``.

    Parameters
    ----------
    strata : np.ndarray
        (N,) stratum per entity (e.g. the label, or label and group combined).
    val_fraction, test_fraction : float
        Fractions of each stratum sent to validation and test (rounded per stratum).
    seed : int
        Seed of the ``numpy.random.Generator`` that shuffles each stratum.

    Returns
    -------
    np.ndarray
        (N,) int8 split codes.
    """
    strata = np.asarray(strata)
    out = np.full(strata.shape[0], TRAIN, dtype=np.int8)
    rng = np.random.default_rng(seed)
    for value in np.unique(strata):
        idx = np.flatnonzero(strata == value)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(test_fraction * idx.size))
        n_val = int(round(val_fraction * idx.size))
        out[idx[:n_test]] = TEST
        out[idx[n_test:n_test + n_val]] = VAL
    for name, code in SPLIT_NAMES.items():
        if not np.any(out == code):
            raise HmsparError(f"split {name!r} is empty: too few entities for the requested fractions")
    return out


def temporal_split(order_key: np.ndarray, val_fraction: float, test_fraction: float, gap: int = 0) -> np.ndarray:
    """Assign entities to train (0), validation (1), test (2) or the gap (:data:`DROPPED`, -1) by time.

    Entities are ordered by ``order_key`` (e.g. the last day of a sliding window); the latest
    ``test_fraction`` of them form the test part, the ``val_fraction`` before them the validation part
    and the rest the training part (entities sharing a key always share a part). Before each later part
    begins, at key ``b``, the entities with keys in ``[b - gap, b)`` are dropped, so every kept entity of
    an earlier part has ``key + gap < b``: with ``gap`` = the forecast horizon, no training (validation)
    label day falls on or after the first day the next part forecasts from.

    Parameters
    ----------
    order_key : np.ndarray
        (N,) integer time index per entity (any order; need not be unique).
    val_fraction, test_fraction : float
        Fractions of the entities (before dropping) in the validation and test parts, each in (0, 1).
    gap : int, default 0
        Number of key units dropped before the validation and before the test part.

    Returns
    -------
    np.ndarray
        (N,) int8 codes: 0 train, 1 validation, 2 test, -1 dropped.

    Raises
    ------
    HmsparError
        On a negative gap, fractions outside (0, 1), a non-integer key, or an empty part.
    """
    key = np.asarray(order_key)
    if key.ndim != 1 or not np.issubdtype(key.dtype, np.integer):
        raise HmsparError(f"temporal split: order_key must be a 1-d array of integers, got dtype {key.dtype} "
                          f"and shape {key.shape}")
    if isinstance(gap, bool) or int(gap) != gap or gap < 0:
        raise HmsparError(f"temporal split: gap must be a non-negative integer, got {gap!r}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise HmsparError("temporal split: val_fraction and test_fraction must lie in (0, 1) and sum to less than 1")
    n = key.shape[0]
    ordered = np.sort(key, kind="stable")
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * n))
    if n_test == 0 or n_val == 0 or n_test + n_val >= n:
        raise HmsparError(f"temporal split: {n} entities are too few for val_fraction={val_fraction} and "
                          f"test_fraction={test_fraction}")
    test_start = ordered[n - n_test]
    val_start = ordered[n - n_test - n_val]
    out = np.full(n, DROPPED, dtype=np.int8)
    out[key < val_start - gap] = TRAIN
    out[(key >= val_start) & (key < test_start - gap)] = VAL
    out[key >= test_start] = TEST
    for name, code in SPLIT_NAMES.items():
        if not np.any(out == code):
            raise HmsparError(f"temporal split: split {name!r} is empty (gap={gap} is too large for "
                              f"{n} entities and the requested fractions)")
    return out

"""Stratified train/validation/test splits, drawn once per dataset and task from a seed and stored."""

from __future__ import annotations

import numpy as np

from hmspar.errors import HmsparError

TRAIN, VAL, TEST = 0, 1, 2
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

"""HMSPAR: a reproducible lab for sparse multimodal sequence classification."""

import os as _os

__version__ = "0.1.0"

#: GNU OpenMP spin count the lab sets for itself (see :func:`_bounded_openmp_spin`).
OPENMP_SPINCOUNT = "10000"


def _bounded_openmp_spin() -> None:
    """Bound how long an idle OpenMP thread busy-waits before it sleeps (``GOMP_SPINCOUNT``), unless the user
    chose a wait policy (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` already set).

    GNU OpenMP (torch's intra-op pool, MKL inside torch, LightGBM, XGBoost) reads the variable once, when the
    library loads, so it is set here, before any of them is imported. Its default (300,000 spins) makes two
    jobs that share two cores spin against each other: HMSPAR's fit beside another fit took 9.2x its time
    alone, a 1D-CNN's 10.4x; at 10,000 spins 4.1x and 1.6x, and alone no slower
    (``python -m benchmarks.bench_contention``; figures in docs/experiment.md). The thread count, and so
    every result byte, is unchanged: only the waiting differs.
    """
    if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
        _os.environ["GOMP_SPINCOUNT"] = OPENMP_SPINCOUNT


_bounded_openmp_spin()

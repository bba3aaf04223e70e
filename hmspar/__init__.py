"""HMSPAR: a reproducible lab for sparse multimodal sequence classification."""

import os as _os

__version__ = "0.1.0"

# OpenMP threads (torch, LightGBM, XGBoost) that wait for work sleep instead of spinning. Set here, before
# any of those libraries is imported by the lab, because an OpenMP runtime reads it once, when it loads.
# Beside one other torch process on 2 cores, a CNN fit took 13.2-13.9 s with spinning waits and 5.5-5.7 s
# with passive ones (alone: 3.9-4.1 s and 4.4-4.5 s); `python -m benchmarks.bench_contention`. The wait
# policy changes no result, only how idle threads wait. Set OMP_WAIT_POLICY yourself to override it.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

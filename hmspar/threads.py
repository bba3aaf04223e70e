"""Thread policy: how many threads a model may use, so that jobs running side by side do not thrash.

``num_threads: auto`` (torch models) and ``n_jobs: auto`` (LightGBM, XGBoost, CatBoost, random forest,
MiniRocket) resolve to::

    max(1, cpus_available_to_this_process // jobs_side_by_side)

* ``cpus_available_to_this_process`` is ``len(os.sched_getaffinity(0))`` (respects ``taskset`` and cgroup
  CPU sets; ``os.cpu_count()`` where affinity is not supported);
* ``jobs_side_by_side`` is the environment variable ``HMSPAR_PARALLEL_JOBS`` when set (a positive integer;
  set it when you run several stages or experiments at once by any other means), otherwise, inside an
  experiment run by DVC's queue (``dvc queue start -j N``), the number of live queue workers (read from
  the worker pid files DVC keeps under ``<repo>/.dvc/tmp/exps/celery/``), otherwise 1 (``dvc repro``
  runs one stage at a time).

An integer is used as given (``0`` for torch models: leave torch's own default). The resolved count is
applied with :func:`limited`: torch intra-op threads, torch inter-op threads (settable once per process,
before any inter-op work) and every BLAS/OpenMP pool threadpoolctl can see.

Reproducibility: a fixed integer gives the same bytes on every machine; ``auto`` gives the same bytes on
machines (and queue settings) that resolve to the same count, because some libraries (LightGBM, XGBoost,
BLAS reductions) sum in a thread-count-dependent order.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hmspar.errors import HmsparError

#: Environment variable: number of jobs running side by side on this machine's CPUs.
ENV_JOBS = "HMSPAR_PARALLEL_JOBS"
AUTO = "auto"

_interop_set = False


def available_cpus() -> int:
    """CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count()`` where unsupported)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def queue_workers(environ: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> int | None:
    """Live DVC queue workers, when this process runs inside a queued experiment; else ``None``.

    DVC runs a queued experiment in a temporary copy under ``<repo>/.dvc/tmp/exps/`` and passes the parent
    repository as ``DVC_ROOT``; each worker started by ``dvc queue start -j N`` keeps a pid file
    ``<repo>/.dvc/tmp/exps/celery/dvc-exp-worker-<k>.pid``. Workers whose process is gone are not counted.
    """
    environ = os.environ if environ is None else environ
    root = environ.get("DVC_ROOT")
    if not root or not environ.get("DVC_EXP_NAME"):
        return None
    exps = Path(root) / ".dvc" / "tmp" / "exps"
    here = Path(cwd if cwd is not None else os.getcwd()).resolve()
    try:
        here.relative_to(exps.resolve())
    except ValueError:  # a workspace `dvc exp run`: not one of the queue's jobs
        return None
    alive = 0
    for pidfile in (exps / "celery").glob("dvc-exp-worker-*.pid"):
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        alive += _pid_alive(pid)
    return alive or None


def parallel_jobs(environ: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> int:
    """Jobs sharing this machine's CPUs: ``$HMSPAR_PARALLEL_JOBS``, else DVC's live queue workers, else 1.

    Raises
    ------
    HmsparError
        When ``HMSPAR_PARALLEL_JOBS`` is set but not a positive integer (the message names the variable).
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(ENV_JOBS)
    if raw is not None and raw.strip() != "":
        try:
            jobs = int(raw.strip())
        except ValueError:
            jobs = 0
        if jobs < 1:
            raise HmsparError(f"{ENV_JOBS}: must be a positive integer (jobs running side by side), got {raw!r}")
        return jobs
    return queue_workers(environ, cwd) or 1


def check(value: Any, key: str, *, allow_zero: bool = False) -> None:
    """Validate a ``num_threads``/``n_jobs`` setting: ``"auto"`` or an integer >= 1 (>= 0 with ``allow_zero``).

    Raises
    ------
    ValueError
        ``"<key> must be ..."`` (:func:`hmspar.config.build` turns it into ``"<section>.<key>: must be ..."``).
    """
    if value == AUTO and isinstance(value, str):
        return
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a non-negative integer" if allow_zero else "a positive integer"
        raise ValueError(f"{key} must be 'auto' or {what}, got {value!r}")


def resolve(value: Any, key: str, *, share: int = 1, allow_zero: bool = False,
            environ: Mapping[str, str] | None = None, cpus: int | None = None) -> int:
    """The thread count for setting ``value`` (``"auto"`` or an integer), named ``key`` in errors.

    Parameters
    ----------
    value : "auto" or int
        The configured setting.
    key : str
        Its params key, e.g. ``"baselines.lightgbm.n_jobs"``.
    share : int
        Processes of this one job that split its share further (torchrun workers).
    allow_zero : bool
        Accept ``0`` (torch models: leave torch's default) and return it unchanged.
    environ, cpus : optional
        Overrides for tests (default: ``os.environ``, :func:`available_cpus`).

    Returns
    -------
    int
        ``value`` itself for an integer; ``max(1, cpus // (parallel_jobs() * share))`` for ``"auto"``.
    """
    try:
        check(value, key, allow_zero=allow_zero)
    except ValueError as exc:
        raise HmsparError(str(exc).replace(f"{key} must", f"{key}: must", 1)) from None
    if value != AUTO:
        return int(value)
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus // (parallel_jobs(environ) * max(1, share)))


@contextlib.contextmanager
def limited(n: int) -> Iterator[None]:
    """Run with at most ``n`` threads in torch (intra-op; inter-op once per process) and BLAS/OpenMP pools.

    ``n = 0`` changes nothing. Torch is touched only when already imported, so a tree baseline never
    imports it. The previous intra-op and BLAS limits are restored on exit; torch's inter-op pool size can
    only be set once per process, before inter-op work starts, so it is set on the first call and kept.
    """
    global _interop_set
    if n <= 0:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    old = None
    if torch is not None:
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        if not _interop_set:
            _interop_set = True
            with contextlib.suppress(RuntimeError):  # inter-op work already started: keep torch's pool
                torch.set_num_interop_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        if torch is not None and old is not None:
            torch.set_num_threads(old)

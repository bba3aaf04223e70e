"""HMSPAR: a reproducible lab for sparse multimodal sequence classification."""

import os as _os
import time as _time

__version__ = "0.1.0"

#: GNU OpenMP spin count the lab sets for itself on idle cores (see :func:`choose_openmp_wait`).
OPENMP_SPINCOUNT = "10000"
#: ... and when other processes already keep at least :data:`BUSY_CPUS` of this process's CPUs busy: no spinning
#: (``GOMP_SPINCOUNT=0`` is GNU OpenMP's ``OMP_WAIT_POLICY=PASSIVE``).
OPENMP_SPINCOUNT_BUSY = "0"
#: CPUs' worth of work by other processes (over a short look at ``/proc/stat``) that counts as a neighbour.
BUSY_CPUS = 0.5
#: How long the look lasts, in seconds.
BUSY_WINDOW_S = 0.05
#: Environment variable that records the spin count the lab chose, so that a child process decides for itself
#: (a value the user set is never replaced).
SPIN_MARK = "HMSPAR_GOMP_SPINCOUNT"


def _cpu_ticks(cpus):
    """(non-idle, total) clock ticks of ``cpus`` since boot from ``/proc/stat``, and this process's own ticks."""
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *fields = line.split()
            if int(name[3:]) not in cpus:
                continue
            v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(v)
            busy += sum(v) - v[3] - v[4]
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return busy, total, int(own[11]) + int(own[12])  # utime + stime


def cpus_busy_elsewhere(window: float = BUSY_WINDOW_S, ticks=_cpu_ticks) -> float:
    """CPUs' worth of work other processes did on this process's CPUs during a ``window``-second look.

    Returns 0.0 where ``/proc/stat`` cannot be read (not Linux): the machine is taken as idle.
    """
    try:
        cpus = _os.sched_getaffinity(0)
        b0, t0, s0 = ticks(cpus)
        _time.sleep(window)
        b1, t1, s1 = ticks(cpus)
    except (AttributeError, OSError, ValueError, IndexError):
        return 0.0
    elapsed = (t1 - t0) / max(1, len(cpus))  # ticks of wall time per CPU
    return max(0.0, (b1 - b0) - (s1 - s0)) / elapsed if elapsed > 0 else 0.0


def choose_openmp_wait(environ=_os.environ, busy=cpus_busy_elsewhere) -> None:
    """Choose how long an idle OpenMP thread busy-waits before it sleeps (``GOMP_SPINCOUNT``), unless the user
    chose a wait policy (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set, other than by the lab in a parent).

    GNU OpenMP (torch's intra-op pool, MKL inside torch, LightGBM, XGBoost) reads the variable once, when the
    library loads, so it is set here, before any of them is imported, from a 50 ms look at the CPUs:

    * idle cores: 10,000 spins. GNU OpenMP's default (300,000) makes two jobs that share two cores spin
      against each other (HMSPAR's fit beside another fit 9.2x its time alone, a 1D-CNN's 10.4x); a shorter
      spin (or none) makes HMSPAR's many small operations pay for waking threads when it runs alone (1.2-1.8x);
    * other processes already keep half a CPU or more busy: no spinning (``GOMP_SPINCOUNT=0``), the setting
      that costs least beside a neighbour.

    Each ``dvc repro`` stage is a process of its own and decides at its start. The thread count, and so every
    result byte, is the same either way: only the waiting differs (``python -m benchmarks.bench_contention``;
    figures in docs/experiment.md).
    """
    mine = environ.pop(SPIN_MARK, None)
    if mine is not None and environ.get("GOMP_SPINCOUNT") == mine:
        del environ["GOMP_SPINCOUNT"]  # the lab's choice in a parent process: look again
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return
    spin = OPENMP_SPINCOUNT_BUSY if busy() >= BUSY_CPUS else OPENMP_SPINCOUNT
    environ["GOMP_SPINCOUNT"] = environ[SPIN_MARK] = spin


choose_openmp_wait()

"""Two training processes side by side: does the thread policy stop them thrashing?

``python -m benchmarks.bench_threads`` trains one small model (the 1D-CNN baseline through the shared
Trainer, or LightGBM with ``--model lightgbm``) on a fixed synthetic set in fresh processes, and times:

* ``one alone``: a single process, thread setting ``auto`` (all the CPUs available);
* ``two sequentially``: two such processes one after the other;
* ``two together, default``: two processes started at once with the library defaults (torch: one thread
  per core, LightGBM: all cores), i.e. what happened before the policy;
* ``two together, auto``: two processes started at once with ``auto`` and ``HMSPAR_PARALLEL_JOBS=2``
  (what ``dvc queue start -j 2`` resolves to), so each uses ``cpus // 2`` threads.

Each row gives the wall time of the whole mode, the mean fit time inside a process, and the ratio to
``two sequentially`` (the target of issue 16: two parallel trials in <= 1.2x the sequential time, and
ideally less). Results go to ``benchmarks/results/threads_<model>.json``. Timings depend on the machine's load:
run on idle cores for figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._measure import record_run, worker_result

RESULTS = Path("benchmarks/results/threads_cnn1d.json")  # threads_<model>.json


def fit_once(model: str, threads: str, rows: int, epochs: int) -> dict:
    """Fit once in this process and return its timings (run with ``--worker``)."""
    import numpy as np

    from hmspar import threads as policy
    from hmspar.models.registry import make_model

    rng = np.random.default_rng(0)
    n_channels, length = 4, 32
    series = rng.normal(size=(rows, n_channels, length)).astype(np.float32)
    y = (series[:, 0, -8:].mean(axis=1) + 0.5 * rng.normal(size=rows) > 0).astype(np.int64)
    X = {"series": series, "mask": np.ones_like(series), "static": rng.normal(size=(rows, 8)).astype(np.float32)}
    n_val = rows // 5
    Xtr = {k: v[n_val:] for k, v in X.items()}
    Xva = {k: v[:n_val] for k, v in X.items()}
    setting: int | str = threads if threads == "auto" else int(threads)
    if model == "cnn1d":
        section = {"inputs": ["series", "static"], "hidden": 64, "num_layers": 3,
                   "train": {"epochs": epochs, "batch_size": 256, "patience": epochs, "num_threads": setting}}
        resolved = policy.resolve(setting, "train.num_threads", allow_zero=True)
    elif model == "lightgbm":
        # n_jobs 0 is not accepted by the config: the "default" mode passes the CPU count (LightGBM's default)
        n_jobs = setting if setting != 0 else policy.available_cpus()
        section = {"inputs": ["series", "static"], "n_estimators": 40 * epochs, "early_stopping_rounds": 10_000,
                   "n_jobs": n_jobs}
        resolved = policy.resolve(n_jobs, "n_jobs")
    else:
        raise SystemExit(f"--model: expected cnn1d or lightgbm, got {model!r}")
    m = make_model(model, section, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    m.fit(Xtr, y[n_val:], Xva, y[:n_val])
    return {"fit_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "threads": resolved}


def _spawn(model: str, threads: str, rows: int, epochs: int, jobs: int | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HMSPAR_PARALLEL_JOBS")}
    if jobs is not None:
        env["HMSPAR_PARALLEL_JOBS"] = str(jobs)
    cmd = [sys.executable, "-m", "benchmarks.bench_threads", "--worker", "--model", model, "--threads", threads,
           "--rows", str(rows), "--epochs", str(epochs)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _collect(procs: list[subprocess.Popen]) -> list[dict]:
    return [worker_result(p) for p in procs]


def run(model: str, rows: int, epochs: int) -> list[dict]:
    """Time the four modes; returns one row per mode."""
    modes = [("one alone", "auto", None, 1, False),
             ("two sequentially", "auto", None, 2, False),
             ("two together, default", "0", None, 2, True),
             ("two together, auto", "auto", 2, 2, True)]
    results = []
    for label, threads, jobs, n, together in modes:
        t0 = time.perf_counter()
        if together:
            fits = _collect([_spawn(model, threads, rows, epochs, jobs) for _ in range(n)])
        else:
            fits = [f for _ in range(n) for f in _collect([_spawn(model, threads, rows, epochs, jobs)])]
        wall = time.perf_counter() - t0
        results.append({"mode": label, "processes": n, "threads_each": fits[0]["threads"], "wall_s": wall,
                        "mean_fit_s": sum(f["fit_s"] for f in fits) / n,
                        "mean_cpu_s": sum(f["cpu_s"] for f in fits) / n})
        print(f"{label}: {wall:.1f} s", file=sys.stderr, flush=True)
    seq = next(r["wall_s"] for r in results if r["mode"] == "two sequentially")
    for r in results:
        r["vs_sequential"] = r["wall_s"] / seq if r["processes"] == 2 else float("nan")
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cnn1d", choices=["cnn1d", "lightgbm"])
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(fit_once(args.model, args.threads, args.rows, args.epochs)))
        return
    from hmspar.threads import available_cpus

    meta = {"model": args.model, "rows": args.rows, "epochs": args.epochs, "cpus": available_cpus()}
    record_run(RESULTS.with_name(f"threads_{args.model}.json"), meta, lambda: run(args.model, args.rows, args.epochs),
               ["mode", "processes", "threads_each", "wall_s", "mean_fit_s", "mean_cpu_s", "vs_sequential"])
    print(f"cpus available: {meta['cpus']}")


if __name__ == "__main__":
    main()

"""One training process alone and beside a neighbour it does not know about, under several thread and OpenMP wait settings.

``python -m benchmarks.bench_contention [--model hmspar|cnn1d]`` fits one model in fresh processes and times
it alone and beside a neighbour that is another such fit, already running (what two stages, a stage and the
test suite, or two experiments do to each other when ``HMSPAR_PARALLEL_JOBS`` is not set), under

* ``lab``: what the lab does unless told otherwise: threads ``auto``, and the wait that importing :mod:`hmspar`
  chooses from a 50 ms look at the CPUs (10,000 spins on idle cores, none beside a busy neighbour; the
  neighbour, started first on idle cores, spins 10,000 times);
* ``spin``: threads ``auto`` (both cores of an idle 2-core machine), GNU OpenMP's default wait (a waiting
  thread spins 300,000 times before it sleeps; set explicitly, since importing :mod:`hmspar` otherwise bounds
  it, see below): the lab's setting until 2026-12-06;
* ``passive``: the same threads with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once);
* ``spin 10k``, ``spin 3k`` and ``spin 1k``: the same threads, a waiting thread spinning for
  ``GOMP_SPINCOUNT`` = 10,000, 3,000 or 1,000 iterations before it sleeps (``spin 10k``: the lab's fixed
  setting of 2026-12-06, :data:`hmspar.OPENMP_SPINCOUNT`);
* ``one thread``: one intra-op thread, so no thread ever waits for another.

``hmspar`` is HMSPAR at the default ``model``/``train`` settings on a synthetic set (800 training rows, 2
channels x 12 periods, 4-channel ``--image-size`` pictures), 150 optimiser steps; ``cnn1d`` is the 1D-CNN of
:mod:`benchmarks.bench_threads`; ``sasrec`` is the recommendation track's SASRec at its defaults on a toy log
(3,000 users, 1,000 items), ``--steps`` optimiser steps. The ``lab`` setting is also timed beside a
neighbour that starts a second after it (its look saw idle cores; the neighbour's sees it). Each row gives the
fit time, its ratio to the same setting alone and the spin count the worker ran with.
Results: ``benchmarks/results/contention_<model>.json``. Run on idle cores: the benchmark brings its own
neighbour.
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
from hmspar import SPIN_MARK

SETTINGS = ("lab", "spin", "passive", "spin 10k", "spin 3k", "spin 1k", "one thread")
#: OpenMP environment of each setting (anything else is removed from the workers' environment).
OMP_ENV = {"spin": {"GOMP_SPINCOUNT": "300000"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
           "spin 10k": {"GOMP_SPINCOUNT": "10000"},
           "spin 3k": {"GOMP_SPINCOUNT": "3000"},
           "spin 1k": {"GOMP_SPINCOUNT": "1000"}}


def _spawn(model: str, setting: str, steps: int, image_size: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "HMSPAR_PARALLEL_JOBS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", SPIN_MARK)}
    env.update(OMP_ENV.get(setting, {}))
    cmd = [sys.executable, "-m", "benchmarks.bench_contention", "--worker", setting, "--model", model,
           "--steps", str(steps), "--image-size", str(image_size)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _worker(model: str, setting: str, steps: int, image_size: int) -> dict:
    return {**_fit(model, setting, steps, image_size),
            "spincount": os.environ.get("GOMP_SPINCOUNT", "passive" if os.environ.get("OMP_WAIT_POLICY") else None)}


def _fit(model: str, setting: str, steps: int, image_size: int) -> dict:
    threads: int | str = 1 if setting == "one thread" else "auto"
    if model == "cnn1d":
        from benchmarks.bench_threads import fit_once

        return fit_once("cnn1d", str(threads), 6000, max(1, steps // 50))
    from hmspar.params import load_params

    fit = (_sasrec if model == "sasrec" else _hmspar)(load_params(), threads, steps, image_size)
    t0, c0 = time.perf_counter(), time.process_time()
    fit()
    return {"fit_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "threads": str(threads)}


def _hmspar(params: dict, threads: int | str, steps: int, image_size: int):
    """HMSPAR at the ``model``/``train`` settings on a synthetic set; returns the fit to time."""
    import numpy as np

    from hmspar.models.registry import make_model

    section = dict(params["model"])
    section["train"] = {**params["train"], "max_steps": steps, "min_steps": steps, "num_threads": threads}
    rng = np.random.default_rng(0)
    n, n_val, C, T = 800, 200, 2, 12
    z = rng.normal(size=n + n_val)
    y = (z + 0.5 * rng.normal(size=n + n_val) > 0).astype(np.int64)
    mask = (rng.random((n + n_val, C, T)) < 1 / (1 + np.exp(-z[:, None, None]))).astype(np.float32)
    X = {"series": (mask * rng.normal(1, 0.3, size=mask.shape)).astype(np.float32), "mask": mask,
         "image": rng.uniform(-1, 1, size=(n + n_val, 2 * C, image_size, image_size)).astype(np.float32),
         "text": rng.normal(size=(n + n_val, 16)).astype(np.float32),
         "static": rng.normal(size=(n + n_val, 5)).astype(np.float32)}
    m = make_model("hmspar", section, 0, where="model")
    return lambda: m.fit({k: v[:n] for k, v in X.items()}, y[:n], {k: v[n:] for k, v in X.items()}, y[n:])


def _sasrec(params: dict, threads: int | str, steps: int, image_size: int):
    """The recommendation track's SASRec at its ``params.yaml`` settings on a toy log (3,000 users, 1,000 items),
    ``steps`` optimiser steps and one validation pass; returns the fit to time (``image_size`` is unused)."""
    from hmspar.config import build
    from hmspar.rec.peers.sasrec import SASRec
    from hmspar.rec.runner import recommender_section
    from hmspar.rec.toy import leave_one_out, toy_log

    section = recommender_section(params, "sasrec", None)  # the shared settings (a toy log is no rec dataset)
    section["train"] = {**section["train"], "max_steps": steps, "min_steps": steps, "eval_every": steps,
                        "num_threads": threads}
    seqs, times, items = toy_log(3000, 1000, 20.0, seed=0)
    train, val, _ = leave_one_out(seqs, times)
    model = SASRec(build(SASRec.Config, section, "rec.recommenders.sasrec"), seed=0)
    return lambda: model.fit(train, items, val)


def _beside(model: str, setting: str, steps: int, image_size: int, neighbour_first: bool) -> dict:
    """One fit beside a neighbour (a fit six times as long, killed once the timed fit ends) that starts 5 s
    before it (``neighbour_first``) or 1 s after it (past the timed fit's look at the CPUs)."""
    timed = None if neighbour_first else _spawn(model, setting, steps, image_size)
    if timed is not None:
        time.sleep(1.0)
    neighbour = _spawn(model, setting, steps * 6, image_size)
    try:
        if timed is None:
            time.sleep(5.0)  # let it start training
            timed = _spawn(model, setting, steps, image_size)
        return worker_result(timed)
    finally:
        neighbour.kill()
        neighbour.communicate()


def run(model: str, steps: int, image_size: int, settings=SETTINGS) -> list[dict]:
    results = []
    for setting in settings:
        timed = {"alone": worker_result(_spawn(model, setting, steps, image_size)),
                 "beside another fit": _beside(model, setting, steps, image_size, neighbour_first=True)}
        if setting == "lab":  # the only setting whose wait depends on who came first
            timed["beside a fit that starts after it"] = _beside(model, setting, steps, image_size,
                                                                 neighbour_first=False)
        for mode, fit in timed.items():
            results.append({"setting": setting, "mode": mode, "fit_s": fit["fit_s"], "cpu_s": fit["cpu_s"],
                            "vs_alone": fit["fit_s"] / timed["alone"]["fit_s"], "spincount": fit["spincount"]})
            print(f"{setting}, {mode}: {fit['fit_s']:.1f} s", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="hmspar", choices=["hmspar", "cnn1d", "sasrec"])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--image-size", type=int, default=24)
    ap.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS), metavar="SETTING",
                    help=f"settings to time (default: all of {', '.join(SETTINGS)})")
    ap.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.model, args.worker, args.steps, args.image_size)))
        return
    record_run(Path(f"benchmarks/results/contention_{args.model}.json"),
               {"model": args.model, "steps": args.steps, "image_size": args.image_size},
               lambda: run(args.model, args.steps, args.image_size, args.settings), ["setting", "mode", "fit_s", "cpu_s", "vs_alone", "spincount"])


if __name__ == "__main__":
    main()

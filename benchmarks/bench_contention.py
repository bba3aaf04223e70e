"""One training process alone and beside a CPU-bound neighbour, under each OpenMP wait policy.

``python -m benchmarks.bench_contention`` fits the 1D-CNN baseline of :mod:`benchmarks.bench_threads` (the
shared Trainer, threads ``auto``: both cores on an idle 2-core machine) in fresh processes and times it

* alone;
* beside a neighbour that is another such fit, already running (what two stages, a stage and the tests, or
  two experiments do to each other);
* beside a neighbour that is a pure Python busy loop (one core's worth of unrelated work);

once with OpenMP's default wait (``spin``: idle threads spin before they sleep; the lab before
``hmspar/__init__.py`` set the policy) and once with the lab's ``OMP_WAIT_POLICY=PASSIVE``. Each row gives the
fit time and its ratio to the same policy's fit alone (the target of issue 26: <= 2.3x beside a neighbour).
Results: ``benchmarks/results/contention.json``. Run on idle cores for figures to quote: the benchmark brings
its own neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._measure import table

RESULTS = Path("benchmarks/results/contention.json")
POLICIES = ("spin", "passive")


def _spawn(policy: str, epochs: int, rows: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "HMSPAR_PARALLEL_JOBS", "OMP_WAIT_POLICY")}
    cmd = [sys.executable, "-m", "benchmarks.bench_contention", "--worker", policy, "--epochs", str(epochs),
           "--rows", str(rows)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _worker(policy: str, rows: int, epochs: int) -> dict:
    import hmspar  # noqa: F401  (sets the lab's wait policy)
    from benchmarks.bench_threads import fit_once

    if policy == "spin":
        os.environ.pop("OMP_WAIT_POLICY")  # before torch loads its OpenMP runtime: the runtime's default
    fit = fit_once("cnn1d", "auto", rows, epochs)
    return {**fit, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)")}


def run(rows: int, epochs: int) -> list[dict]:
    results = []
    for policy in POLICIES:
        alone = _result(_spawn(policy, epochs, rows))
        rows_out = [("alone", alone)]
        neighbour = _spawn(policy, epochs * 4, rows)
        time.sleep(3.0)  # let it start training
        try:
            rows_out.append(("beside a torch fit", _result(_spawn(policy, epochs, rows))))
        finally:
            neighbour.kill()
            neighbour.communicate()
        loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
        try:
            rows_out.append(("beside a busy loop", _result(_spawn(policy, epochs, rows))))
        finally:
            loop.kill()
            loop.wait()
        for label, fit in rows_out:
            results.append({"wait policy": policy, "mode": label, "threads": fit["threads"], "fit_s": fit["fit_s"],
                            "cpu_s": fit["cpu_s"], "vs_alone": fit["fit_s"] / alone["fit_s"]})
            print(f"{policy}, {label}: {fit['fit_s']:.1f} s", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--worker", choices=POLICIES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.rows, args.epochs)))
        return
    load = os.getloadavg()
    rows = run(args.rows, args.epochs)
    record = {"rows": args.rows, "epochs": args.epochs, "load_avg_before": load, "load_avg_after": os.getloadavg(),
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
              "modes": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(table(rows, ["wait policy", "mode", "threads", "fit_s", "cpu_s", "vs_alone"]))
    print(f"load average before: {load}; written {RESULTS}")


if __name__ == "__main__":
    main()

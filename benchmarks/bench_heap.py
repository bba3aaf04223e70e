"""The heap policy of the torch recommenders (:mod:`hmspar.memory`), on and off.

``python -m benchmarks.bench_heap [--dataset fashion] [--models sasrec:100 gru4rec:150 athwe_paper:30]
[--out benchmarks/results/heap_fashion.json]``

Each ``model:steps`` fits the recommender at the dataset's settings (``recommender_section``) for exactly
``steps`` optimiser steps and one validation pass, in a fresh process, once with the policy
(``HMSPAR_HEAP_REUSE=1``) and once without (``0``), one after the other. It reports the fit's wall time, user and
system CPU time, minor page faults and the process's peak memory, and the md5 of the fitted weights, which
must be equal (the policy changes where memory comes from, not the arithmetic). Run it alone on the machine:
another CPU-bound job changes every figure. Needs ``dvc repro rec_convert@<dataset>`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from hmspar.io import write_json

DEFAULT_MODELS = ["sasrec:100", "gru4rec:150", "athwe_paper:30"]

FIT = """
import hashlib, json, resource, sys, time
from pathlib import Path
from hmspar.config import build
from hmspar.params import load_params
from hmspar.rec.data import ProtocolConfig, load
from hmspar.rec.registry import build_recommender
from hmspar.rec.runner import recommender_section

dataset, model, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = load_params()
data = load(Path("data/rec/features") / dataset, build(ProtocolConfig, p["rec"]["protocol"], "rec.protocol"))
section = recommender_section(p, model, dataset)
section["train"] = {**section["train"], "max_steps": steps, "min_steps": steps, "eval_every": steps}
rec = build_recommender(model, section, 0)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
rec.fit(data.train, data.items, data.val)
t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
weights = b"".join(v.detach().cpu().numpy().tobytes() for v in rec.module_.state_dict().values())
print(json.dumps({"fit_s": round(t1 - t0, 2), "user_s": round(r1.ru_utime - r0.ru_utime, 2),
                  "sys_s": round(r1.ru_stime - r0.ru_stime, 2), "minor_faults": r1.ru_minflt - r0.ru_minflt,
                  "peak_rss_mb": r1.ru_maxrss // 1024, "weights_md5": hashlib.md5(weights).hexdigest()}))
"""


def fit(dataset: str, model: str, steps: int, reuse: bool) -> dict:
    """One fit in a fresh interpreter with the policy on or off; its figures."""
    env = {**os.environ, "HMSPAR_HEAP_REUSE": "1" if reuse else "0"}
    proc = subprocess.run([sys.executable, "-c", FIT, dataset, model, str(steps)], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise SystemExit(f"bench_heap: {model} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="model:steps pairs")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/heap_<dataset>.json")
    args = ap.parse_args(argv)
    rows = []
    for item in args.models:
        model, _, steps = item.partition(":")
        if not steps.isdigit():
            ap.error(f"--models: {item!r} is not model:steps")
        off, on = fit(args.dataset, model, int(steps), False), fit(args.dataset, model, int(steps), True)
        row = {"model": model, "steps": int(steps), "off": off, "on": on,
               "speedup": round(off["fit_s"] / on["fit_s"], 3),
               "same_weights": off["weights_md5"] == on["weights_md5"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    write_json(args.out or Path("benchmarks/results") / f"heap_{args.dataset}.json",
               {"dataset": args.dataset, "cpus": len(os.sched_getaffinity(0)), "rows": rows})


if __name__ == "__main__":
    main()

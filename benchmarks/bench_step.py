"""Seconds per optimiser step of the torch recommenders, for the code of this checkout or of another one.

``python -m benchmarks.bench_step [--dataset fashion] [--models athwe_paper:40 mtstrec_paper:40]
[--source DIR] [--out benchmarks/results/step_<dataset>.json]``

Each ``model:steps`` fits the recommender at the dataset's settings (``recommender_section``, this checkout's
``params.yaml``) in a fresh process, without validation, for ``steps`` optimiser steps under the loop's own
thread and heap policies, and times the steps after the first ``WARM`` (the build, the first allocations and the
clustering or table set-up are left out). ``--source`` imports ``hmspar`` from another checkout (a ``git
worktree`` of an earlier commit, say) so that two versions of a model are timed on the same machine, the same
data and the same settings; the row records that checkout's commit. Run it alone on the machine: another
CPU-bound job changes every figure. Needs ``dvc repro rec_convert@<dataset>`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks._measure import commit_of
from hmspar.io import write_json

DEFAULT_MODELS = ["athwe_paper:40", "mtstrec_paper:40"]
#: Steps left out of the timing at the start of a fit.
WARM = 5

FIT = """
import json, sys, time
sys.path.insert(0, sys.argv[5])                    # before the working directory, which python -c puts first
from pathlib import Path
from hmspar.config import build
from hmspar.params import load_params
from hmspar.rec.data import ProtocolConfig, load
from hmspar.rec.registry import build_recommender
from hmspar.rec.runner import recommender_section

dataset, model, steps, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = load_params()
data = load(Path("data/rec/features") / dataset, build(ProtocolConfig, p["rec"]["protocol"], "rec.protocol"))
section = recommender_section(p, model, dataset)
section["train"] = {**section["train"], "max_steps": steps, "min_steps": steps, "eval_every": warm}
rec = build_recommender(model, section, 0)
marks = {}
rec.callback = lambda step, row: marks.setdefault(step, time.perf_counter())
t0 = time.perf_counter()
rec.fit(data.train, data.items, None)
t1 = time.perf_counter()
import hmspar
print(json.dumps({"fit_s": round(t1 - t0, 2), "s_per_step": round((marks[steps] - marks[warm]) / (steps - warm), 4),
                  "hmspar": str(Path(hmspar.__file__).parent.parent)}))
"""


def fit(dataset: str, model: str, steps: int, source: Path) -> dict:
    """One timed fit in a fresh interpreter importing ``hmspar`` from ``source``."""
    proc = subprocess.run([sys.executable, "-c", FIT, dataset, model, str(steps), str(WARM), str(source)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_step: {model} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="model:steps pairs")
    ap.add_argument("--source", type=Path, default=Path("."), help="checkout whose hmspar is timed (default: this one)")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/step_<dataset>.json")
    args = ap.parse_args(argv)
    source = args.source.resolve()
    if not (source / "hmspar" / "__init__.py").is_file():
        ap.error(f"--source: {args.source} holds no hmspar package")
    rows = []
    for item in args.models:
        model, _, steps = item.partition(":")
        if not steps.isdigit() or int(steps) <= WARM:
            ap.error(f"--models: {item!r} is not model:steps with steps > {WARM}")
        row = {"model": model, "steps": int(steps), "source": commit_of(source),
               **fit(args.dataset, model, int(steps), source)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    write_json(args.out or Path("benchmarks/results") / f"step_{args.dataset}.json",
               {"dataset": args.dataset, "cpus": len(os.sched_getaffinity(0)), "rows": rows})


if __name__ == "__main__":
    main()

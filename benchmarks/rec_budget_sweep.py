"""Validation curves of the torch recommenders under several training settings, to choose the step budget.

``python -m benchmarks.rec_budget_sweep --out DIR [--datasets shop shop_dense] [--jobs 8] [--device cuda]``
fits every (dataset, model, setting) of :data:`GRID` once (seed 0) with a long budget and dense evaluation
(``eval_every`` 50, no early stop before ``max_steps``), and writes one JSON per fit: the validation NDCG@10
curve over steps, the fit time, and the test NDCG@10 at the best validation step (printed for the record; the
defaults are chosen on validation alone). Reads converted features from ``data/rec/features/<dataset>``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: (model, overrides of rec.recommenders.<model>.train) fitted on each dataset
GRID = [
    ("sasrec", {"lr": 0.005, "batch_size": 256}),
    ("sasrec", {"lr": 0.002, "batch_size": 256}),
    ("sasrec", {"lr": 0.001, "batch_size": 256}),
    ("sasrec", {"lr": 0.005, "batch_size": 128}),
    ("sasrec", {"lr": 0.002, "batch_size": 128}),
    ("sasrec", {"lr": 0.005, "batch_size": 256, "windows": "last"}),
    ("gru4rec", {"lr": 0.005, "batch_size": 256}),
    ("gru4rec", {"lr": 0.002, "batch_size": 256}),
    ("gru4rec", {"lr": 0.005, "batch_size": 128}),
    ("gru4rec", {"lr": 0.005, "batch_size": 256, "windows": "last"}),
    ("mtstrec", {}),
    ("athwe", {}),
    ("pixelrec", {}),
]

_FIT = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from hmspar.config import build
from hmspar.params import load_params
from hmspar.rec.data import ProtocolConfig, load
from hmspar.rec.evaluate import ndcg, rank_batched
from hmspar.rec.registry import build_recommender
from hmspar.rec.runner import recommender_section
ds, model, over, out, device, max_steps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
params = load_params(); rec = params["rec"]
data = load(Path("data/rec/features") / ds, build(ProtocolConfig, rec["protocol"], "rec.protocol"))
sec = recommender_section(params, model, ds); tr = dict(sec["train"])
tr.update(over); tr.update(max_steps=max_steps, min_steps=max_steps, eval_every=50, device=device, val_max_users=0)
sec["train"] = tr
m = build_recommender(model, sec, 0)
curve = []
t0 = time.perf_counter()
m.callback = lambda step, row: curve.append({"step": step, "t": time.perf_counter() - t0, "val": row.get("val_ndcg@10")})
m.fit(data.train, data.items, data.val)
fit_s = time.perf_counter() - t0
test = float(ndcg(rank_batched(m.score, data.test)["rank"], 10).mean())
json.dump({"dataset": ds, "model": model, "over": over, "fit_s": fit_s, "best_step": m.report_["best_step"],
           "best_val": m.report_["best_val_ndcg@10"], "test_at_best": test, "curve": curve}, open(out, "w"), indent=1)
print(out, round(fit_s, 1), m.report_["best_step"], round(m.report_["best_val_ndcg@10"], 4), round(test, 4), flush=True)
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--datasets", nargs="+", default=["shop", "shop_dense"])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1, help="OMP/MKL threads per fit")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": str(args.threads)}
    jobs = [(ds, model, over) for ds in args.datasets for model, over in GRID]

    def run(i_job):
        i, (ds, model, over) = i_job
        path = out / f"{ds}-{model}-{i:02d}.json"
        proc = subprocess.run([sys.executable, "-c", _FIT, ds, model, json.dumps(over), str(path), args.device,
                               str(args.max_steps)], env=env, capture_output=True, text=True)
        return proc.stdout.strip() or proc.stderr[-2000:]

    t = time.perf_counter()
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(run, enumerate(jobs)):
            print(line, flush=True)
    print(f"total {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()

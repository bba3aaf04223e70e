"""Training variants of the torch recommenders beside the committed main run, with paired bootstrap CIs.

``python -m benchmarks.rec_variants [--jobs JOB ...] [--out benchmarks/results/rec_variants.json]``

A job is ``<dataset>:<model>:<variant>:<seeds>``, e.g. ``shop_dense:sasrec:one_window:0,1,2``; a variant is
one of :data:`VARIANTS` (overrides of the model's ``rec.recommenders.<model>`` section). Each job fits the
variant through the recommend stage's own code path (:func:`hmspar.rec.runner.recommend`, into a temporary
results folder, so nothing under ``results/`` changes) and compares its test NDCG@10 with the main run's
stored ranks of the same model and seeds (``results/rec/<dataset>/<model>/``; fitted here too when the main run
has none): per-seed values, the
difference variant minus main with the track's paired bootstrap over users and seeds, and fit seconds; the
same on the new-item slice (test targets without a training interaction), with the variant's own interval.
Run after ``dvc repro rec_evaluate``; the defaults are the jobs behind the issue-22 closing note; the issue-24
figures came from ``--jobs fashion:mtstrec:item_age:0,1,2 fashion:athwe:item_age:0,1,2
fashion:pixelrec:item_age:0,1,2 --out
benchmarks/results/rec_variants_fashion.json``, and SASRec's with ``--jobs fashion:sasrec:item_age:0,1,2 --out
benchmarks/results/rec_variants_fashion_sasrec.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np

#: variant name -> overrides merged into ``rec.recommenders.<model>`` (``train`` merged key by key)
VARIANTS = {
    "one_window": {"train": {"windows": "last"}},      # the former loop: each user's last max_len + 1 items
    "request_time": {"train": {"request_time": True}},  # the gap from the last interaction to the request
    "item_age": {"item_age": True},                     # every torch model's item-age input (issue 24)
    "id_output": {"output": "id"},                      # MTSTRec/ATHWE scoring candidates by ID only (the former head)
}

DEFAULT_JOBS = ["shop_dense:sasrec:one_window:0,1,2", "shop:athwe:request_time:0", "shop:sasrec:request_time:0",
                "shop:gru4rec:request_time:0"]


def merged(section: dict, over: dict) -> dict:
    out = copy.deepcopy(section)
    for key, value in over.items():
        if isinstance(value, dict):
            out[key] = {**(out.get(key) or {}), **value}
        else:
            out[key] = value
    return out


def run_job(job: str, params: dict, tmp: Path) -> dict:
    from hmspar.config import build
    from hmspar.rec import evaluate as ev
    from hmspar.rec.data import ProtocolConfig, load
    from hmspar.rec.report import RecEvaluateConfig, target_slices
    from hmspar.rec.runner import recommend

    dataset, model, variant, seed_list = job.split(":")
    seeds = [int(s) for s in seed_list.split(",")]
    p = copy.deepcopy(params)
    p["seeds"] = seeds
    main_dir = Path("results/rec") / dataset / model
    if not all((main_dir / f"seed_{s}" / "test_rank.npy").is_file() for s in seeds):
        # no committed main run of this model (e.g. the multimodal models when rec.multimodal_datasets
        # leaves the dataset out): fit the default settings here as well, through the same code path
        main_dir = recommend(dataset, model, p, results_root=tmp / "main", timings_root=tmp / "main_timings")
    p["rec"]["recommenders"][model] = merged(p["rec"]["recommenders"][model], VARIANTS[variant])
    t0 = time.perf_counter()
    out = recommend(dataset, model, p, results_root=tmp / "results", timings_root=tmp / "timings")
    wall = time.perf_counter() - t0
    var = np.stack([ev.ndcg(np.load(out / f"seed_{s}" / "test_rank.npy"), 10) for s in seeds])
    base = np.stack([ev.ndcg(np.load(main_dir / f"seed_{s}" / "test_rank.npy"), 10) for s in seeds])
    cfg = build(RecEvaluateConfig, p["rec"].get("evaluate"), "rec.evaluate")
    boot = ev.paired_bootstrap(var, base, cfg.bootstrap_samples, cfg.confidence, np.random.default_rng(cfg.seed),
                               seeds, seeds)
    fits = json.loads((tmp / "timings" / f"{dataset}-{model}.json").read_text())
    steps = [json.loads((out / f"seed_{s}" / "fit.json").read_text()).get("steps_run") for s in seeds]
    data = load(Path("data/rec/features") / dataset, build(ProtocolConfig, p["rec"]["protocol"], "rec.protocol"))
    n_users = len(data.test)
    new = target_slices(data, cfg)["new_items"]
    slice_new = {"n_targets": int(new.sum())}
    if new.any():
        rng = np.random.default_rng([cfg.seed, 1])
        d_new = ev.paired_bootstrap(var[:, new], base[:, new], cfg.bootstrap_samples, cfg.confidence, rng, seeds, seeds)
        own = ev.paired_bootstrap(var[:, new], np.zeros((1, int(new.sum()))), cfg.bootstrap_samples, cfg.confidence,
                                  rng, seeds, [0])
        slice_new.update({"variant_ndcg@10": [float(v) for v in var[:, new].mean(1)],
                          "main_ndcg@10": [float(v) for v in base[:, new].mean(1)],
                          "variant_ci": [own["ci_low"], own["ci_high"]], "difference": d_new["difference"],
                          "ci_low": d_new["ci_low"], "ci_high": d_new["ci_high"]})
    return {"job": job, "dataset": dataset, "model": model, "variant": variant, "overrides": VARIANTS[variant],
            "seeds": seeds, "n_users": n_users, "variant_ndcg@10": [float(v) for v in var.mean(1)],
            "main_ndcg@10": [float(v) for v in base.mean(1)], "steps_run": steps,
            "fit_s": [fits[str(s)]["fit_s"] for s in seeds], "wall_s": round(wall, 1),
            "difference": boot["difference"], "ci_low": boot["ci_low"], "ci_high": boot["ci_high"],
            "new_items": slice_new}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", nargs="+", default=DEFAULT_JOBS)
    ap.add_argument("--out", default="benchmarks/results/rec_variants.json")
    args = ap.parse_args(argv)
    from hmspar.params import load_params

    params = load_params()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rec_variants_") as tmp:
        for i, job in enumerate(args.jobs):
            rows.append(run_job(job, params, Path(tmp) / str(i)))
            r = rows[-1]
            print(f"{job}: variant {np.mean(r['variant_ndcg@10']):.4f} {r['variant_ndcg@10']} vs main "
                  f"{np.mean(r['main_ndcg@10']):.4f}; diff {r['difference']:+.4f} [{r['ci_low']:+.4f}, "
                  f"{r['ci_high']:+.4f}]; fit s {r['fit_s']}", flush=True)
            nw = r["new_items"]
            if "difference" in nw:
                print(f"  new items ({nw['n_targets']}): variant {np.mean(nw['variant_ndcg@10']):.4f} "
                      f"[{nw['variant_ci'][0]:.4f}, {nw['variant_ci'][1]:.4f}] vs main {np.mean(nw['main_ndcg@10']):.4f}; "
                      f"diff {nw['difference']:+.4f} [{nw['ci_low']:+.4f}, {nw['ci_high']:+.4f}]", flush=True)
            Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

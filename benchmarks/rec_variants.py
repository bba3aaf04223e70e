"""Training variants of the torch recommenders beside the committed main run, with paired bootstrap CIs.

``python -m benchmarks.rec_variants [--jobs JOB ...] [--peers MODEL ...] [--no-main] [--results DIR] [--threads N]
[--pair JOB_A JOB_B] [--out FILE.json]``

A job is ``<dataset>:<model>:<variant>:<seeds>``, e.g. ``shop_dense:sasrec:one_window:0,1,2``; a variant is
one of :data:`VARIANTS` (overrides of the model's ``rec.recommenders.<model>`` section). Each job fits the
variant through the recommend stage's own code path (:func:`hmspar.rec.runner.recommend`, into a temporary
results folder, so nothing under ``results/`` changes) and compares its test NDCG@10 with the main run's
stored ranks of the same model and seeds (``results/rec/<dataset>/<model>/``; fitted here too when the main run
has none, unless ``--no-main``): per-seed values, the
difference variant minus main with the track's paired bootstrap over users and seeds, and fit seconds; the
same on the new-item slice (test targets without a training interaction), with the variant's own interval.
Run after ``dvc repro rec_evaluate``; the defaults are the jobs behind the issue-22 closing note; the issue-24
figures came from ``--jobs fashion:mtstrec:item_age:0,1,2 fashion:athwe:item_age:0,1,2
fashion:pixelrec:item_age:0,1,2 --out
benchmarks/results/rec_variants_fashion.json``, and SASRec's with ``--jobs fashion:sasrec:item_age:0,1,2 --out
benchmarks/results/rec_variants_fashion_sasrec.json``. ``--peers`` compares the variant with other models'
stored ranks of the same seeds as well (the same paired bootstrap; ``dvc repro`` their stages first): the issue-25
MTSTRec figures came from ``--jobs fashion:mtstrec_paper:full_catalogue:0,1,2 --peers sasrec ranker mostpop
--no-main --out benchmarks/results/rec_variants_fashion_mtstrec_paper.json --results <folder>``, after one call per seed
with ``--threads 1`` and the same ``--results`` run side by side. The picture-encoder figures (issue 24, item 2)
came from ``--jobs fashion:pixelrec_paper:lab_vision:0,1,2`` and ``--jobs fashion:pixelrec:lab_frozen_cnn:0,1,2``
(each with ``--peers sasrec ranker mostpop``), after ``dvc repro rec_pictures@fashion``. The GRU4Rec figures (docs/recommendation.md)
came from ``--jobs fashion:gru4rec:dropout_0.5:0,1,2 --peers sasrec ranker mostpop --out
benchmarks/results/rec_variants_fashion_gru4rec.json``, after seed-0 probes of ``eval_10``, ``lr_1e-3`` and
``hidden_128``. What fashion's own settings (``by_dataset``) are worth to the searched numpy peers came from
``--jobs fashion:recent:shared:0,1,2 fashion:ranker:shared:0,1,2 fashion:ease:shared:0,1,2
fashion:itemknn:shared:0,1,2 --peers sasrec --out benchmarks/results/rec_variants_fashion_shared.json``
(variant minus main is the shared settings minus fashion's). ``--pair A B`` compares
two variants already stored under ``--results`` (B minus A, the same bootstrap), after the jobs or alone: the
encoder-with-age figures came from ``--jobs fashion:pixelrec:item_age:0,1,2 fashion:pixelrec:lab_frozen_cnn_age:0,1,2
--results <folder>``, then ``--results <folder> --pair fashion:pixelrec:item_age:0,1,2
fashion:pixelrec:lab_frozen_cnn_age:0,1,2``.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: the variant that drops the dataset's ``by_dataset`` entry (the model's shared settings)
SHARED = "shared"
#: variant name -> overrides merged into the model's settings on the job's dataset (``train`` merged key by key;
#: ``shared`` starts from the settings shared by every dataset instead)
VARIANTS = {
    "one_window": {"train": {"windows": "last"}},      # the former loop: each user's last max_len + 1 items
    "request_time": {"train": {"request_time": True}},  # the gap from the last interaction to the request
    "item_age": {"item_age": True},                     # every torch model's item-age input (issue 24)
    "id_output": {"output": "id"},                      # MTSTRec/ATHWE scoring candidates by ID only (the former head)
    # mtstrec_paper's three departures from the source's objective (docs/recommendation.md): gradient through
    # the candidates, cosine / 0.1, and the cross-entropy over the whole catalogue instead of sampled BCE
    "full_catalogue": {"target_grad": True, "temperature": 0.1, "loss": "softmax"},
    # SASRec's published optimiser setting (lr 1e-3; dropout 0.5 is its setting for sparse logs): is the lab's
    # peer, which peaks at its first evaluation on fashion, tuned as well as its reference?
    "lr_1e-3": {"train": {"lr": 0.001}},
    "sparse": {"dropout": 0.5, "train": {"lr": 0.001}},
    # the published models reading the lab's pretrained picture encoder (rec_pictures@<dataset>) instead of
    # the fixed style descriptor (issue 24, item 2)
    "lab_vision": {"vision": "lab"},
    # the two-tower with the lab's encoder as its picture CNN, kept fixed (a linear map of its vectors learned);
    # cnn_channels and d as rec.picture_encoder's
    "lab_frozen_cnn": {"cnn_channels": [32, 64, 128], "image_weights": "lab", "freeze_image": True},
    # the same with the item-age input: does a better picture reading help once freshness is visible?
    "lab_frozen_cnn_age": {"cnn_channels": [32, 64, 128], "image_weights": "lab", "freeze_image": True,
                           "item_age": True},
    # validation every 10 steps instead of 100: on fashion a pass over the training windows is 9 steps, so the
    # default cadence first looks after 11 passes
    "eval_10": {"train": {"eval_every": 10}},
    # GRU4Rec's dropout at SASRec's sparse-log setting: fashion's about 4 events per item reward regularisation
    "dropout_0.5": {"dropout": 0.5},
    # GRU4Rec at RecBole's hidden size and dropout (hidden 128, dropout 0.3), the lab's learning rate
    "hidden_128": {"hidden": 128, "dropout": 0.3},
    # the settings shared by every dataset, without the dataset's own by_dataset entry: what the entry is worth
    SHARED: {},
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


def missing_seeds(run_dir: Path, seeds: list[int]) -> list[int]:
    """The seeds without ``<run_dir>/seed_<s>/test_rank.npy``."""
    return [s for s in seeds if not (run_dir / f"seed_{s}" / "test_rank.npy").is_file()]


def ndcg_at_10(run_dirs: dict[int, Path]) -> np.ndarray:
    """(S, U) per-seed, per-user test NDCG@10 read from each seed's ``<run_dir>/seed_<s>/test_rank.npy``."""
    from hmspar.rec import evaluate as ev

    return np.stack([ev.ndcg(np.load(d / f"seed_{s}" / "test_rank.npy"), 10) for s, d in run_dirs.items()])


def stored_ndcg(dataset: str, model: str, seeds: list[int]) -> np.ndarray:
    """Per-seed test NDCG@10 of a model's stored main run (``results/rec/<dataset>/<model>/seed_<s>``)."""
    folder = Path("results/rec") / dataset / model
    missing = missing_seeds(folder, seeds)
    if missing:
        raise SystemExit(f"rec_variants: {folder} has no test ranks for seeds {missing}; run "
                         f"`dvc repro` on the {model} stage of {dataset} first")
    return ndcg_at_10({s: folder for s in seeds})


def parse_job(job: str) -> tuple[str, str, str, list[int]]:
    """``<dataset>:<model>:<variant>:<seed,seed,...>`` -> (dataset, model, variant, seeds)."""
    try:
        dataset, model, variant, seed_list = job.split(":")
        return dataset, model, variant, [int(s) for s in seed_list.split(",")]
    except ValueError:
        raise SystemExit(f"rec_variants: job {job!r} is not <dataset>:<model>:<variant>:<seed,seed,...>") from None


def variant_folders(store: Path, dataset: str, model: str, variant: str, seeds: list[int]) -> dict[int, Path]:
    """Each seed's run folder of a variant under ``store`` (one per seed, so that separate processes can fit
    the seeds of one variant and a later call gathers them)."""
    return {s: store / f"{dataset}-{model}-{variant}" / f"seed_{s}" / dataset / model for s in seeds}


def evaluation(dataset: str, params: dict) -> tuple[Any, np.ndarray, int]:
    """``(rec.evaluate settings, new-item mask of the test targets, number of test users)`` of ``dataset``."""
    from hmspar.config import build
    from hmspar.rec.data import ProtocolConfig, load
    from hmspar.rec.report import RecEvaluateConfig, target_slices

    cfg = build(RecEvaluateConfig, params["rec"].get("evaluate"), "rec.evaluate")
    data = load(Path("data/rec/features") / dataset, build(ProtocolConfig, params["rec"]["protocol"], "rec.protocol"))
    return cfg, target_slices(data, cfg)["new_items"], len(data.test)


def compare(var: np.ndarray, base: np.ndarray, new: np.ndarray, cfg: Any, seeds: list[int]) -> dict:
    """``var`` minus ``base`` (per-seed, per-user NDCG@10 of the same users and seeds): the track's paired
    bootstrap overall (``difference``, ``ci_low``, ``ci_high``) and, when there are new-item targets, on them
    (``new_items``)."""
    from hmspar.rec import evaluate as ev

    keys = ("difference", "ci_low", "ci_high")
    boot = ev.paired_bootstrap(var, base, cfg.bootstrap_samples, cfg.confidence,
                               np.random.default_rng(cfg.seed), seeds, seeds)
    out = {k: boot[k] for k in keys}
    if new.any():
        d_new = ev.paired_bootstrap(var[:, new], base[:, new], cfg.bootstrap_samples, cfg.confidence,
                                    np.random.default_rng([cfg.seed, 1]), seeds, seeds)
        out["new_items"] = {k: d_new[k] for k in keys}
    return out


def run_job(job: str, params: dict, tmp: Path, peers: tuple[str, ...] = (), fit_main: bool = True,
            keep: Path | None = None, threads: int | None = None) -> dict:
    from hmspar.rec import evaluate as ev
    from hmspar.rec.runner import recommend, recommender_section

    dataset, model, variant, seeds = parse_job(job)
    if variant not in VARIANTS:
        raise SystemExit(f"rec_variants: unknown variant {variant!r} in job {job!r}; known: {sorted(VARIANTS)}")
    peer_ndcg = {name: stored_ndcg(dataset, name, seeds) for name in peers}  # fail before any fit
    p = copy.deepcopy(params)
    p["seeds"] = seeds
    main_dir: Path | None = Path("results/rec") / dataset / model
    if missing_seeds(main_dir, seeds):
        # no committed main run of this model (e.g. the multimodal models when rec.multimodal_datasets
        # leaves the dataset out): fit the default settings here as well, through the same code path
        main_dir = (recommend(dataset, model, p, results_root=tmp / "main", timings_root=tmp / "main_timings")
                    if fit_main else None)
    base = recommender_section(p, model, None if variant == SHARED else dataset)
    p["rec"]["recommenders"][model] = merged(base, VARIANTS[variant])
    if threads is not None:
        p["rec"]["recommenders"][model].setdefault("train", {})["num_threads"] = threads
    root = tmp if keep is None else keep
    store = root / f"{dataset}-{model}-{variant}"
    folders = variant_folders(root, dataset, model, variant, seeds)
    t0, fitted = time.perf_counter(), False
    for s in seeds:
        if missing_seeds(folders[s], [s]):
            fitted = True
            recommend(dataset, model, {**p, "seeds": [s]}, results_root=store / f"seed_{s}",
                      timings_root=store / f"timings_{s}")
    wall = time.perf_counter() - t0
    var = ndcg_at_10(folders)
    fits = {s: json.loads((store / f"timings_{s}" / f"{dataset}-{model}.json").read_text())[str(s)] for s in seeds}
    fit_logs = [json.loads((folders[s] / f"seed_{s}" / "fit.json").read_text()) for s in seeds]
    cfg, new, n_users = evaluation(dataset, p)

    def against(base: np.ndarray) -> dict:
        """The variant minus ``base`` (per-seed NDCG@10 rows of the same users), overall and on new items."""
        row = {"ndcg@10": [float(v) for v in base.mean(1)], **compare(var, base, new, cfg, seeds)}
        if "new_items" in row:
            row["new_items"] = {"ndcg@10": [float(v) for v in base[:, new].mean(1)], **row["new_items"]}
        return row

    slice_new: dict = {"n_targets": int(new.sum())}
    if new.any():
        own = ev.paired_bootstrap(var[:, new], np.zeros((1, int(new.sum()))), cfg.bootstrap_samples, cfg.confidence,
                                  np.random.default_rng([cfg.seed, 1]), seeds, [0])
        slice_new.update({"variant_ndcg@10": [float(v) for v in var[:, new].mean(1)],
                          "variant_ci": [own["ci_low"], own["ci_high"]]})
    row = {"job": job, "dataset": dataset, "model": model, "variant": variant, "overrides": VARIANTS[variant],
           "seeds": seeds, "n_users": n_users, "variant_ndcg@10": [float(v) for v in var.mean(1)],
           "steps_run": [f.get("steps_run") for f in fit_logs], "best_step": [f.get("best_step") for f in fit_logs],
           "best_val_ndcg@10": [f.get("best_val_ndcg@10") for f in fit_logs],
           "fit_s": [fits[s]["fit_s"] for s in seeds],
           "wall_s": round(wall, 1) if fitted else None}  # None: every seed was read from --results
    if main_dir is not None:
        main = against(ndcg_at_10({s: main_dir for s in seeds}))
        main_fits = [json.loads((main_dir / f"seed_{s}" / "fit.json").read_text()) for s in seeds]
        row.update({"main_ndcg@10": main["ndcg@10"], "difference": main["difference"], "ci_low": main["ci_low"],
                    "ci_high": main["ci_high"],
                    "main_best_val_ndcg@10": [f.get("best_val_ndcg@10") for f in main_fits]})
        if "new_items" in main:
            slice_new.update({"main_ndcg@10": main["new_items"]["ndcg@10"],
                              **{k: main["new_items"][k] for k in ("difference", "ci_low", "ci_high")}})
    row["new_items"] = slice_new
    if peers:
        row["peers"] = {name: against(base) for name, base in peer_ndcg.items()}
    return row


def pair_row(job_a: str, job_b: str, params: dict, store: Path) -> dict:
    """Variant ``job_b`` minus variant ``job_a`` (both fitted into ``store`` by earlier jobs, same dataset, model
    and seeds): the paired bootstrap over users and seeds, overall and on the new-item slice."""
    (dataset, model, variant_a, seeds), (*same_b, variant_b, seeds_b) = parse_job(job_a), parse_job(job_b)
    if same_b != [dataset, model] or seeds_b != seeds:
        raise SystemExit(f"rec_variants: --pair needs two jobs of the same dataset, model and seeds, got "
                         f"{job_a!r} and {job_b!r}")
    ndcg = []
    for variant in (variant_a, variant_b):
        folders = variant_folders(store, dataset, model, variant, seeds)
        missing = [s for s, f in folders.items() if missing_seeds(f, [s])]
        if missing:
            raise SystemExit(f"rec_variants: --pair: variant {variant!r} has no stored ranks for seeds {missing} "
                             f"under {store} (run its job with the same --results first)")
        ndcg.append(ndcg_at_10(folders))
    cfg, new, _ = evaluation(dataset, params)
    row = {"pair": [job_a, job_b], "a_ndcg@10": [float(v) for v in ndcg[0].mean(1)],
           "b_ndcg@10": [float(v) for v in ndcg[1].mean(1)], **compare(ndcg[1], ndcg[0], new, cfg, seeds)}
    if "new_items" in row:
        row["new_items"] = {"n_targets": int(new.sum()), "a_ndcg@10": [float(v) for v in ndcg[0][:, new].mean(1)],
                            "b_ndcg@10": [float(v) for v in ndcg[1][:, new].mean(1)], **row["new_items"]}
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", nargs="+", default=None, help="default: the issue-22 jobs, or none with --pair")
    ap.add_argument("--peers", nargs="*", default=[],
                    help="also compare with these models' stored ranks of the same seeds (results/rec/<dataset>/)")
    ap.add_argument("--no-main", action="store_true",
                    help="do not fit the model's default settings when its main run has no stored ranks")
    ap.add_argument("--results", type=Path, default=None,
                    help="keep the variant's fits here (one folder per seed) and reuse the seeds already there, so "
                         "that seeds fitted by parallel calls are compared together by a last call")
    ap.add_argument("--threads", type=int, default=None, help="the variant's train.num_threads (default: params)")
    ap.add_argument("--pair", nargs=2, action="append", default=[], metavar=("JOB_A", "JOB_B"),
                    help="after the jobs, compare two variants stored under --results (B minus A, paired bootstrap)")
    ap.add_argument("--out", default="benchmarks/results/rec_variants.json")
    args = ap.parse_args(argv)
    if args.pair and args.results is None:
        ap.error("--pair reads the variants' stored ranks: give --results")
    if args.jobs is None:
        args.jobs = [] if args.pair else DEFAULT_JOBS
    from hmspar.params import load_params

    params = load_params()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rec_variants_") as tmp:
        for i, job in enumerate(args.jobs):
            rows.append(run_job(job, params, Path(tmp) / str(i), tuple(args.peers), not args.no_main,
                                args.results, args.threads))
            r = rows[-1]
            print(f"{job}: variant {np.mean(r['variant_ndcg@10']):.4f} {r['variant_ndcg@10']}; best validation "
                  f"{r['best_val_ndcg@10']} at steps {r['best_step']}; fit s {r['fit_s']}", flush=True)
            if "main_ndcg@10" in r:
                print(f"  vs main {np.mean(r['main_ndcg@10']):.4f}: {r['difference']:+.4f} [{r['ci_low']:+.4f}, "
                      f"{r['ci_high']:+.4f}]; main's best validation {r['main_best_val_ndcg@10']}", flush=True)
            for name, peer in r.get("peers", {}).items():
                print(f"  vs {name} {np.mean(peer['ndcg@10']):.4f}: {peer['difference']:+.4f} "
                      f"[{peer['ci_low']:+.4f}, {peer['ci_high']:+.4f}]", flush=True)
            nw = r["new_items"]
            if "variant_ci" in nw:
                print(f"  new items ({nw['n_targets']}): variant {np.mean(nw['variant_ndcg@10']):.4f} "
                      f"[{nw['variant_ci'][0]:.4f}, {nw['variant_ci'][1]:.4f}]", flush=True)
            Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    for job_a, job_b in args.pair:
        rows.append(pair_row(job_a, job_b, params, args.results))
        r = rows[-1]
        print(f"{job_b} minus {job_a}: {r['difference']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]", flush=True)
        if "new_items" in r:
            nw = r["new_items"]
            print(f"  new items ({nw['n_targets']}): {np.mean(nw['a_ndcg@10']):.4f} -> {np.mean(nw['b_ndcg@10']):.4f}, "
                  f"{nw['difference']:+.4f} [{nw['ci_low']:+.4f}, {nw['ci_high']:+.4f}]", flush=True)
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

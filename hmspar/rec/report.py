"""The ``rec_evaluate`` stage's library side: the rec leaderboard (full ranking, the sampled protocol,
beyond-accuracy, slices), the paired bootstrap against the best reference model, the sanity numbers, plots
and the results tables.

Everything is computed from the stored ranks and top-k lists of ``results/rec/<dataset>/<model>/`` and
the dataset's features (training popularity, item embeddings); no model is re-run. The best reference model
(``rec.evaluate.reference_models``) is chosen on *validation* NDCG@10; every other model is compared with it on
test by a paired bootstrap over users and seeds (:func:`hmspar.rec.evaluate.paired_bootstrap`).

The tables are written to ``metrics/rec_results_table.md`` (a generated file that ``docs/recommendation.md``
links to).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import atomic_dir, write_json
from hmspar.rec import evaluate as ev
from hmspar.rec.rerank import mmr_tradeoff, plot_mmr_tradeoff, scores_from_topk
from hmspar.rec.data import ProtocolConfig, load


@dataclasses.dataclass(frozen=True)
class RecEvaluateConfig:
    """``params.yaml: rec.evaluate``.

    Attributes
    ----------
    reference_models : list of str
        Reference peers; every other model (the other references included) is compared with the best of them,
        chosen on validation NDCG@10. A reference fitted on validation targets (``ranker`` with ``fit_on:
        validation``) has an optimistic validation score and would be favoured: it is not eligible as the best
        (listed under ``optimistic_references``), only compared.
    list_k : int
        Length of the lists the beyond-accuracy metrics look at.
    cold_item_threshold : int
        Test targets with fewer training interactions form the cold-item slice.
    short_history : int
        Test users with at most this many training interactions form the short-history slice (their own,
        matched by user: under global_time a test user may have none).
    bootstrap_samples, confidence, seed : int, float, int
        Paired bootstrap over users and seeds.
    curve_ks : list of int
        Cut-offs of the NDCG@k curves (each at most ``rec.protocol.save_k``).
    digits : int
        Decimals in the results tables.
    mmr_models : list of str
        Models whose stored test lists are re-ranked by MMR (:mod:`hmspar.rec.rerank`) for each of
        ``mmr_lambdas``: NDCG@``list_k`` against intra-list diversity (text vectors, else pictures),
        averaged over seeds, in the leaderboard (``mmr``) and as ``plots_rec/mmr/<dataset>-<model>.png``.
    mmr_lambdas : list of float
        MMR trade-offs in [0, 1] (1 = the plain ranking); empty disables MMR.
    """

    reference_models: list[str] = dataclasses.field(
        default_factory=lambda: ["mostpop", "itemknn", "ease", "recent", "ranker"])
    list_k: int = 10
    cold_item_threshold: int = 5
    short_history: int = 5
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    curve_ks: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 5, 10, 20, 50])
    digits: int = 4
    mmr_models: list[str] = dataclasses.field(default_factory=lambda: ["pixelrec"])
    mmr_lambdas: list[float] = dataclasses.field(default_factory=lambda: [1.0, 0.9, 0.8, 0.7, 0.5, 0.3])

    def __post_init__(self) -> None:
        if any(not 0 <= lam <= 1 for lam in self.mmr_lambdas):
            raise ValueError(f"mmr_lambdas must lie in [0, 1], got {self.mmr_lambdas!r}")
        if self.bootstrap_samples < 1:
            raise ValueError(f"bootstrap_samples must be positive, got {self.bootstrap_samples!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence!r}")


def _stat(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
            "per_seed": [float(v) for v in arr]}


#: The statistics of a slice without targets (JSON null rather than NaN).
_EMPTY_SLICE = {"mean": None, "std": None, "per_seed": [], "ci_low": None, "ci_high": None, "n_targets": 0}


def _slice_stat(per_user: np.ndarray, seeds: list[int], cfg: "RecEvaluateConfig", dataset: str, model: str,
                key: str) -> dict[str, Any]:
    """A slice's test NDCG@10 from its (S, U) per-seed, per-target values: mean, std and per-seed means, and
    the bootstrap interval over its users and the model's seeds (the paired bootstrap against zero, so the
    interval carries seed variance exactly as the leaderboard's comparisons do). A slice without targets
    gives :data:`_EMPTY_SLICE`."""
    if per_user.shape[1] == 0:
        return dict(_EMPTY_SLICE)
    rng = np.random.default_rng([cfg.seed, zlib.crc32(dataset.encode()), zlib.crc32(model.encode()),
                                 zlib.crc32(key.encode())])
    res = ev.paired_bootstrap(per_user, np.zeros((1, per_user.shape[1])), cfg.bootstrap_samples, cfg.confidence,
                              rng, seeds, [0])
    return {**_stat(per_user.mean(axis=1)), "ci_low": res["ci_low"], "ci_high": res["ci_high"],
            "n_targets": int(per_user.shape[1])}


def target_slices(data: Any, cfg: RecEvaluateConfig) -> dict[str, np.ndarray]:
    """Boolean masks over the test targets of a loaded dataset (:func:`hmspar.rec.data.load`): new items (no
    training interaction), tail items (1 to ``cold_item_threshold - 1``), cold items (both), warm items, and
    users with at most ``short_history`` training interactions or more. Shared by the leaderboard and the
    modality ablation, so both count the same targets."""
    target_counts = data.train_counts()[data.test.targets]
    cold = target_counts < cfg.cold_item_threshold
    short = data.test_train_lengths() <= cfg.short_history   # test rows need not align with training rows
    return {"new_items": target_counts == 0, "tail_items": (target_counts > 0) & cold, "cold_items": cold,
            "warm_items": ~cold, "short_users": short, "long_users": ~short}


def _load_run(run_dir: Path) -> dict[str, Any]:
    meta = json.loads((run_dir / "meta.json").read_text())
    seeds = {}
    for s in meta["seeds"]:
        d = run_dir / f"seed_{s}"
        seeds[s] = {name: np.load(d / f"{name}.npy") for name in
                    ("val_rank", "val_sampled_rank", "test_rank", "test_sampled_rank", "test_topk")}
    return {"meta": meta, "seeds": seeds}


def evaluate_dataset(dataset: str, models: list[str], features_dir: Path, results_dir: Path,
                     protocol: ProtocolConfig, cfg: RecEvaluateConfig) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Leaderboard entry of one dataset and the per-model NDCG@k curves.

    Returns
    -------
    entry : dict
        ``{"n_users", "n_items", "exclude_seen", "models": {model: {...}}, "comparisons": {...},
        "sanity": {...}}``.
    curves : dict
        model -> (len(curve_ks),) mean test NDCG@k over seeds.
    """
    data = load(features_dir, protocol)
    counts = data.train_counts()
    slice_masks = target_slices(data, cfg)
    cold, short = slice_masks["cold_items"], slice_masks["short_users"]
    has_text = bool(data.meta.get("has_text", True))
    has_pictures = bool(data.meta.get("has_pictures", True))
    pictures = ev.picture_vectors(data.items.image) if has_pictures else None
    text = data.items.text if has_text else None
    top_ks = sorted(protocol.top_k)
    entry: dict[str, Any] = {"n_users": len(data.test), "n_items": data.n_items, "exclude_seen": data.exclude_seen,
                             "n_cold_targets": int(cold.sum()), "n_short_users": int(short.sum()),
                             "slice_sizes": {k: int(v.sum()) for k, v in slice_masks.items()}, "models": {}}
    if protocol.split != "leave_one_out":
        entry["split"] = data.split
    per_user_test: dict[str, np.ndarray] = {}
    seeds_of: dict[str, list[int]] = {}
    val_ndcg: dict[str, float] = {}
    curves = {}
    for model in models:
        run_dir = results_dir / dataset / model
        if not (run_dir / "meta.json").is_file():
            raise HmsparError(f"{run_dir}: no results (run recommend@{dataset}-{model} first)")
        run = _load_run(run_dir)
        ran_split = run["meta"]["protocol"].get("split", "leave_one_out")
        if ran_split != protocol.split:
            raise HmsparError(f"{run_dir}: ranked under split {ran_split!r}, evaluated under {protocol.split!r}")
        if run["meta"]["n_users"] != len(data.test):
            raise HmsparError(f"{run_dir}: ranked {run['meta']['n_users']} users, the protocol keeps "
                              f"{len(data.test)} (stale results? rerun recommend@{dataset}-{model})")
        full, sampled, beyond, vals = {}, {}, {}, []
        for seed, r in run["seeds"].items():
            for key, value in ev.accuracy(r["test_rank"], top_ks).items():
                full.setdefault(key, []).append(value)
            for key, value in ev.accuracy(r["test_sampled_rank"], top_ks).items():
                sampled.setdefault(key, []).append(value)
            lists = r["test_topk"][:, :cfg.list_k].astype(np.int64)
            for key, value in ev.beyond_accuracy(lists, counts, text, pictures).items():
                beyond.setdefault(key, []).append(value)
            vals.append(float(ev.ndcg(r["val_rank"], 10).mean()))
        per_user_test[model] = np.stack([ev.ndcg(r["test_rank"], 10) for r in run["seeds"].values()])
        seeds_of[model] = [int(s) for s in run["seeds"]]
        val_ndcg[model] = float(np.mean(vals))
        curves[model] = np.mean([[ev.ndcg(r["test_rank"], k).mean() for k in cfg.curve_ks]
                                 for r in run["seeds"].values()], axis=0)
        if model in cfg.mmr_models and cfg.mmr_lambdas:
            emb = text if text is not None else pictures
            per_seed = [mmr_tradeoff(scores_from_topk(r["test_topk"], np.load(run_dir / f"seed_{seed}" /
                                                                               "test_topk_scores.npy"), data.n_items),
                                     data.test.targets, emb, cfg.mmr_lambdas, cfg.list_k, protocol.save_k)
                        for seed, r in run["seeds"].items()] if emb is not None else []
            mmr_rows = [{"lambda": rows[0]["lambda"], "ndcg": float(np.mean([r["ndcg"] for r in rows])),
                         "ild": float(np.mean([r["ild"] for r in rows]))} for rows in zip(*per_seed)]
        else:
            mmr_rows = []
        entry["models"][model] = {
            "full": {k: _stat(v) for k, v in full.items()},
            "sampled": {k: _stat(v) for k, v in sampled.items()},
            "beyond": {k: _stat(v) for k, v in beyond.items()},
            "slices": {f"{name}/ndcg@10": _slice_stat(per_user_test[model][:, mask], seeds_of[model], cfg, dataset,
                                                      model, f"{name}/ndcg@10")
                       for name, mask in slice_masks.items()},
            "val_ndcg@10": _stat(vals),
            "seeds": list(run["seeds"]),
        }
        fit_on = (run["meta"].get("config") or {}).get("fit_on")
        if fit_on is not None:
            entry["models"][model]["fit_on"] = fit_on
        if mmr_rows:
            entry["models"][model]["mmr"] = mmr_rows
    refs = [m for m in cfg.reference_models if m in per_user_test]
    # a reference fitted on validation targets has an optimistic validation score: not eligible as the best
    optimistic = [m for m in refs if (entry["models"][m].get("fit_on") == "validation")]
    eligible = [m for m in refs if m not in optimistic]
    comparisons = {}
    if optimistic:
        entry["optimistic_references"] = optimistic
    if eligible:
        refs = eligible
        best_ref = max(refs, key=lambda m: (val_ndcg[m], m))
        rng_seed = [cfg.seed, zlib.crc32(dataset.encode())]
        for model in models:
            if model == best_ref:
                continue
            rng = np.random.default_rng(rng_seed + [zlib.crc32(model.encode())])
            res = ev.paired_bootstrap(per_user_test[model], per_user_test[best_ref], cfg.bootstrap_samples,
                                      cfg.confidence, rng, seeds_of[model], seeds_of[best_ref])
            comparisons[model] = {"versus": best_ref, "metric": "ndcg@10", **res}
        entry["best_reference"] = best_ref
    entry["comparisons"] = comparisons
    entry["sanity"] = sanity(data)
    return entry, curves


def sanity(data: Any) -> dict[str, float]:
    """Leak guard: what shallow signals reach on test (full ranking, the protocol's masking).

    ``popularity_ndcg@10``: MostPop; ``same_category_ndcg@10``: the last item's category first, by
    popularity; ``same_category_rate``: share of test targets in the last item's category;
    ``repeat_rate``: share of test targets already in the history.
    """
    counts = data.train_counts().astype(np.float32)
    pop = counts / max(float(counts.max()), 1.0)
    cat = np.asarray(data.items.category)
    last_cat = cat[data.test.items[:, -1]]
    out = {}
    ranks_pop = ev.rank_batched(lambda h: np.broadcast_to(pop, (len(h), pop.size)).copy(), data.test)["rank"]
    ranks_cat = ev.rank_batched(lambda h: ((cat[None, :] == cat[h.items[:, -1]][:, None]) * 2.0 + pop[None, :])
                                .astype(np.float32), data.test)["rank"]
    out["popularity_ndcg@10"] = float(ev.ndcg(ranks_pop, 10).mean())
    out["same_category_ndcg@10"] = float(ev.ndcg(ranks_cat, 10).mean())
    out["same_category_rate"] = float((cat[data.test.targets] == last_cat).mean())
    out["repeat_rate"] = float((data.test.items == data.test.targets[:, None]).any(axis=1).mean())
    return out


def _fmt(stat: dict[str, Any] | None, digits: int) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    if stat.get("std") is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _fmt_ci(stat: dict[str, Any] | None, digits: int) -> str:
    """``mean [low, high]`` of a slice entry (``–`` for an empty slice)."""
    if not stat or stat.get("mean") is None or stat.get("ci_low") is None:
        return "–"
    return f"{stat['mean']:.{digits}f} [{stat['ci_low']:.{digits}f}, {stat['ci_high']:.{digits}f}]"


def _per_seed(model_entry: dict[str, Any], digits: int) -> str:
    """The per-seed test NDCG@10 of a leaderboard entry, ``seed: value`` joined by commas."""
    values = model_entry["full"]["ndcg@10"].get("per_seed") or []
    seeds = model_entry.get("seeds") or list(range(len(values)))
    return ", ".join(f"{s}: {v:.{digits}f}" for s, v in zip(seeds, values)) or "–"


def render_table(leaderboard: dict[str, Any], digits: int = 4) -> str:
    """Markdown: per dataset, the full-ranking table, the sampled-100 table, beyond-accuracy and slices,
    the bootstrap comparisons and the sanity numbers."""
    lines = []
    for ds, entry in leaderboard.items():
        models = list(entry["models"])
        any_model = entry["models"][models[0]]
        acc_keys = list(any_model["full"])
        lines.append(f"#### `{ds}`: full ranking over all {entry['n_items']} items "
                     f"({entry['n_users']} test users, seen items {'excluded' if entry['exclude_seen'] else 'kept'})")
        lines.append("")
        lines.append("| model | " + " | ".join(k.upper().replace("@", "@") for k in acc_keys) + " | NDCG@10 per seed |")
        lines.append("|---|" + "---|" * (len(acc_keys) + 1))
        best = max(models, key=lambda m: entry["models"][m]["full"]["ndcg@10"]["mean"])
        for m in models:
            e = entry["models"][m]
            cells = [_fmt(e["full"][k], digits) for k in acc_keys] + [_per_seed(e, digits)]
            name = f"**{m}**" if m == best else m
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Cells: mean ± standard deviation over seeds; the last column lists each seed's test NDCG@10.")
        lines.append("")
        lines.append(f"Sampled protocol (secondary, **inflated**: the target ranked among itself and "
                     f"{entry.get('n_negatives', 100)} sampled unseen items):")
        lines.append("")
        lines.append("| model | " + " | ".join(k.upper() for k in acc_keys) + " |")
        lines.append("|---|" + "---|" * len(acc_keys))
        for m in models:
            lines.append(f"| {m} | " + " | ".join(_fmt(entry["models"][m]["sampled"][k], digits) for k in acc_keys) + " |")
        lines.append("")
        bkeys = list(any_model["beyond"])
        skeys = list(any_model["slices"])
        lines.append("Beyond accuracy (top-10 lists):")
        lines.append("")
        lines.append("| model | " + " | ".join(bkeys) + " |")
        lines.append("|---|" + "---|" * len(bkeys))
        for m in models:
            e = entry["models"][m]
            lines.append(f"| {m} | " + " | ".join(_fmt(e["beyond"][k], 3) for k in bkeys) + " |")
        lines.append("")
        sizes = entry.get("slice_sizes") or {}
        lines.append("Slices (test NDCG@10, mean over seeds with the 95 % bootstrap interval over the slice's users "
                     "and the seeds): new items have no training interaction, tail items fewer than the cold-item "
                     "threshold, cold items are both, warm items the rest; short users have short training "
                     "histories. Targets per slice: "
                     + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sizes.items()) + ".")
        lines.append("")
        lines.append("| model | " + " | ".join(k.split("/")[0].replace("_", " ") for k in skeys) + " |")
        lines.append("|---|" + "---|" * len(skeys))
        for m in models:
            e = entry["models"][m]
            lines.append(f"| {m} | " + " | ".join(_fmt_ci(e["slices"][k], 3) for k in skeys) + " |")
        lines.append("")
        if entry["comparisons"]:
            lines.append(f"Test NDCG@10 minus the best reference on validation (`{entry['best_reference']}`): paired "
                         f"bootstrap over users and seeds (the same users for both models, each model's seeds drawn "
                         f"with replacement), so the interval carries the spread between seeds; per-seed "
                         f"differences pair seed s of both models:")
            lines.append("")
            lines.append("| model | difference | CI | one-sided p | per-seed differences | their std |")
            lines.append("|---|---|---|---|---|---|")
            for m, c in entry["comparisons"].items():
                per = c.get("per_seed_differences") or {}
                per_txt = ", ".join(f"{s}: {v:+.{digits}f}" for s, v in per.items()) or "–"
                sd = c.get("per_seed_difference_std")
                lines.append(f"| {m} | {c['difference']:+.{digits}f} | [{c['ci_low']:+.{digits}f}, "
                             f"{c['ci_high']:+.{digits}f}] | {c['p_value_one_sided']:.3f} | {per_txt} | "
                             f"{'–' if sd is None else f'{sd:.{digits}f}'} |")
            lines.append("")
        s = entry["sanity"]
        lines.append(f"Leak guard: popularity alone reaches NDCG@10 {s['popularity_ndcg@10']:.{digits}f}, "
                     f"\"same category as the last item\" {s['same_category_ndcg@10']:.{digits}f}; "
                     f"{100 * s['same_category_rate']:.1f}% of test targets share the last item's category, "
                     f"{100 * s['repeat_rate']:.1f}% were bought before.")
        lines.append("")
        if s.get("oracle"):
            o = s["oracle"]["test"]
            lines.append(f"Oracle (the simulator's latent state, test targets; {o['n_new_item_targets']} of "
                         f"{o['n_targets']} are new items): NDCG@10 of a ranking that knows every latent variable, "
                         "without one term each, and knowing items only by their content (`data/rec/raw/<dataset>/"
                         "meta.json`); what each modality could be worth.")
            lines.append("")
            lines.append("| oracle | all targets | new items | warm items |")
            lines.append("|---|---|---|---|")
            for term, v in o["ndcg@10"].items():
                lines.append(f"| {term} | {v:.3f} | {o['new_item_ndcg@10'][term]:.3f} | "
                             f"{o['warm_item_ndcg@10'][term]:.3f} |")
            content = s["oracle"].get("content") or {}
            if content:
                lines.append("")
                lines.append("Content explains " + ", ".join(f"{k.replace('_r2_from_content', '')} R² {v:.2f}"
                                                             for k, v in content.items()) + ".")
            lines.append("")
    return "\n".join(lines)


def write_csv(path: Path, leaderboard: dict[str, Any]) -> None:
    """One row per dataset, model, protocol and metric: mean and std over seeds."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "model", "group", "metric", "mean", "std"])
    for ds, entry in leaderboard.items():
        for m, e in entry["models"].items():
            for group in ("full", "sampled", "beyond", "slices"):
                for k, st in e[group].items():
                    if st["mean"] is None:  # an empty slice
                        continue
                    w.writerow([ds, m, group, k, f"{st['mean']:.6f}", "" if st["std"] is None else f"{st['std']:.6f}"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())


def write_plots(plots_dir: Path, leaderboard: dict[str, Any], curves: dict[str, dict[str, np.ndarray]],
                curve_ks: list[int]) -> None:
    """``ndcg_at_k/<dataset>-<model>.json`` and ``accuracy_coverage.json`` (DVC plot data), and the
    ``ndcg_at_k.png`` and ``accuracy_coverage.png`` figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with atomic_dir(plots_dir) as tmp:
        (tmp / "ndcg_at_k").mkdir()
        for ds, per in curves.items():
            for m, c in per.items():
                rows = [{"k": int(k), "ndcg": float(v)} for k, v in zip(curve_ks, c)]
                (tmp / "ndcg_at_k" / f"{ds}-{m}.json").write_text(json.dumps(rows, indent=1) + "\n")
        scatter = [{"dataset": ds, "model": m, "coverage": e["beyond"]["coverage"]["mean"],
                    "ndcg@10": e["full"]["ndcg@10"]["mean"]}
                   for ds, entry in leaderboard.items() for m, e in entry["models"].items()]
        (tmp / "accuracy_coverage.json").write_text(json.dumps(scatter, indent=1) + "\n")
        for ds, entry in leaderboard.items():  # MMR: NDCG@10 against intra-list diversity as lambda varies
            for m, e in entry["models"].items():
                if e.get("mmr"):
                    (tmp / "mmr").mkdir(exist_ok=True)
                    (tmp / "mmr" / f"{ds}-{m}.json").write_text(json.dumps(e["mmr"], indent=1) + "\n")
                    plot_mmr_tradeoff(e["mmr"], tmp / "mmr" / f"{ds}-{m}.png", title=f"MMR re-ranking: {m} on {ds}")
        n = len(curves)
        fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.6), squeeze=False)
        for ax, (ds, per) in zip(axes[0], curves.items()):
            for i, (m, c) in enumerate(per.items()):  # past ten models the colours repeat: change the line
                ax.plot(curve_ks, c, marker="os^"[i // 10 % 3], linestyle=("-", "--", ":")[i // 10 % 3], label=m)
            ax.set_xscale("log")
            ax.set_xlabel("k")
            ax.set_ylabel("test NDCG@k (full ranking)")
            ax.set_title(ds)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(tmp / "ndcg_at_k.png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.6), squeeze=False)
        for ax, (ds, entry) in zip(axes[0], leaderboard.items()):
            for m, e in entry["models"].items():
                x, y = e["beyond"]["coverage"]["mean"], e["full"]["ndcg@10"]["mean"]
                ax.scatter([x], [y])
                ax.annotate(m, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel("catalogue coverage of the top-10 lists")
            ax.set_ylabel("test NDCG@10")
            ax.set_title(ds)
        fig.tight_layout()
        fig.savefig(tmp / "accuracy_coverage.png", dpi=110, metadata={"Software": None})
        plt.close(fig)


def _dotted(rec: dict[str, Any], key: str) -> Any:
    """``rec[a][b]...`` for the dotted ``key`` ``a.b``; None where a part is missing."""
    value: Any = rec
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def rec_dataset_list(rec: dict[str, Any], key: str, missing: str = "none") -> list[str]:
    """``rec.<key>`` (a dotted key: ``multimodal_datasets``, ``global_time.datasets``): a list of names of
    ``rec.datasets``, with an error naming the key otherwise; a missing key means no dataset
    (``missing="none"``) or every dataset (``"all"``)."""
    value = _dotted(rec, key)
    datasets = rec.get("datasets") or {}
    if value is None and missing == "all":
        return list(datasets)
    value = [] if value is None else value
    if not isinstance(value, list) or any(ds not in datasets for ds in value):
        raise HmsparError(f"rec.{key}: expected a list of rec.datasets names, got {value!r}")
    return value


def dataset_models(rec: dict[str, Any], dataset: str, secondary: bool = False) -> list[str]:
    """The models run on ``dataset``, as the stage groups run them: ``rec.models`` and
    ``rec.sequential_models`` on every dataset, and ``rec.multimodal_models`` on the datasets of
    ``rec.multimodal_datasets`` (every dataset when the key is missing); with ``secondary`` (the global-time
    runs), ``rec.models`` and ``rec.global_time.sequential_models``."""
    models = rec.get("models") or []
    if not isinstance(models, list) or not models:
        raise HmsparError("rec.models: expected a non-empty list of recommender names")
    if secondary:
        keys = ["global_time.sequential_models"]
    else:
        keys = ["sequential_models"]
        if dataset in rec_dataset_list(rec, "multimodal_datasets", missing="all"):
            keys.append("multimodal_models")
    for key in keys:
        more = _dotted(rec, key) or []
        if not isinstance(more, list):
            raise HmsparError(f"rec.{key}: expected a list of recommender names, got {more!r}")
        models = models + [m for m in more if m not in models]
    return models


def render_split_table(primary: dict[str, Any], secondary: dict[str, Any], digits: int = 4) -> str:
    """Markdown: per dataset of ``secondary`` (the global-time runs), each model's test NDCG@10 and rank
    under leave-one-out beside global time, so a reader sees whether the ranking depends on the protocol."""
    lines = []
    for ds, entry in secondary.items():
        split = entry.get("split", {})
        lines.append(f"#### `{ds}`: leave-one-out beside global time (secondary protocol: one cut-off for every "
                     f"user; {split.get('n_test_users', entry['n_users'])} test users, "
                     f"{split.get('n_val_users', '?')} validation users)")
        lines.append("")
        lines.append("| model | NDCG@10 leave-one-out | rank | NDCG@10 global time | rank |")
        lines.append("|---|---|---|---|---|")
        glob = {m: e["full"]["ndcg@10"]["mean"] for m, e in entry["models"].items()}
        loo = {m: e["full"]["ndcg@10"]["mean"] for m, e in primary.get(ds, {}).get("models", {}).items()}
        rank_g = {m: i + 1 for i, m in enumerate(sorted(glob, key=lambda m: (-glob[m], m)))}
        rank_l = {m: i + 1 for i, m in enumerate(sorted(loo, key=lambda m: (-loo[m], m)))}
        for m in sorted(glob, key=lambda m: (-glob[m], m)):
            e = entry["models"][m]["full"]["ndcg@10"]
            lo = primary.get(ds, {}).get("models", {}).get(m, {}).get("full", {}).get("ndcg@10")
            lines.append(f"| {m} | {_fmt(lo, digits)} | {rank_l.get(m, '–')} | {_fmt(e, digits)} | {rank_g[m]} |")
        lines.append("")
    return "\n".join(lines)


def rec_headline(leaderboard: dict[str, Any], digits: int) -> dict[str, Any]:
    """The rec track's headline (``metrics/rec_headline.json``, what ``dvc metrics show`` prints beside the
    classification track's): ``{"ndcg@10": {dataset: the best model's mean test NDCG@10}}`` under the primary
    protocol (full ranking), one column per dataset. The best is picked on the test means (as the classification
    track's best baseline); which model it is, and every model's figures, are in ``rec_leaderboard.json`` and
    ``rec_results_table.md``."""
    best = {}
    for ds, entry in leaderboard.items():
        means = [e["full"]["ndcg@10"]["mean"] for e in entry["models"].values()
                 if e["full"]["ndcg@10"]["mean"] is not None]
        best[ds] = round(float(max(means)), digits) if means else None
    return {"ndcg@10": best}


def oracle_figures(raw_dir: Path) -> dict[str, Any] | None:
    """The simulator's oracle table from ``<raw_dir>/meta.json`` (``oracle``, the test split, and ``content``):
    what ranking with the latent state reaches, without each term, and with items known only by their content;
    None when the dataset has none (the shop, an imported log)."""
    path = Path(raw_dir) / "meta.json"
    if not path.is_file():
        return None
    meta = json.loads(path.read_text())
    oracle = (meta.get("oracle") or {}).get("test")
    if not oracle:
        return None
    return {"test": oracle, "content": meta.get("content")}


def rec_evaluate(params: dict[str, Any], features_root: Path = Path("data/rec/features"),
                 results_root: Path = Path("results/rec"), metrics_dir: Path = Path("metrics"),
                 plots_dir: Path = Path("plots_rec"), global_root: Path = Path("results/rec_global"),
                 raw_root: Path = Path("data/rec/raw")) -> dict[str, Path]:
    """``rec_evaluate``: every ``rec.datasets`` x its models (:func:`dataset_models`) -> leaderboard, table,
    plots; and the ID and classic models on ``rec.global_time.datasets`` under the global-time split
    (``global_root``) -> the secondary leaderboard ``rec_global_leaderboard.json``, a table section beside
    leave-one-out."""
    rec = params.get("rec")
    if not isinstance(rec, dict):
        raise HmsparError("params.yaml: missing key 'rec'")
    protocol = build(ProtocolConfig, rec.get("protocol"), "rec.protocol")
    cfg = build(RecEvaluateConfig, rec.get("evaluate"), "rec.evaluate")
    if max(cfg.curve_ks) > protocol.save_k or cfg.list_k > protocol.save_k:
        raise HmsparError(f"rec.evaluate.curve_ks and list_k must be at most rec.protocol.save_k = {protocol.save_k}")
    datasets = rec.get("datasets") or {}
    leaderboard, curves = {}, {}
    for ds in datasets:
        leaderboard[ds], curves[ds] = evaluate_dataset(ds, dataset_models(rec, ds), Path(features_root) / ds,
                                                       Path(results_root), protocol, cfg)
        leaderboard[ds]["n_negatives"] = protocol.n_negatives
        oracle = oracle_figures(Path(raw_root) / ds)
        if oracle is not None:
            leaderboard[ds]["sanity"]["oracle"] = oracle
    secondary = {}
    global_protocol = dataclasses.replace(protocol, split="global_time")
    for ds in rec_dataset_list(rec, "global_time.datasets"):
        secondary[ds], _ = evaluate_dataset(ds, dataset_models(rec, ds, secondary=True), Path(features_root) / ds,
                                            Path(global_root), global_protocol, cfg)
        secondary[ds]["n_negatives"] = protocol.n_negatives
    out = {"leaderboard": Path(metrics_dir) / "rec_leaderboard.json",
           "global_leaderboard": Path(metrics_dir) / "rec_global_leaderboard.json",
           "csv": Path(metrics_dir) / "rec_leaderboard.csv",
           "table": Path(metrics_dir) / "rec_results_table.md",
           "headline": Path(metrics_dir) / "rec_headline.json",
           "plots": Path(plots_dir)}
    write_json(out["leaderboard"], leaderboard)
    write_csv(out["csv"], leaderboard)
    table = render_table(leaderboard, cfg.digits)
    if secondary:
        table += ("\n##### Secondary protocol: global time\n\nThe same models with one cut-off time for every "
                  "user (`rec.protocol.split: global_time`): no model learns from events after the test window "
                  "opens. Full tables in `metrics/rec_global_leaderboard.json`.\n\n"
                  + render_split_table(leaderboard, secondary, cfg.digits))
    write_json(out["global_leaderboard"], secondary)
    out["table"].write_text(table + "\n")
    write_json(out["headline"], rec_headline(leaderboard, cfg.digits))
    write_plots(Path(plots_dir), leaderboard, curves, cfg.curve_ks)
    return out

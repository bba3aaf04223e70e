"""The ``rec_ablation_evaluate`` stage's library side: the modality-ablation table and figure from the
``rec_ablation@<dataset>-<model>`` results (no model is re-run).

Per dataset, model and variant: test NDCG@10, HR@10, cold-item and new-item NDCG@10 (full ranking, mean over
``rec.ablation.seeds``), each with its difference to the model's full configuration at the same seeds (the
main run's fits, or a refit when the ablation's seeds or settings differ), and a paired bootstrap over users
(and seeds, when there are several) of the NDCG@10 difference (``rec.evaluate``'s bootstrap settings and
cold-item threshold). Skipped variants are listed with their reason.

Outputs: ``metrics/rec_ablation.json``, ``metrics/rec_ablation.md`` and ``plots_rec_ablation/rec_ablation.png``
(a folder of its own: DVC outputs may not overlap, and ``plots_rec/`` is ``rec_evaluate``'s).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import atomic_dir, write_json
from hmspar.rec import evaluate as ev
from hmspar.rec.ablation_config import FULL, AblationConfig
from hmspar.rec.data import ProtocolConfig, load
from hmspar.rec.report import RecEvaluateConfig, rec_dataset_list, target_slices

METRICS = ("ndcg@10", "hr@10", "cold_ndcg@10", "new_ndcg@10")


def _per_user(run_dir: Path, seeds: list[int], cold: np.ndarray) -> dict[str, np.ndarray]:
    """(S, U) per-seed, per-user NDCG@10 and HR@10 of one variant folder."""
    meta_path = run_dir / "meta.json"
    if not meta_path.is_file():
        raise HmsparError(f"{run_dir}: no results (rerun its rec_ablation stage)")
    meta = json.loads(meta_path.read_text())
    if list(meta["seeds"]) != list(seeds):
        raise HmsparError(f"{run_dir}: fitted at seeds {meta['seeds']}, rec.ablation.seeds is {seeds} "
                          "(stale results? rerun its rec_ablation stage)")
    ranks = [np.load(run_dir / f"seed_{s}" / "test_rank.npy") for s in seeds]
    if any(r.shape != cold.shape for r in ranks):
        raise HmsparError(f"{run_dir}: ranked {ranks[0].shape[0]} users, the protocol keeps {cold.size} "
                          "(stale results? rerun its rec_ablation stage)")
    return {"ndcg": np.stack([ev.ndcg(r, 10) for r in ranks]), "hr": np.stack([ev.hit(r, 10) for r in ranks])}


def _metrics(per_user: dict[str, np.ndarray], cold: np.ndarray, new: np.ndarray) -> dict[str, float | None]:
    """Means over seeds and users; a slice without targets gives None (JSON null)."""
    nd = per_user["ndcg"]
    return {"ndcg@10": float(nd.mean()), "hr@10": float(per_user["hr"].mean()),
            "cold_ndcg@10": float(nd[:, cold].mean()) if cold.any() else None,
            "new_ndcg@10": float(nd[:, new].mean()) if new.any() else None}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _num(value: float | None, digits: int, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def evaluate_ablation(dataset: str, models: list[str], features_dir: Path, results_dir: Path,
                      protocol: ProtocolConfig, cfg: RecEvaluateConfig, seeds: list[int]) -> dict[str, Any]:
    """The ablation entry of one dataset: ``{"n_users", "n_cold_targets", "seeds", "models": {model:
    {variant: row}}}``; a fitted row holds the metrics, ``delta`` (variant minus full) and ``bootstrap``
    (of the NDCG@10 delta), a skipped one ``status: skipped`` and its ``reason``."""
    slices = target_slices(load(features_dir, protocol), cfg)
    cold, new = slices["cold_items"], slices["new_items"]
    entry: dict[str, Any] = {"n_users": int(cold.size), "n_cold_targets": int(cold.sum()),
                             "n_new_targets": int(new.sum()), "cold_item_threshold": cfg.cold_item_threshold,
                             "seeds": list(seeds), "models": {}}
    for model in models:
        model_dir = results_dir / dataset / model
        plan_path = model_dir / "variants.json"
        if not plan_path.is_file():
            raise HmsparError(f"{model_dir}: no ablation results (run rec_ablation@{dataset}-{model} first)")
        plan = json.loads(plan_path.read_text())
        full = _per_user(model_dir / FULL, seeds, cold)
        full_m = _metrics(full, cold, new)
        rows: dict[str, Any] = {FULL: {"status": "fitted", "drops": None, "how": "full model", **full_m}}
        for name, p in plan.items():
            if name == FULL:
                continue
            if p["status"] != "fitted":
                rows[name] = {"status": "skipped", "drops": p["drops"], "reason": p["reason"]}
                continue
            per = _per_user(model_dir / name, seeds, cold)
            m = _metrics(per, cold, new)
            rng = np.random.default_rng([cfg.seed, zlib.crc32(dataset.encode()), zlib.crc32(model.encode()),
                                         zlib.crc32(name.encode())])
            boot = ev.paired_bootstrap(per["ndcg"], full["ndcg"], cfg.bootstrap_samples, cfg.confidence, rng)
            rows[name] = {"status": "fitted", "drops": p["drops"], "how": p["reason"], **m,
                          "delta": {k: _delta(m[k], full_m[k]) for k in METRICS},
                          "bootstrap": {"metric": "ndcg@10", "versus": FULL, **boot}}
        entry["models"][model] = rows
    return entry


def render_ablation(table: dict[str, Any], digits: int = 4) -> str:
    """Markdown: per dataset, one row per model and variant (skipped variants say why)."""
    lines = []
    for ds, entry in table.items():
        seeds = ", ".join(str(s) for s in entry["seeds"])
        several = len(entry["seeds"]) > 1
        lines.append(f"#### `{ds}`: modality ablation (test, full ranking; seed{'s' if several else ''} "
                     f"{seeds}; {entry['n_users']} users, {entry['n_cold_targets']} cold-item targets, "
                     f"{entry.get('n_new_targets', 0)} of them new items)")
        lines.append("")
        over = "users and seeds" if several else "users"
        lines.append("Δ = variant minus the full model at the same seed(s); CI: paired bootstrap over "
                     f"{over} of the NDCG@10 Δ ({int(100 * entry['confidence'])}%). Cold items have fewer than "
                     f"{entry.get('cold_item_threshold', 5)} training interactions, new items none.")
        lines.append("")
        if not entry["models"]:
            lines.append("No model ablated (`rec.ablation.models` is empty).")
            lines.append("")
            continue
        lines.append("| model | variant | dropped via | NDCG@10 | Δ NDCG@10 | CI of Δ | HR@10 | Δ HR@10 | "
                     "cold NDCG@10 | Δ cold | new NDCG@10 | Δ new |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for model, rows in entry["models"].items():
            for name, r in rows.items():
                if r["status"] == "skipped":
                    lines.append(f"| {model} | {name} | skipped: {r['reason']} | – | – | – | – | – | – | – | – | – |")
                    continue
                if name == FULL:
                    lines.append(f"| {model} | **full** | – | {r['ndcg@10']:.{digits}f} | – | – | {r['hr@10']:.{digits}f} "
                                 f"| – | {_num(r['cold_ndcg@10'], digits)} | – | {_num(r.get('new_ndcg@10'), digits)} "
                                 "| – |")
                    continue
                d, b = r["delta"], r["bootstrap"]
                lines.append(f"| {model} | {name} | `{r['how']}` | {r['ndcg@10']:.{digits}f} | {d['ndcg@10']:+.{digits}f} "
                             f"| [{b['ci_low']:+.{digits}f}, {b['ci_high']:+.{digits}f}] | {r['hr@10']:.{digits}f} "
                             f"| {d['hr@10']:+.{digits}f} | {_num(r['cold_ndcg@10'], digits)} "
                             f"| {_num(d['cold_ndcg@10'], digits, True)} | {_num(r.get('new_ndcg@10'), digits)} "
                             f"| {_num(d.get('new_ndcg@10'), digits, True)} |")
        lines.append("")
    return "\n".join(lines)


def plot_ablation(table: dict[str, Any], path: Path) -> None:
    """Per dataset: Δ NDCG@10 (with its bootstrap CI) and Δ cold-item NDCG@10 of every fitted variant,
    grouped by model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(table)
    if n == 0:  # no dataset ablated: a figure that says so, so the page never shows a stale one
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no modality ablation in this run (rec.ablation.models or rec.multimodal_datasets "
                "is empty)", ha="center", va="center", fontsize=8)
        fig.savefig(path, dpi=110, metadata={"Software": None})
        plt.close(fig)
        return
    fig, axes = plt.subplots(n, 2, figsize=(10, 3.6 * n), squeeze=False)
    for row, (ds, entry) in zip(axes, table.items()):
        models = list(entry["models"])
        variants = sorted({v for rows in entry["models"].values() for v in rows if v != FULL})
        width = 0.8 / max(len(variants), 1)
        for ax, key, title in ((row[0], "ndcg@10", "Δ test NDCG@10 vs full (bootstrap CI)"),
                               (row[1], "cold_ndcg@10", "Δ cold-item NDCG@10 vs full")):
            skipped, markers = [], []
            for j, v in enumerate(variants):
                xs, ys, lo, hi = [], [], [], []
                for i, m in enumerate(models):
                    r = entry["models"][m].get(v)
                    x = i + (j - (len(variants) - 1) / 2) * width
                    if r and r["status"] != "fitted":  # e.g. a model without that modality: a short
                        # marker in the bar's own slot on the baseline, the variant named below the axes
                        markers.append((x, j))
                        skipped.append(f"{m}/{v}")
                    if not r or r["status"] != "fitted":
                        continue
                    xs.append(x)
                    ys.append(r["delta"][key] if r["delta"][key] is not None else 0.0)
                    if key == "ndcg@10":
                        lo.append(r["delta"][key] - r["bootstrap"]["ci_low"])
                        hi.append(r["bootstrap"]["ci_high"] - r["delta"][key])
                ax.bar(xs, ys, width, label=v, color=f"C{j}", yerr=[lo, hi] if lo else None, capsize=3)
            ax.axhline(0.0, color="black", linewidth=0.8)
            if markers:  # headroom above the baseline, so a marker stays inside the axes, clear of the title
                y0, y1 = ax.get_ylim()
                pad = 0.08 * (y1 - y0)
                ax.set_ylim(min(y0, -pad), max(y1, pad))
            for x, j in markers:
                ax.text(x, 0.0, "n/a", fontsize=6, ha="center", va="bottom", color=f"C{j}")
            ax.set_xticks(range(len(models)), models)
            ax.set_title(f"{ds}: {title}", fontsize=9)
            if skipped:
                ax.set_xlabel("n/a = variant skipped (reason in the table): " + ", ".join(skipped), fontsize=7)
            if variants:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def rec_ablation_evaluate(params: dict[str, Any], features_root: Path = Path("data/rec/features"),
                          results_root: Path = Path("results/rec_ablation"), metrics_dir: Path = Path("metrics"),
                          plots_dir: Path = Path("plots_rec_ablation")) -> dict[str, Path]:
    """``rec_ablation_evaluate``: every ``rec.multimodal_datasets`` x ``rec.ablation.models`` ablation -> table,
    figure."""
    rec = params.get("rec")
    if not isinstance(rec, dict):
        raise HmsparError("params.yaml: missing key 'rec'")
    protocol = build(ProtocolConfig, rec.get("protocol"), "rec.protocol")
    cfg = build(RecEvaluateConfig, rec.get("evaluate"), "rec.evaluate")
    abl = build(AblationConfig, rec.get("ablation"), "rec.ablation")
    table = {}
    for ds in rec_dataset_list(rec, "multimodal_datasets", missing="all"):
        table[ds] = evaluate_ablation(ds, abl.models, Path(features_root) / ds, Path(results_root), protocol, cfg,
                                      abl.seeds)
        table[ds]["confidence"] = cfg.confidence
    out = {"json": Path(metrics_dir) / "rec_ablation.json", "table": Path(metrics_dir) / "rec_ablation.md",
           "plots": Path(plots_dir)}
    write_json(out["json"], table)
    out["table"].write_text(render_ablation(table, cfg.digits) + "\n")
    with atomic_dir(out["plots"]) as tmp:
        plot_ablation(table, tmp / "rec_ablation.png")
    return out

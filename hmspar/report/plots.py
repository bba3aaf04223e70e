"""Figures and DVC plot data of the evaluate stage.

DVC plot data (read by ``dvc plots show/diff`` through the top-level ``plots:`` of ``dvc.yaml``):

- ``plots/roc/<run>.json``: long-format list of ``{model, fpr, tpr, point}``,
- ``plots/pr/<run>.json``: long-format list of ``{model, recall, precision, point}``,

both from each model's test predictions of seed 0 (the smallest seed when 0 is absent), at most
``curve_points`` points per model (evenly spaced along the curve, end points kept); ``point`` is the
position along the curve, so that a line drawn through the points in that order is the curve.
Multi-class runs get micro-averaged (one-vs-rest, pooled) curves.

- ``plots/confusion/<run>.csv``: ``actual,predicted`` per test entity for HMSPAR's seed 0 at its stored
  threshold (runs without HMSPAR results get no file).

DVC's built-in line templates colour by revision only, so the long-format curves are drawn with the
template :data:`DVC_BY_MODEL_TEMPLATE` (colour by ``model``, dash by revision); save it as
``.dvc/plots/by_model.json`` and use ``template: by_model``.

PNG figures: ``leaderboard_heatmap.png``, ``ablation.png`` and ``gaf_examples.png``. Matplotlib is imported
inside the functions and drawn with the non-interactive Agg canvas (no pyplot, no global state).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.errors import HmsparError
from hmspar.io import atomic_dir

#: Vega-Lite template for ``dvc plots``: one line per model (colour), one dash style per revision.
DVC_BY_MODEL_TEMPLATE: dict[str, Any] = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "data": {"values": "<DVC_METRIC_DATA>"},
    "title": "<DVC_METRIC_TITLE>",
    "width": 360,
    "height": 300,
    "mark": {"type": "line", "tooltip": {"content": "data"}},
    "encoding": {
        "x": {"field": "<DVC_METRIC_X>", "type": "quantitative", "title": "<DVC_METRIC_X_LABEL>",
              "scale": {"domain": [0, 1]}},
        "y": {"field": "<DVC_METRIC_Y>", "type": "quantitative", "title": "<DVC_METRIC_Y_LABEL>",
              "scale": {"domain": [0, 1]}},
        "color": {"field": "model", "type": "nominal"},
        "strokeDash": {"field": "rev", "type": "nominal"},
        "order": {"field": "point", "type": "quantitative"},
    },
}


#: Vega-Lite template for HMSPAR's training curves: one line per curve (colour), free y scale.
DVC_CURVES_TEMPLATE: dict[str, Any] = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "data": {"values": "<DVC_METRIC_DATA>"},
    "title": "<DVC_METRIC_TITLE>",
    "width": 360,
    "height": 300,
    "mark": {"type": "line", "point": True, "tooltip": {"content": "data"}},
    "encoding": {
        "x": {"field": "<DVC_METRIC_X>", "type": "quantitative", "title": "<DVC_METRIC_X_LABEL>"},
        "y": {"field": "<DVC_METRIC_Y>", "type": "quantitative", "title": "<DVC_METRIC_Y_LABEL>",
              "scale": {"zero": False}},
        "color": {"field": "curve", "type": "nominal"},
        "strokeDash": {"field": "rev", "type": "nominal"},
    },
}


# --------------------------------------------------------------------------------------------------
# Curve data.

def write_training_curves(live_root: str | os.PathLike, plots_dir: str | os.PathLike) -> dict[str, Path]:
    """Collect HMSPAR's per-epoch DVCLive curves into ``plots/curves/<run>.json``.

    DVCLive writes ``<live_root>/<run>/seed<k>/plots/metrics/<name>.tsv`` (columns ``step``, ``<name>``);
    each run's curves of every seed become one long-format list of ``{epoch, value, curve}`` records,
    ``curve`` being ``"<name> seed<k>"``, drawn with :data:`DVC_CURVES_TEMPLATE` (``template: curves``).
    Runs without DVCLive output are skipped; the folder is replaced as a whole.
    """
    import pandas as pd

    live_root = Path(live_root)
    written: dict[str, Path] = {}
    with atomic_dir(Path(plots_dir) / "curves") as tmp:
        for run_dir in sorted(p for p in live_root.glob("*") if p.is_dir()) if live_root.exists() else []:
            records = []
            for tsv in sorted(run_dir.glob("seed*/plots/metrics/*.tsv")):
                seed = tsv.parents[2].name
                frame = pd.read_csv(tsv, sep="\t")
                if frame.shape[1] != 2:
                    raise HmsparError(f"{tsv}: expected two columns (step, value), found {list(frame.columns)}")
                for step, value in frame.itertuples(index=False):
                    records.append({"epoch": int(step) + 1, "value": float(value), "curve": f"{tsv.stem} {seed}"})
            if records:
                path = tmp / f"{run_dir.name}.json"
                path.write_text(json.dumps(records, indent=1) + "\n")
                written[f"curves_{run_dir.name}"] = Path(plots_dir) / "curves" / path.name
    return written


def downsample_indices(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` indices of ``range(n)``, evenly spaced, first and last always kept."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))


def _binary_view(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary labels and scores; multi-class predictions are pooled one-vs-rest (micro-average)."""
    if prob.ndim == 1:
        return y, prob
    onehot = (y[:, None] == np.arange(prob.shape[1])[None, :]).astype(np.int64)
    return onehot.ravel(), prob.ravel()


def roc_points(y: np.ndarray, prob: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr)`` in curve order, downsampled to at most ``max_points`` points."""
    from sklearn.metrics import roc_curve

    yb, score = _binary_view(y, prob)
    fpr, tpr, _ = roc_curve(yb, score)
    keep = downsample_indices(fpr.size, max_points)
    return fpr[keep], tpr[keep]


def pr_points(y: np.ndarray, prob: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision-recall curve ``(recall, precision)`` by increasing recall, at most ``max_points`` points."""
    from sklearn.metrics import precision_recall_curve

    yb, score = _binary_view(y, prob)
    precision, recall, _ = precision_recall_curve(yb, score)
    precision, recall = precision[::-1], recall[::-1]
    keep = downsample_indices(recall.size, max_points)
    return recall[keep], precision[keep]


def _reference_seed(seeds: Sequence) -> Any:
    """The seed result used for curves: seed 0, else the smallest seed."""
    by_seed = {r.seed: r for r in seeds}
    return by_seed.get(0, by_seed[min(by_seed)])


def _run_filename(run: str, suffix: str) -> str:
    if not run or "/" in run or "\\" in run or run.startswith("."):
        raise HmsparError(f"run name {run!r} cannot be used as a file name")
    return f"{run}{suffix}"


def write_plot_data(results: list, leaderboard: Mapping[str, Any], plots_dir: str | os.PathLike,
                    max_points: int = 200) -> dict[str, Path]:
    """Write ``roc/``, ``pr/`` and ``confusion/`` under ``plots_dir`` (each folder replaced as a whole).

    Parameters
    ----------
    results : list of hmspar.report.leaderboard.SeedResult
        Every seed result.
    leaderboard : mapping
        Orders the models of each run (best first).
    plots_dir : path
        Output folder (``plots``).
    max_points : int
        Maximum points per model and curve.

    Returns
    -------
    dict
        ``{"roc": path, "pr": path, "confusion": path}`` (the three folders).
    """
    import pandas as pd

    from hmspar.io import write_json
    from hmspar.io import write_text_atomic
    from hmspar.report.leaderboard import HMSPAR, group_results, predicted_labels

    plots_dir = Path(plots_dir)
    groups = group_results(results)
    order = {(r["run"], r["model"]): i for i, r in enumerate(leaderboard["rows"])}
    runs = sorted({run for run, _ in groups})
    out = {name: plots_dir / name for name in ("roc", "pr", "confusion")}
    with atomic_dir(out["roc"]) as roc_dir, atomic_dir(out["pr"]) as pr_dir, \
            atomic_dir(out["confusion"]) as cm_dir:
        for run in runs:
            models = sorted((m for r, m in groups if r == run), key=lambda m: (order.get((run, m), math.inf), m))
            roc, pr = [], []
            for model in models:
                ref = _reference_seed(groups[(run, model)])
                fpr, tpr = roc_points(ref.y, ref.prob, max_points)
                roc += [{"model": model, "fpr": round(float(a), 5), "tpr": round(float(b), 5), "point": i}
                        for i, (a, b) in enumerate(zip(fpr, tpr))]
                rec, prec = pr_points(ref.y, ref.prob, max_points)
                pr += [{"model": model, "recall": round(float(a), 5), "precision": round(float(b), 5), "point": i}
                       for i, (a, b) in enumerate(zip(rec, prec))]
            write_json(roc_dir / _run_filename(run, ".json"), roc)
            write_json(pr_dir / _run_filename(run, ".json"), pr)
            if (run, HMSPAR) in groups:
                ref = _reference_seed(groups[(run, HMSPAR)])
                frame = pd.DataFrame({"actual": ref.y.astype(np.int64), "predicted": predicted_labels(ref)})
                write_text_atomic(cm_dir / _run_filename(run, ".csv"), frame.to_csv(index=False))
    return out


# --------------------------------------------------------------------------------------------------
# PNG figures.


def _new_figure(width: float, height: float):
    """A matplotlib Figure attached to an Agg canvas (no pyplot, no interactive backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: str | os.PathLike) -> Path:
    from hmspar.io import write_bytes_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = Path(path)
    write_bytes_atomic(path, buf.getvalue())
    return path


def _model_order(leaderboard: Mapping[str, Any]) -> list[str]:
    """HMSPAR first, its ablation variants next, then the other models by mean ROC-AUC over runs."""
    from hmspar.report.leaderboard import HMSPAR, is_hmspar

    aucs: dict[str, list[float]] = {}
    for r in leaderboard["rows"]:
        if r["roc_auc"]["mean"] is not None:
            aucs.setdefault(r["model"], []).append(r["roc_auc"]["mean"])
        else:
            aucs.setdefault(r["model"], [])
    return sorted(aucs, key=lambda m: (m != HMSPAR, not is_hmspar(m),
                                       -(float(np.mean(aucs[m])) if aucs[m] else -math.inf), m))


def leaderboard_heatmap(leaderboard: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Models x runs heatmap of the mean test ROC-AUC, every cell annotated, the best model of each run bold.

    Parameters
    ----------
    leaderboard : mapping
        From :func:`hmspar.report.leaderboard.build_leaderboard`.
    path : path
        PNG file to write.

    Returns
    -------
    Path
        ``path``.
    """
    from hmspar.report.leaderboard import runs_of

    models = _model_order(leaderboard)
    runs = runs_of(leaderboard)
    grid = np.full((len(models), len(runs)), np.nan)
    for r in leaderboard["rows"]:
        if r["roc_auc"]["mean"] is not None:
            grid[models.index(r["model"]), runs.index(r["run"])] = r["roc_auc"]["mean"]
    fig = _new_figure(max(6.0, 2.2 + 0.95 * len(runs)), max(3.2, 1.6 + 0.42 * len(models)))
    ax = fig.add_subplot()
    finite = grid[np.isfinite(grid)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax - vmin < 1e-6:
        vmin, vmax = vmin - 0.01, vmax + 0.01
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(runs)), labels=runs, rotation=35, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(models)), labels=models, fontsize=8)
    ax.set_xlabel("run (dataset-task[-group])")
    ax.set_ylabel("model")
    ax.set_title("Test ROC-AUC, mean over seeds (bold: best of the run)")
    best = np.where(np.isfinite(grid).any(axis=0), np.nanargmax(np.where(np.isfinite(grid), grid, -np.inf), axis=0), -1)
    for i in range(len(models)):
        for j in range(len(runs)):
            value = grid[i, j]
            if not np.isfinite(value):
                ax.text(j, i, "–", ha="center", va="center", fontsize=8, color="0.5")
                continue
            light = (value - vmin) / (vmax - vmin) > 0.6
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=7.5,
                    color="black" if light else "white", fontweight="bold" if best[j] == i else "normal")
    fig.colorbar(image, ax=ax, label="test ROC-AUC")
    return _save_png(fig, path)


def ablation_chart(leaderboard: Mapping[str, Any], path: str | os.PathLike) -> Path | None:
    """Grouped bars of the mean test ROC-AUC (± std over seeds) of HMSPAR and its modality variants per run.

    Returns
    -------
    Path or None
        ``path``, or ``None`` (nothing written) when the leaderboard holds no ablation variant.
    """
    from hmspar.report.leaderboard import HMSPAR, is_hmspar

    rows = [r for r in leaderboard["rows"] if is_hmspar(r["model"]) and r["roc_auc"]["mean"] is not None]
    runs = sorted({r["run"] for r in rows if r["model"] != HMSPAR})
    if not runs:
        return None
    rows = [r for r in rows if r["run"] in runs]
    variants = sorted({r["model"] for r in rows}, key=lambda m: (m != HMSPAR, m))
    fig = _new_figure(max(6.5, 2.5 + 0.35 * len(runs) * len(variants)), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / len(variants)
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    lows = []
    for k, variant in enumerate(variants):
        xs, means, stds = [], [], []
        for j, run in enumerate(runs):
            row = next((r for r in rows if r["run"] == run and r["model"] == variant), None)
            if row is None:
                continue
            xs.append(j - 0.4 + width * (k + 0.5))
            means.append(row["roc_auc"]["mean"])
            stds.append(row["roc_auc"]["std"] or 0.0)
        lows += [m - s for m, s in zip(means, stds)]
        ax.bar(xs, means, width=width * 0.95, yerr=stds, capsize=2, label=variant, color=palette(k % 10))
    ax.set_xticks(range(len(runs)), labels=runs, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_ylim(max(0.0, min(lows) - 0.05), 1.0)
    ax.set_xlabel("run")
    ax.set_ylabel("test ROC-AUC (mean ± std over seeds)")
    ax.set_title("HMSPAR modality ablation")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save_png(fig, path)


def _read_example(path: Path) -> dict[str, Any] | None:
    """A dataset's GAF example file (written by its convert/import stage); ``None`` when it has no ISA-GAF."""
    if not path.exists():
        raise HmsparError(f"{path}: missing (run the convert stage first)")
    with np.load(path) as data:
        status = str(data["status"])
        if status == "no_isa_gaf":
            return None
        if status != "ok":
            raise HmsparError(status)
        return {"task": str(data["task"]), "channel": str(data["channel"]), "ids": [str(v) for v in data["ids"]],
                "images": np.asarray(data["images"], dtype=np.float32)}


def gaf_examples(datasets: Sequence[str], examples_root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """For each dataset, the trend and sparsity GASF (channel 0) of one positive and one negative test entity.

    The entities are the first positive and the first negative entity (in stored order) of the test split
    of the dataset's first task (``meta.json: tasks[0]``), picked by the dataset's convert (or import)
    stage into ``<examples_root>/<dataset>.npz`` (:func:`hmspar.convert.gaf_example`). Datasets whose
    images are their own pictures rather than ISA-GAF (the trend dataset) are left out.

    Parameters
    ----------
    datasets : sequence of str
        Dataset names (one figure row each).
    examples_root : path
        ``data/gaf_examples``.
    path : path
        PNG file to write.

    Returns
    -------
    Path
        ``path``.
    """
    examples_root = Path(examples_root)
    read = [(d, _read_example(examples_root / f"{d}.npz")) for d in datasets]
    examples = [(d, ex) for d, ex in read if ex is not None]
    if not examples:
        raise HmsparError("gaf_examples: no dataset with ISA-GAF images to draw")
    fig = _new_figure(11.0, 0.8 + 2.45 * len(examples))
    axes = np.atleast_2d(fig.subplots(len(examples), 4, squeeze=False))
    for row, (dataset, ex) in enumerate(examples):
        image = None
        for k, kind in enumerate(("positive", "negative")):
            entity = ex["ids"][k]
            for c, name in enumerate(("trend", "sparsity")):
                ax = axes[row, 2 * k + c]
                image = ax.imshow(ex["images"][k, c], cmap="RdBu_r", vmin=-1.0, vmax=1.0,
                                  origin="lower", interpolation="nearest")
                ax.set_title(f"{kind} ({ex['task']}={1 if kind == 'positive' else 0})\n"
                             f"id {entity}: {name} GASF", fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
        axes[row, 0].set_ylabel(f"{dataset}\nchannel: {ex['channel']}", fontsize=9)
        fig.colorbar(image, ax=axes[row, :].tolist(), shrink=0.9, label="GASF value")
    fig.suptitle("ISA-GAF examples of test entities (channel 0): trend and sparsity images", fontsize=11)
    return _save_png(fig, path)

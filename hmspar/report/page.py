"""The report page: one self-contained HTML file that a person reads first, drawn offline by Vega.

:func:`write_report` is the ``report`` stage (:mod:`hmspar.pipeline.page`). It reads only what the
evaluate and rec_evaluate stages have written (never the run results themselves), each file a declared
dependency of the stage:

- ``metrics/leaderboard.json`` (required) and ``metrics/significance.json``,
- ``plots/roc/<run>.json``, ``plots/pr/<run>.json``, ``plots/curves/<run>.json`` and
  ``plots/confusion/<run>.csv`` where present,
- the recommendation track's ``metrics/rec_leaderboard.json`` and ``plots_rec/*.png``, when passed in
  (the section is left out otherwise), and its modality ablation ``metrics/rec_ablation.json`` and
  ``plots_rec_ablation/*.png`` when passed in too,
- the PNG figures named in ``evaluate.report.figures``,

and writes ``report/index.html``: the significance of HMSPAR against the best baseline of each run, the
leaderboard (heatmap and per-run tables with confidence intervals over seeds), the modality ablation,
per-run ROC, precision-recall, training curves and confusion matrices, and the recommendation section.
Every chart is a Vega-Lite specification drawn by the vendored Vega builds inlined in the page
(:mod:`hmspar.report.vega`), so the page needs no network and no other file. Its bytes depend on its
inputs and :class:`ReportConfig` only (no date, no host name).

``python -m hmspar.report.page`` rebuilds the page from existing ``metrics/``, ``plots/`` and ``plots_rec/``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import dataclasses
import html
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hmspar.errors import HmsparError
from hmspar.io import write_text_atomic

#: Metrics shown in the leaderboard tables (``mean ± std`` over seeds), in order.
TABLE_METRICS = (("roc_auc", "ROC-AUC"), ("auprc", "AUPRC"), ("f1", "F1"), ("brier", "Brier"))

#: Two-sided Student-t quantiles t(0.975, df) for the 95% interval over seeds (df = seeds - 1).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}

HMSPAR = "hmspar"


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """``params.yaml: evaluate.report`` — what the report page shows and how large it gets.

    Attributes
    ----------
    curve_points : int
        Maximum points per model in each ROC and precision-recall chart of the page (the DVC plot data
        keeps ``evaluate.curve_points``; the page thins it further to stay small).
    plot_width, plot_height : int
        Size in pixels of the plotting area of each per-run chart.
    figures : list of str
        PNG files under ``plots/`` embedded at the end of the page (missing ones are skipped).
    figure_width : int
        Display width in pixels of the embedded figures (they keep their aspect ratio).
    """

    curve_points: int = 60
    plot_width: int = 260
    plot_height: int = 220
    figures: list[str] = dataclasses.field(default_factory=lambda: ["gaf_examples.png"])
    figure_width: int = 900

    def __post_init__(self) -> None:
        checks = (
            ("curve_points", self.curve_points >= 2, "must be at least 2"),
            ("plot_width", 50 <= self.plot_width <= 2000, "must be between 50 and 2000"),
            ("plot_height", 50 <= self.plot_height <= 2000, "must be between 50 and 2000"),
            ("figure_width", 50 <= self.figure_width <= 4000, "must be between 50 and 4000"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise HmsparError(f"evaluate.report.{name}: {rule}, got {getattr(self, name)!r}")
        for i, name in enumerate(self.figures):
            if not name.endswith(".png") or "/" in name or "\\" in name or name.startswith("."):
                raise HmsparError(f"evaluate.report.figures[{i}]: expected a PNG file name in plots/, got {name!r}")


# --------------------------------------------------------------------------------------------------
# Reading evaluate's outputs.


def _read_json(path: Path, required: bool = True) -> Any:
    if not path.exists():
        if required:
            raise HmsparError(f"{path}: missing (the report page is built from evaluate's outputs)")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HmsparError(f"{path}: cannot be read as JSON: {exc}") from None


def _records(path: Path, fields: Sequence[str]) -> list[dict[str, Any]]:
    """A long-format plot data file: a JSON list of objects that each hold ``fields``."""
    data = _read_json(path)
    if not isinstance(data, list):
        raise HmsparError(f"{path}: expected a JSON list of records")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or any(f not in rec for f in fields):
            raise HmsparError(f"{path}: record {i} lacks one of the fields {list(fields)}")
    return data


def _leaderboard_rows(path: Path) -> list[dict[str, Any]]:
    board = _read_json(path)
    rows = board.get("rows") if isinstance(board, dict) else board
    if not isinstance(rows, list):
        raise HmsparError(f"{path}: expected an object with a 'rows' list")
    for i, row in enumerate(rows):
        for key in ("run", "model", "roc_auc"):
            if not isinstance(row, dict) or key not in row:
                raise HmsparError(f"{path}: row {i} lacks the field {key!r}")
    return rows


def thin(n: int, max_points: int) -> list[int]:
    """At most ``max_points`` indices of ``range(n)``, evenly spaced, first and last kept, in order."""
    if n <= max_points:
        return list(range(n))
    return sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})


def curve_values(records: list[dict[str, Any]], x: str, y: str, max_points: int) -> list[dict[str, Any]]:
    """Per model, its points thinned to ``max_points`` (in curve order) as ``{model, x: [...], y: [...]}``.

    The chart flattens the arrays back into points (Vega-Lite ``flatten``), which keeps the page small.
    """
    by_model: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_model.setdefault(str(rec["model"]), []).append(rec)
    out = []
    for model, recs in by_model.items():
        if "point" in recs[0]:
            recs = sorted(recs, key=lambda r: r["point"])
        keep = thin(len(recs), max_points)
        out.append({"model": model, x: [round(float(recs[i][x]), 4) for i in keep],
                    y: [round(float(recs[i][y]), 4) for i in keep]})
    return out


def _confusion_counts(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"actual", "predicted"} <= set(reader.fieldnames):
                raise HmsparError(f"{path}: expected the columns actual, predicted")
            counts: dict[tuple[str, str], int] = {}
            for rec in reader:
                key = (rec["actual"], rec["predicted"])
                counts[key] = counts.get(key, 0) + 1
    except OSError as exc:
        raise HmsparError(f"{path}: cannot be read: {exc.strerror}") from None
    labels = sorted({a for a, _ in counts} | {p for _, p in counts}, key=lambda s: (len(s), s))
    return [{"actual": a, "predicted": p, "count": counts.get((a, p), 0)} for a in labels for p in labels]


# --------------------------------------------------------------------------------------------------
# Vega-Lite specifications.

_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"  # an identifier only: nothing is fetched


#: Ten strong colours, then ten light ones: the first models in page order get the strong ones.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5")


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """One colour per model (in page order), the same on every chart of the page (cycling past 20)."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _color(present: Sequence[str], colors: Mapping[str, str], legend: bool = True) -> dict[str, Any]:
    """Colour encoding of ``model`` listing only the models in the chart, in their page-wide colours."""
    domain = [m for m in colors if m in set(present)]
    enc = {"field": "model", "type": "nominal", "title": "model",
           "scale": {"domain": domain, "range": [colors[m] for m in domain]}}
    if not legend:
        enc["legend"] = None
    return enc


def curve_spec(values: list[dict[str, Any]], x: str, y: str, title: str, colors: Mapping[str, str],
               cfg: ReportConfig, diagonal: bool = False, legend: bool = True,
               labels: tuple[str, str] | None = None) -> dict[str, Any]:
    """Lines of ``y`` against ``x`` per model, from :func:`curve_values` output."""
    x_title, y_title = labels or (x.replace("_", " "), y.replace("_", " "))
    line = {
        "transform": [{"flatten": [x, y]},
                      {"window": [{"op": "row_number", "as": "point"}], "groupby": ["model"]}],
        "mark": {"type": "line", "clip": True},
        "encoding": {
            "x": {"field": x, "type": "quantitative", "title": x_title, "scale": {"domain": [0, 1]}},
            "y": {"field": y, "type": "quantitative", "title": y_title, "scale": {"domain": [0, 1]}},
            "color": _color([v["model"] for v in values], colors, legend),
            "order": {"field": "point", "type": "quantitative"},
            "size": {"condition": {"test": f"datum.model === '{HMSPAR}'", "value": 3}, "value": 1.3},
            "tooltip": [{"field": "model"}, {"field": x, "format": ".3f"}, {"field": y, "format": ".3f"}],
        },
    }
    layers = [line]
    if diagonal:
        layers.insert(0, {"data": {"values": [{x: 0, y: 0}, {x: 1, y: 1}]},
                          "mark": {"type": "line", "color": "#bbb", "strokeDash": [4, 4]},
                          "encoding": {"x": {"field": x, "type": "quantitative"},
                                       "y": {"field": y, "type": "quantitative"}}})
    return {"$schema": _SCHEMA, "title": title, "width": cfg.plot_width, "height": cfg.plot_height,
            "data": {"values": values}, "layer": layers}


def training_spec(records: list[dict[str, Any]], cfg: ReportConfig) -> dict[str, Any]:
    """HMSPAR's per-epoch curves: one small panel per curve name (own y scale), one colour per seed."""
    values = []
    for rec in records:
        name, _, seed = str(rec["curve"]).rpartition(" ")
        if not name:
            name, seed = seed, ""
        values.append({"epoch": rec["epoch"], "value": round(float(rec["value"]), 5), "curve": name, "seed": seed})
    n_curves = max(1, len({v["curve"] for v in values}))
    return {
        "$schema": _SCHEMA, "title": "HMSPAR training curves", "data": {"values": values},
        "facet": {"field": "curve", "type": "nominal", "title": None}, "columns": n_curves,
        "resolve": {"scale": {"y": "independent"}},
        "spec": {
            "width": max(80, cfg.plot_width // 2), "height": cfg.plot_height,
            "mark": {"type": "line", "point": True},
            "encoding": {
                "x": {"field": "epoch", "type": "quantitative", "axis": {"tickMinStep": 1}},
                "y": {"field": "value", "type": "quantitative", "scale": {"zero": False}, "title": None},
                "color": {"field": "seed", "type": "nominal"},
                "tooltip": [{"field": "curve"}, {"field": "seed"}, {"field": "epoch"},
                            {"field": "value", "format": ".4f"}],
            },
        },
    }


def confusion_spec(counts: list[dict[str, Any]], cfg: ReportConfig) -> dict[str, Any]:
    """Confusion matrix of HMSPAR (seed 0, stored threshold) as an annotated heatmap."""
    side = max(120, min(cfg.plot_width, cfg.plot_height) * 2 // 3)
    dark = max((c["count"] for c in counts), default=0) / 2  # white text on the darker half of the scale
    enc = {"x": {"field": "predicted", "type": "ordinal", "axis": {"labelAngle": 0}},
           "y": {"field": "actual", "type": "ordinal"}}
    return {
        "$schema": _SCHEMA, "title": "HMSPAR confusion (test)", "width": side, "height": side,
        "data": {"values": counts}, "encoding": enc,
        "layer": [
            {"mark": "rect", "encoding": {"color": {"field": "count", "type": "quantitative",
                                                    "scale": {"scheme": "blues"}, "legend": None},
                                          "tooltip": [{"field": "actual"}, {"field": "predicted"},
                                                      {"field": "count"}]}},
            {"mark": {"type": "text", "fontSize": 13},
             "encoding": {"text": {"field": "count"},
                          "color": {"condition": {"test": f"datum.count > {dark}", "value": "white"},
                                    "value": "black"}}},
        ],
    }


def heatmap_spec(rows: list[dict[str, Any]], models: Sequence[str]) -> dict[str, Any]:
    """Models x runs heatmap of the mean test ROC-AUC, every cell annotated."""
    values = [{"run": r["run"], "model": r["model"], "auc": round(r["roc_auc"]["mean"], 4)}
              for r in rows if r["roc_auc"].get("mean") is not None]
    runs = sorted({v["run"] for v in values})
    return {
        "$schema": _SCHEMA, "title": "Test ROC-AUC (mean over seeds)", "data": {"values": values},
        "width": {"step": 46}, "height": {"step": 20},
        "encoding": {
            "x": {"field": "run", "type": "nominal", "sort": runs, "title": None,
                  "axis": {"labelAngle": -40, "labelLimit": 220}},
            "y": {"field": "model", "type": "nominal", "sort": list(models), "title": None},
        },
        "layer": [
            {"mark": "rect", "encoding": {"color": {"field": "auc", "type": "quantitative", "title": "ROC-AUC",
                                                    "scale": {"scheme": "viridis"}},
                                          "tooltip": [{"field": "run"}, {"field": "model"},
                                                      {"field": "auc", "format": ".3f"}]}},
            {"mark": {"type": "text", "fontSize": 9},
             "encoding": {"text": {"field": "auc", "format": ".3f"},
                          "color": {"condition": {"test": "datum.auc > 0.8", "value": "black"}, "value": "white"}}},
        ],
    }


def significance_spec(entries: list[dict[str, Any]], confidence: float) -> dict[str, Any]:
    """Per run: HMSPAR minus the best baseline (test ROC-AUC), with its bootstrap interval; zero marked."""
    values = [{"run": e["run"], "difference": e["auc_difference"], "low": e["ci_low"], "high": e["ci_high"],
               "baseline": e["baseline"], "significant": "yes" if e["significant"] else "no"}
              for e in entries if e.get("auc_difference") is not None and e.get("ci_low") is not None]
    color = {"field": "significant", "type": "nominal", "title": "CI above 0",
             "scale": {"domain": ["yes", "no"], "range": ["#2a9d4b", "#d1495b"]}}
    return {
        "$schema": _SCHEMA,
        "title": f"HMSPAR − best baseline, test ROC-AUC ({confidence:.0%} paired-bootstrap CI)",
        "width": 420, "height": {"step": 18}, "data": {"values": values},
        "layer": [
            {"mark": {"type": "rule", "color": "#888", "strokeDash": [4, 3]}, "data": {"values": [{"zero": 0}]},
             "encoding": {"x": {"field": "zero", "type": "quantitative"}}},
            {"mark": "rule", "encoding": {"y": {"field": "run", "type": "nominal", "title": None},
                                         "x": {"field": "low", "type": "quantitative", "title": "AUC difference"},
                                         "x2": {"field": "high"}, "color": color}},
            {"mark": {"type": "point", "filled": True, "size": 50},
             "encoding": {"y": {"field": "run", "type": "nominal"},
                          "x": {"field": "difference", "type": "quantitative"}, "color": color,
                          "tooltip": [{"field": "run"}, {"field": "baseline"},
                                      {"field": "difference", "format": "+.4f"},
                                      {"field": "low", "format": "+.4f"}, {"field": "high", "format": "+.4f"}]}},
        ],
    }


def ablation_spec(rows: list[dict[str, Any]], colors: Mapping[str, str], cfg: ReportConfig) -> dict[str, Any] | None:
    """Mean test ROC-AUC (± std over seeds) of HMSPAR and its modality variants on the ablation runs."""
    hm = [r for r in rows if (r["model"] == HMSPAR or (r["model"].startswith(HMSPAR + "[")
                                                         and r["model"].endswith("]")))
          and r["roc_auc"].get("mean") is not None]
    runs = sorted({r["run"] for r in hm if r["model"] != HMSPAR})
    if not runs:
        return None
    values = []
    for r in hm:
        if r["run"] in runs:
            mean, std = r["roc_auc"]["mean"], r["roc_auc"].get("std") or 0.0
            values.append({"run": r["run"], "model": r["model"], "auc": round(mean, 4),
                           "low": round(mean - std, 4), "high": round(mean + std, 4)})
    variants = sorted({v["model"] for v in values}, key=lambda m: (m != HMSPAR, m))
    lo = min(v["low"] for v in values)
    enc_x = {"x": {"field": "run", "type": "nominal", "title": None, "axis": {"labelAngle": -30}},
             "xOffset": {"field": "model", "type": "nominal", "sort": variants}}
    return {
        "$schema": _SCHEMA, "title": "HMSPAR modality ablation (test ROC-AUC, mean ± std over seeds)",
        "data": {"values": values}, "width": {"step": 16}, "height": cfg.plot_height,
        "layer": [
            {"mark": {"type": "bar", "clip": True}, "encoding": {**enc_x,
                                         "y": {"field": "auc", "type": "quantitative", "title": "test ROC-AUC",
                                               "scale": {"domain": [max(0.0, math.floor((lo - 0.05) * 20) / 20), 1]}},
                                         "color": _color(variants, colors),
                                         "tooltip": [{"field": "run"}, {"field": "model"},
                                                     {"field": "auc", "format": ".3f"}]}},
            {"mark": {"type": "rule", "color": "black"},
             "encoding": {**enc_x, "y": {"field": "low", "type": "quantitative"}, "y2": {"field": "high"}}},
        ],
    }


# --------------------------------------------------------------------------------------------------
# Recommendation track (optional): its leaderboard and plot files, read generically.


def _scalar_or_mean(value: Any) -> Any:
    if isinstance(value, dict) and "mean" in value:
        return value["mean"]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if _is_number(value):
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return html.escape(str(value))


def _mean_std(stat: Mapping[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    std = stat.get("std")
    return f"{stat['mean']:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def seed_interval(stat: Mapping[str, Any] | None, n_seeds: int) -> tuple[float, float] | None:
    """95% interval of a mean over seeds: the row's own ``ci_low``/``ci_high`` when the leaderboard has them,
    else mean ± t(0.975, n-1) · std / √n (Student t), ``None`` with a single seed."""
    if not stat or stat.get("mean") is None:
        return None
    if stat.get("ci_low") is not None and stat.get("ci_high") is not None:
        return float(stat["ci_low"]), float(stat["ci_high"])
    std = stat.get("std")
    if std is None or n_seeds < 2:
        return None
    df = n_seeds - 1
    t = _T975.get(df) or _T975[max(k for k in _T975 if k <= df)]
    half = t * std / math.sqrt(n_seeds)
    return stat["mean"] - half, stat["mean"] + half


def _table(header: Sequence[tuple[str, bool]], rows: Sequence[tuple[Sequence[str], str]]) -> str:
    """``header``: (label, numeric); ``rows``: (escaped cells, css class of the row)."""
    head = "".join(f'<th class="num">{h}</th>' if num else f"<th>{h}</th>" for h, num in header)
    body = []
    for cells, css in rows:
        tds = "".join(f'<td class="num">{c}</td>' if num else f"<td>{c}</td>" for c, (_, num) in zip(cells, header))
        body.append(f'<tr class="{css}">{tds}</tr>' if css else f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Page:
    """Collects HTML blocks and the chart specifications they refer to."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.specs: dict[str, Any] = {}

    def add(self, text: str) -> None:
        self.blocks.append(text)

    def plot(self, spec: dict[str, Any] | None, name: str) -> str:
        if spec is None:
            return ""
        key = f"p{len(self.specs)}"
        self.specs[key] = spec
        return f'<div class="plot" data-spec="{key}" data-name="{html.escape(name)}"></div>'


def _model_order(rows: list[dict[str, Any]]) -> list[str]:
    """HMSPAR, its variants, then the other models by mean ROC-AUC over runs (best first)."""
    aucs: dict[str, list[float]] = {}
    for r in rows:
        aucs.setdefault(r["model"], [])
        if r["roc_auc"].get("mean") is not None:
            aucs[r["model"]].append(r["roc_auc"]["mean"])
    return sorted(aucs, key=lambda m: (m != HMSPAR, not m.startswith(HMSPAR + "["),
                                       -(sum(aucs[m]) / len(aucs[m]) if aucs[m] else -1.0), m))


def _significance_section(page: _Page, significance: Any) -> None:
    page.add('<h2 id="significance">HMSPAR against the best baseline</h2>')
    if not isinstance(significance, dict) or not isinstance(significance.get("runs"), dict):
        page.add('<p class="note">No <code>metrics/significance.json</code>.</p>')
        return
    confidence = float(significance.get("confidence", 0.95))
    entries = [dict(e, run=run) for run, e in sorted(significance["runs"].items()) if isinstance(e, dict)]
    n_sig = sum(bool(e.get("significant")) for e in entries)
    page.add(f'<p class="note">Paired bootstrap over test entities ({significance.get("bootstrap_samples", "?")} '
             f'resamples): HMSPAR beats the best baseline with the {confidence:.0%} interval above zero on '
             f'<b>{n_sig} of {len(entries)}</b> runs. Procedure: <code>metrics/significance.json</code>.</p>')
    page.add('<div class="charts">' + page.plot(significance_spec(entries, confidence), "significance") + "</div>")
    rows = []
    for e in entries:
        seed_aucs = [s for s in e.get("per_seed", []) if isinstance(s, dict)]
        hm = sum(s["hmspar_auc"] for s in seed_aucs) / len(seed_aucs) if seed_aucs else None
        base = sum(s["baseline_auc"] for s in seed_aucs) / len(seed_aucs) if seed_aucs else None
        ci = (f"[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]" if e.get("ci_low") is not None
              and e.get("ci_high") is not None else "–")
        sig = '<span class="yes">yes</span>' if e.get("significant") else '<span class="no">no</span>'
        diff = e.get("auc_difference")
        rows.append(([html.escape(e["run"]), _fmt(hm), html.escape(str(e.get("baseline"))), _fmt(base),
                      "–" if diff is None else f"{diff:+.4f}", ci, _fmt(e.get("p_value_one_sided")), sig,
                      _fmt(len(e.get("seeds", [])))], ""))
    page.add(_table([("run", False), ("HMSPAR", True), ("best baseline", False), ("its AUC", True),
                     ("difference", True), (f"{confidence:.0%} CI", True), ("p (one-sided)", True),
                     ("significant", False), ("seeds", True)], rows))


def _leaderboard_section(page: _Page, rows: list[dict[str, Any]], models: list[str]) -> None:
    page.add('<h2 id="leaderboard">Leaderboard</h2>')
    page.add('<p class="note">Test split; metrics recomputed by evaluate from each run\'s predictions; mean ± std '
             "over seeds; the 95% CI is the Student-t interval of the mean over seeds (– with a single seed; "
             "see the significance table for the paired-bootstrap interval against the best baseline). "
             "Rows of HMSPAR and its variants are shaded. Full table: <code>metrics/leaderboard.csv</code>.</p>")
    page.add('<div class="charts">' + page.plot(heatmap_spec(rows, models), "leaderboard heatmap") + "</div>")
    for run in sorted({r["run"] for r in rows}):
        run_rows = [r for r in rows if r["run"] == run]
        best = max((r for r in run_rows if r["roc_auc"].get("mean") is not None),
                   key=lambda r: r["roc_auc"]["mean"], default=None)
        table_rows = []
        for r in run_rows:
            n_seeds = int(r.get("n_seeds") or len(r.get("seeds") or []) or 1)
            ci = seed_interval(r["roc_auc"], n_seeds)
            cells = [html.escape(r["model"]), html.escape("+".join(r.get("inputs") or []))]
            cells += [_mean_std(r["roc_auc"]), "–" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"]
            cells += [_mean_std(r.get(m)) for m, _ in TABLE_METRICS[1:]]
            cells += [_fmt(n_seeds)]
            css = " ".join(c for c in ("hmspar" if r["model"].startswith(HMSPAR) else "",
                                       "best" if r is best else "") if c)
            table_rows.append((cells, css))
        top = f"{best['model']} {best['roc_auc']['mean']:.3f}" if best else "–"
        page.add(f"<details><summary>{html.escape(run)} — best: {html.escape(top)}</summary>")
        page.add(_table([("model", False), ("inputs", False), ("ROC-AUC", True), ("95% CI", True)]
                        + [(label, True) for _, label in TABLE_METRICS[1:]] + [("seeds", True)], table_rows))
        page.add("</details>")


def _runs_section(page: _Page, rows: list[dict[str, Any]], models: list[str], plots_dir: Path,
                  cfg: ReportConfig) -> None:
    page.add('<h2 id="runs">Per run: ROC, precision-recall, confusion, training curves</h2>')
    page.add(f'<p class="note">Test predictions of seed 0 (the smallest seed when 0 is absent), at most '
             f"{cfg.curve_points} points per model (full data: <code>plots/roc</code>, <code>plots/pr</code>; "
             "<code>dvc plots show</code> draws them all). HMSPAR is the thick line; hover for values.</p>")
    colors = model_colors(models)
    for run in sorted({r["run"] for r in rows}):
        first = next(r for r in rows if r["run"] == run)
        about = ", ".join(f"{k} {html.escape(str(first[k]))}" for k in ("dataset", "task", "group", "n_test")
                          if first.get(k) is not None)
        charts = []
        roc, pr = plots_dir / "roc" / f"{run}.json", plots_dir / "pr" / f"{run}.json"
        if roc.exists():
            values = curve_values(_records(roc, ("model", "fpr", "tpr")), "fpr", "tpr", cfg.curve_points)
            charts.append(page.plot(curve_spec(values, "fpr", "tpr", "ROC", colors, cfg, diagonal=True, legend=False,
                                               labels=("false positive rate", "true positive rate")),
                                    f"{run} ROC"))
        if pr.exists():
            values = curve_values(_records(pr, ("model", "recall", "precision")), "recall", "precision",
                                  cfg.curve_points)
            charts.append(page.plot(curve_spec(values, "recall", "precision", "Precision-recall", colors, cfg),
                                    f"{run} PR"))
        confusion = plots_dir / "confusion" / f"{run}.csv"
        if confusion.exists():
            charts.append(page.plot(confusion_spec(_confusion_counts(confusion), cfg), f"{run} confusion"))
        curves = plots_dir / "curves" / f"{run}.json"
        if curves.exists():
            charts.append(page.plot(training_spec(_records(curves, ("epoch", "value", "curve")), cfg),
                                    f"{run} training curves"))
        page.add(f'<section class="run" id="run-{html.escape(run)}"><h3>{html.escape(run)}</h3>'
                 f'<p class="note">{about}</p><div class="charts">{"".join(charts)}</div></section>')


def _image_tag(path: Path, width: int) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return (f'<figure><img class="figure" style="width:{width}px" alt="{html.escape(path.name)}" '
            f'src="data:{mime};base64,{data}"><figcaption class="note">{html.escape(path.name)}</figcaption></figure>')


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; margin: 0;
       color: #1d2230; background: #fff; }
header { background: #1d3557; color: #fff; padding: 14px 28px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 0; opacity: 0.85; font-size: 13px; }
nav { padding: 8px 28px; background: #f1f4f8; font-size: 13px; border-bottom: 1px solid #dde3ea; }
nav a { margin-right: 16px; color: #1d3557; }
main { padding: 4px 28px 40px 28px; }
h2 { border-bottom: 2px solid #1d3557; padding-bottom: 3px; margin-top: 28px; }
h3 { margin: 18px 0 4px 0; }
p.note { color: #555; font-size: 13px; max-width: 70em; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0 12px 0; }
th, td { padding: 3px 9px; border-bottom: 1px solid #e3e7ed; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.hmspar td { background: #fff7e0; }
tr.best td:first-child { font-weight: bold; }
.yes { color: #1f7a3a; font-weight: bold; } .no { color: #b23a48; }
.charts { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
.plot { min-width: 120px; min-height: 60px; }
.plot-error { color: #b00020; font-size: 12px; white-space: pre-wrap; }
details { margin: 4px 0; } summary { cursor: pointer; font-weight: 600; }
section.run { border-top: 1px solid #e3e7ed; padding-top: 4px; }
img.figure { max-width: 100%; border: 1px solid #e3e7ed; }
"""

# Draws every <div class="plot" data-spec="id"> with vega-embed (SVG renderer); failures are written into the div.
_DRAW_JS = """
(function () {
  var specs = JSON.parse(document.getElementById("hmspar-specs").textContent);
  var divs = Array.prototype.slice.call(document.querySelectorAll("div.plot[data-spec]"));
  var done = 0, failed = 0;
  function finish() {
    if (done + failed === divs.length) {
      document.body.setAttribute("data-plots-drawn", String(done));
      document.body.setAttribute("data-plots-failed", String(failed));
    }
  }
  divs.forEach(function (div) {
    vegaEmbed(div, specs[div.getAttribute("data-spec")], {renderer: "svg", actions: false})
      .then(function () { div.setAttribute("data-drawn", "svg"); done += 1; finish(); })
      .catch(function (err) {
        failed += 1;
        var p = document.createElement("p");
        p.className = "plot-error";
        p.textContent = "plot failed: " + err;
        div.appendChild(p);
        finish();
      });
  });
  finish();
})();
"""



#: Full-ranking and beyond-accuracy columns of the rec table, in display order.
_REC_FULL = ("hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr@10")
_REC_SAMPLED = ("hr@10", "ndcg@10")


def _rec_section(page: _Page, rec_board: Path | None, rec_plots: Path | None, cfg: ReportConfig) -> bool:
    """The recommendation track: per dataset, the full-ranking table (mean ± std over seeds), the sampled-100
    columns (labelled as such), the bootstrap against the best reference, and the rec PNG figures."""
    if rec_board is None or not rec_board.exists():
        return False
    board = _read_json(rec_board)
    if not isinstance(board, dict) or not all(isinstance(e, dict) and isinstance(e.get("models"), dict)
                                              for e in board.values()):
        raise HmsparError(f"{rec_board}: expected {{dataset: {{models: {{model: ...}}}}}} as rec_evaluate writes it")
    page.add('<h2 id="rec">Recommendation track</h2>')
    page.add(f'<p class="note">From <code>{html.escape(rec_board.as_posix())}</code>: full ranking against the '
             "whole catalogue (mean ± std over seeds); the sampled columns rank the target among sampled "
             "negatives only and are shown to make their inflation visible.</p>")
    values = []
    for ds, entry in board.items():
        page.add(f"<h3>{html.escape(str(ds))}</h3>")
        header = ([("model", False)] + [(html.escape(k), True) for k in _REC_FULL]
                  + [(html.escape(f"sampled {k}"), True) for k in _REC_SAMPLED])
        body = []
        for model, e in entry["models"].items():
            full, sampled = e.get("full") or {}, e.get("sampled") or {}
            cells = [html.escape(str(model))]
            for k in _REC_FULL:
                cell = full.get(k)
                mean = _scalar_or_mean(cell)
                std = cell.get("std") if isinstance(cell, dict) else None
                cells.append(_fmt(mean, 4) + (f" ± {std:.4f}" if _is_number(std) else ""))
                if k == "ndcg@10" and _is_number(mean):
                    values.append({"dataset": str(ds), "model": str(model), "value": mean})
            cells += [_fmt(_scalar_or_mean(sampled.get(k)), 4) for k in _REC_SAMPLED]
            body.append((cells, ""))
        page.add(_table(header, body))
        comparisons = entry.get("comparisons") or {}
        if comparisons:
            page.add(f'<p class="note">Paired bootstrap over users and seeds, test NDCG@10 minus the best reference '
                     f'(<code>{html.escape(str(entry.get("best_reference")))}</code>, picked on validation); '
                     "the last column pairs seed <i>s</i> of the model with seed <i>s</i> of the reference:</p>")
            page.add(_table([("model", False), ("difference", True), ("95% CI", True), ("p (one-sided)", True),
                             ("per-seed differences", True)],
                            [([html.escape(str(m)), _fmt(c.get("difference"), 4),
                               f"[{_fmt(c.get('ci_low'), 4)}, {_fmt(c.get('ci_high'), 4)}]",
                               _fmt(c.get("p_value_one_sided"), 3),
                               " / ".join(_fmt(v, 4) for v in (c.get("per_seed_differences") or {}).values())],
                              "") for m, c in comparisons.items()]))
    if values:
        spec = {"$schema": _SCHEMA, "title": "Test NDCG@10 (full ranking)", "data": {"values": values},
                "height": {"step": 14}, "width": cfg.plot_width, "mark": "bar",
                "encoding": {"y": {"field": "model", "type": "nominal", "sort": "-x", "title": None},
                             "x": {"field": "value", "type": "quantitative", "title": "NDCG@10"},
                             "row": {"field": "dataset", "type": "nominal"},
                             "tooltip": [{"field": "model"}, {"field": "value", "format": ".4f"}]}}
        page.add('<div class="charts">' + page.plot(spec, "rec leaderboard") + "</div>")
    if rec_plots is not None and rec_plots.is_dir():
        page.add("".join(_image_tag(f, cfg.figure_width) for f in sorted(rec_plots.glob("*.png"))))
    return True


def _rec_ablation_section(page: _Page, table_path: Path | None, plots_dir: Path | None, cfg: ReportConfig) -> None:
    """The recommenders' modality ablation (``metrics/rec_ablation.json`` as ``rec_ablation_evaluate``
    writes it, and the PNG figures of its ``plots_rec_ablation/``); nothing when the table is absent."""
    if table_path is None or not table_path.exists():
        return
    table = _read_json(table_path)
    if not isinstance(table, dict) or not all(isinstance(e, dict) and isinstance(e.get("models"), dict)
                                              for e in table.values()):
        raise HmsparError(f"{table_path}: expected {{dataset: {{models: {{model: {{variant: ...}}}}}}}} "
                          "as rec_ablation_evaluate writes it")
    page.add('<h3 id="rec-ablation">Modality ablation of the multimodal recommenders</h3>')
    page.add(f'<p class="note">From <code>{html.escape(table_path.as_posix())}</code>: each variant drops one item '
             "modality; Δ is the variant minus the full model refitted at the same seed(s), with a paired "
             "bootstrap CI over users of the NDCG@10 Δ.</p>")
    header = [("model", False), ("variant", False), ("NDCG@10", True), ("Δ NDCG@10", True), ("CI of Δ", True),
              ("HR@10", True), ("cold NDCG@10", True), ("Δ cold", True)]
    for ds, entry in table.items():
        body = []
        for model, rows in entry["models"].items():
            for name, r in rows.items():
                cells = [html.escape(str(model)), html.escape(str(name))]
                if r.get("status") != "fitted":
                    cells += [f"skipped: {html.escape(str(r.get('reason')))}"] + ["–"] * 5
                else:
                    d, b = r.get("delta") or {}, r.get("bootstrap") or {}
                    cells += [_fmt(r.get("ndcg@10"), 4), _fmt(d.get("ndcg@10"), 4),
                              f"[{_fmt(b.get('ci_low'), 4)}, {_fmt(b.get('ci_high'), 4)}]" if b else "–",
                              _fmt(r.get("hr@10"), 4), _fmt(r.get("cold_ndcg@10"), 4), _fmt(d.get("cold_ndcg@10"), 4)]
                body.append((cells, ""))
        page.add(f"<h4>{html.escape(str(ds))}</h4>")
        page.add(_table(header, body))
    if plots_dir is not None and plots_dir.is_dir():
        page.add("".join(_image_tag(f, cfg.figure_width) for f in sorted(plots_dir.glob("*.png"))))


def build_report(metrics_dir: str | os.PathLike, plots_dir: str | os.PathLike,
                 cfg: ReportConfig | None = None, rec_board: str | os.PathLike | None = None,
                 rec_plots: str | os.PathLike | None = None, rec_ablation: str | os.PathLike | None = None,
                 rec_ablation_plots: str | os.PathLike | None = None) -> str:
    """The report page as one HTML string (see the module docstring for what it reads).

    Parameters
    ----------
    metrics_dir : path
        evaluate's ``metrics/`` folder (``leaderboard.json`` required).
    plots_dir : path
        evaluate's ``plots/`` folder.
    cfg : ReportConfig, optional
        ``evaluate.report`` (defaults when omitted).
    rec_board, rec_plots : path, optional
        The recommendation track's ``metrics/rec_leaderboard.json`` and ``plots_rec/`` (the section is left
        out when ``rec_board`` is None or absent). Only files passed in are read: the ``report`` stage
        declares each of them as a dependency.
    rec_ablation, rec_ablation_plots : path, optional
        The recommenders' ``metrics/rec_ablation.json`` and ``plots_rec_ablation/``, shown at the end of the
        recommendation section (left out when the section is, or ``rec_ablation`` is None or absent).

    Returns
    -------
    str
        A complete HTML document with the Vega builds and every chart's data inlined.
    """
    from hmspar.report import vega

    cfg = cfg or ReportConfig()
    metrics_dir, plots_dir = Path(metrics_dir), Path(plots_dir)
    rows = _leaderboard_rows(metrics_dir / "leaderboard.json")
    significance = _read_json(metrics_dir / "significance.json", required=False)
    models = _model_order(rows)
    runs = sorted({r["run"] for r in rows})

    provenance = ""
    table_md = metrics_dir / "results_table.md"
    if table_md.exists():
        match = re.search(r"Generated (\S+) from params `?([0-9a-f]+)`?", table_md.read_text(encoding="utf-8"))
        if match:
            provenance = f" Results generated {match.group(1)} from params {match.group(2)}."

    page = _Page()
    _significance_section(page, significance)
    _leaderboard_section(page, rows, models)
    ablation = ablation_spec(rows, model_colors(models), cfg)
    page.add('<h2 id="ablation">Modality ablation</h2>')
    if ablation is None:
        page.add('<p class="note">No ablation results (the <code>ablation</code> stage adds '
                 "<code>hmspar[&lt;variant&gt;]</code> rows).</p>")
    else:
        page.add('<div class="charts">' + page.plot(ablation, "ablation") + "</div>")
    _runs_section(page, rows, models, plots_dir, cfg)
    has_rec = _rec_section(page, None if rec_board is None else Path(rec_board),
                           None if rec_plots is None else Path(rec_plots), cfg)
    if has_rec:
        _rec_ablation_section(page, None if rec_ablation is None else Path(rec_ablation),
                              None if rec_ablation_plots is None else Path(rec_ablation_plots), cfg)
    figures = [plots_dir / name for name in cfg.figures if (plots_dir / name).is_file()]
    if figures:
        page.add('<h2 id="figures">Figures</h2>')
        page.add("".join(_image_tag(f, cfg.figure_width) for f in figures))

    nav = [("significance", "Significance"), ("leaderboard", "Leaderboard"), ("ablation", "Ablation"),
           ("runs", "Per run")] + ([("rec", "Recommendation")] if has_rec else []) \
        + ([("figures", "Figures")] if figures else [])
    specs_json = (json.dumps(page.specs, separators=(",", ":"), sort_keys=True, allow_nan=False)
                  .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>HMSPAR lab report</title>\n"
        f"<style>{_STYLE}</style>\n{vega.inline_scripts()}\n</head>\n<body>\n"
        "<header><h1>HMSPAR lab report</h1>"
        f"<p>{len(runs)} runs, {len(models)} models; written by the report stage from <code>metrics/</code> "
        f"and <code>plots/</code>; every chart is drawn offline.{html.escape(provenance)}</p></header>\n"
        "<nav>" + "".join(f'<a href="#{a}">{label}</a>' for a, label in nav) + "</nav>\n"
        "<main>\n" + "\n".join(page.blocks) + "\n</main>\n"
        f'<script type="application/json" id="hmspar-specs">{specs_json}</script>\n'
        f"<script>{_DRAW_JS}</script>\n</body>\n</html>\n"
    )


def write_report(metrics_dir: str | os.PathLike, plots_dir: str | os.PathLike, cfg: ReportConfig | None = None,
                 path: str | os.PathLike | None = None, rec_board: str | os.PathLike | None = None,
                 rec_plots: str | os.PathLike | None = None, rec_ablation: str | os.PathLike | None = None,
                 rec_ablation_plots: str | os.PathLike | None = None) -> Path:
    """Build the page (:func:`build_report`) and write it atomically to ``path`` (default
    ``<plots_dir>/report.html``; the ``report`` stage writes ``report/index.html``)."""
    text = build_report(metrics_dir, plots_dir, cfg, rec_board, rec_plots, rec_ablation, rec_ablation_plots)
    path = Path(path) if path is not None else Path(plots_dir) / "report.html"
    write_text_atomic(path, text)
    return path


def main(argv: list[str] | None = None) -> int:
    """Rebuild ``report/index.html`` from existing ``metrics/``, ``plots/`` and ``plots_rec/`` (settings from params)."""
    from hmspar.config import build
    from hmspar.params import load_params

    parser = argparse.ArgumentParser(prog="python -m hmspar.report.page", description=main.__doc__)
    parser.add_argument("--metrics", type=Path, default=Path("metrics"))
    parser.add_argument("--plots", type=Path, default=Path("plots"))
    parser.add_argument("--out", type=Path, default=Path("report/index.html"))
    parser.add_argument("--rec-board", type=Path, default=Path("metrics/rec_leaderboard.json"))
    parser.add_argument("--rec-plots", type=Path, default=Path("plots_rec"))
    parser.add_argument("--rec-ablation", type=Path, default=Path("metrics/rec_ablation.json"))
    parser.add_argument("--rec-ablation-plots", type=Path, default=Path("plots_rec_ablation"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    try:
        section = (load_params(args.params).get("evaluate") or {}) if args.params.exists() else {}
        cfg = build(ReportConfig, section.get("report"), "evaluate.report")
        path = write_report(args.metrics, args.plots, cfg, args.out, args.rec_board, args.rec_plots,
                            args.rec_ablation, args.rec_ablation_plots)
    except HmsparError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which runs could reward fusion, and did HMSPAR collect it: ``metrics/modalities.json`` (written by evaluate).

For every run, from the leaderboard rows (each model's mean test ROC-AUC and the modalities it read) and the
stored test predictions:

``single``        the best model that read one modality only, per modality (``series``, ``text``, ``image``,
                  ``static``): HMSPAR's single-modality ablation variants and any baseline on one input;
                  ``null`` where the run has no such model (the reason is given);
``series_static`` the best non-HMSPAR model that read the series and the static attributes and nothing else
                  (the trees, the sequence baselines at their defaults);
``late_fusion``   the best non-HMSPAR model that also read the text or the image (``lightgbm_text``);
``hmspar``        HMSPAR with all its modalities;
``late_fusion_gain``  late fusion minus series+static, with a paired-bootstrap interval: what the extra
                  modalities are worth to a model that simply concatenates them;
``fusion_gain``   HMSPAR minus ``hmspar[series]`` (its series-only variant, on the ablated runs), with a
                  paired-bootstrap interval: what HMSPAR's own fusion adds to its own series branch.

The intervals follow :data:`hmspar.report.bootstrap.PROCEDURE` (the same resamples for both models and every
shared seed), each comparison with its own stream (:func:`~hmspar.report.bootstrap.run_rng` of ``run|comparison``).
The best models are picked on the test means, as the significance table picks the best baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hmspar.report.bootstrap import paired_bootstrap, run_rng
from hmspar.report.leaderboard import HMSPAR, group_results, is_hmspar, runs_of

MODALITIES = ("series", "text", "image", "static")
EXTRA = ("text", "image")


def _auc(row: Mapping[str, Any]) -> float:
    return row["roc_auc"]["mean"]


def _best(rows: list[Mapping[str, Any]], keep) -> Mapping[str, Any] | None:
    chosen = [r for r in rows if keep(r)]
    return max(chosen, key=lambda r: (_auc(r), r["model"])) if chosen else None


def _cell(row: Mapping[str, Any] | None, why_none: str) -> dict[str, Any] | None:
    if row is None:
        return {"model": None, "reason": why_none}
    return {"model": row["model"], "inputs": list(row["inputs"]), "roc_auc": _auc(row), "std": row["roc_auc"]["std"]}


def _gain(groups, run: str, a: str, b: str, cfg, label: str) -> dict[str, Any]:
    seeds_a = {r.seed: r for r in groups.get((run, a), [])}
    seeds_b = {r.seed: r for r in groups.get((run, b), [])}
    seeds = sorted(set(seeds_a) & set(seeds_b))
    if not seeds:
        return {"a": a, "b": b, "skipped": f"no seed shared by {a!r} and {b!r}"}
    rng = run_rng(cfg.seed, f"{run}|{label}")
    res = paired_bootstrap(seeds_a[seeds[0]].y, [seeds_a[s].prob for s in seeds], [seeds_b[s].prob for s in seeds],
                           cfg.bootstrap_samples, cfg.confidence, rng)
    return {"a": a, "b": b, "seeds": seeds, "difference": res["difference"], "ci_low": res["ci_low"],
            "ci_high": res["ci_high"], "above_zero": bool(res["ci_low"] > 0.0), "below_zero": bool(res["ci_high"] < 0.0)}


def modality_table(results: list, leaderboard: Mapping[str, Any], cfg) -> dict[str, Any]:
    """The content of ``metrics/modalities.json`` (see the module docstring).

    Parameters
    ----------
    results : list of hmspar.report.leaderboard.SeedResult
    leaderboard : mapping
        From :func:`hmspar.report.leaderboard.build_leaderboard`.
    cfg : hmspar.report.leaderboard.EvaluateConfig
        ``bootstrap_samples``, ``confidence`` and ``seed``.
    """
    groups = group_results(results)
    runs: dict[str, Any] = {}
    for run in runs_of(leaderboard):
        rows = [r for r in leaderboard["rows"] if r["run"] == run and r["roc_auc"]["mean"] is not None]
        entry: dict[str, Any] = {"single": {}}
        for m in MODALITIES:
            best = _best(rows, lambda r, m=m: set(r["inputs"]) == {m})
            entry["single"][m] = _cell(best, f"no model of this run read {m} alone")
        series_static = _best(rows, lambda r: not is_hmspar(r["model"]) and set(r["inputs"]) == {"series", "static"})
        late = _best(rows, lambda r: not is_hmspar(r["model"]) and "series" in r["inputs"]
                     and any(m in r["inputs"] for m in EXTRA))
        full = next((r for r in rows if r["model"] == HMSPAR), None)
        entry["series_static"] = _cell(series_static, "no baseline read exactly series + static")
        entry["late_fusion"] = _cell(late, "no baseline read the series with text or image")
        entry["hmspar"] = _cell(full, "HMSPAR did not run")
        if series_static is not None and late is not None:
            entry["late_fusion_gain"] = _gain(groups, run, late["model"], series_static["model"], cfg, "late_fusion")
        else:
            entry["late_fusion_gain"] = {"skipped": "needs a late-fusion and a series + static baseline"}
        series_only = f"{HMSPAR}[series]"
        if full is not None and any(r["model"] == series_only for r in rows):
            entry["fusion_gain"] = _gain(groups, run, HMSPAR, series_only, cfg, "fusion")
        else:
            entry["fusion_gain"] = {"skipped": f"needs {HMSPAR!r} and its ablation variant {series_only!r}"}
        runs[run] = entry
    late_gains = [e["late_fusion_gain"] for e in runs.values() if "difference" in e["late_fusion_gain"]]
    return {
        "procedure": "paired bootstrap over test entities, pooled over shared seeds (metrics/significance.json)",
        "metric": "test ROC-AUC",
        "bootstrap_samples": cfg.bootstrap_samples,
        "confidence": cfg.confidence,
        "summary": {
            "runs": len(runs),
            "late_fusion_gain_at_least_0.02": sum(g["difference"] >= 0.02 for g in late_gains),
            "late_fusion_gain_above_zero": sum(g["above_zero"] for g in late_gains),
            "fusion_gain_above_zero": sum(e["fusion_gain"].get("above_zero", False) for e in runs.values()),
            "fusion_gain_below_zero": sum(e["fusion_gain"].get("below_zero", False) for e in runs.values()),
        },
        "runs": runs,
    }

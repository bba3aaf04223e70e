"""Leaderboard of whatever runs have finished, while a long ``dvc repro`` is still going.

``python -m benchmarks.partial_results [--runs RUN ...] [--results results] [--out FILE.md]`` reads the
seed outputs present under ``results/`` with the same code the ``evaluate`` stage uses
(:func:`hmspar.report.leaderboard.discover_results`, :func:`~hmspar.report.leaderboard.build_leaderboard`,
:func:`hmspar.report.bootstrap.significance`) and prints, per run, every model's test ROC-AUC, accuracy
and balanced accuracy (mean ± std over seeds, classes predicted), then HMSPAR against the best baseline
with the paired-bootstrap CI of the AUC difference. Nothing is written under ``metrics/``: this is a
progress view, not a stage; the ``evaluate`` stage stays the one source of the committed leaderboard.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hmspar.params import load_params


def _fmt(cell: dict, digits: int = 3) -> str:
    mean, std = cell.get("mean"), cell.get("std")
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def table(results_dir: Path, runs: list[str] | None, params_path: Path) -> str:
    """Markdown tables (models per run, then HMSPAR vs best baseline) of the finished seed outputs."""
    from hmspar.config import build
    from hmspar.report.bootstrap import significance
    from hmspar.report.leaderboard import EvaluateConfig, build_leaderboard, discover_results, predicted_labels

    results = [r for r in discover_results(results_dir) if not runs or r.run in runs]
    if not results:
        raise SystemExit(f"{results_dir}: no finished seed outputs" + (f" for runs {runs}" if runs else ""))
    board = build_leaderboard(results)
    cfg = build(EvaluateConfig, load_params(params_path).get("evaluate"), "evaluate")
    sig = significance(results, board, cfg)
    n_classes: dict[tuple[str, str], int] = {}
    for r in results:  # fewest distinct classes predicted by any seed of (run, model)
        k = (r.run, r.model)
        n_classes[k] = min(n_classes.get(k, 10**9), int(len(set(predicted_labels(r).tolist()))))
    lines = ["| run | model | seeds | ROC-AUC | accuracy | balanced accuracy | classes predicted (min) | constant |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for row in board["rows"]:
        lines.append(f"| {row['run']} | {row['model']} | {row['n_seeds']} | {_fmt(row['roc_auc'])} | "
                     f"{_fmt(row['accuracy'])} | {_fmt(row['balanced_accuracy'])} | {n_classes[row['run'], row['model']]} | "
                     f"{'yes' if row['constant_prediction'] else 'no'} |")
    lines += ["", "| run | best baseline | HMSPAR − best baseline (AUC) | 95% CI | seeds |", "|---|---|---:|---|---|"]
    for run, s in sorted(sig["runs"].items()):
        if "skipped" in s:
            lines.append(f"| {run} | – | – | {s['skipped']} | – |")
            continue
        lines.append(f"| {run} | {s['baseline']} | {s['auc_difference']:+.4f} | "
                     f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] | {s['seeds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--runs", nargs="*", default=None, help="runs to show (default: every finished run)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="for the evaluate section")
    ap.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = ap.parse_args(argv)
    text = table(args.results, args.runs, args.params)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

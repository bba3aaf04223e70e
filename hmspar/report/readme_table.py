"""The README results table: rendered from the leaderboard by the evaluate stage, copied into README.md by hand.

The evaluate stage writes ``metrics/results_table.md`` (a DVC output). A DVC stage must not rewrite a
git-tracked file that is not one of its outputs, so README.md is updated by a separate command::

    python -m hmspar.report.readme_table            # metrics/results_table.md -> README.md
    python -m hmspar.report.readme_table --table T --readme R

which replaces everything between the ``<!-- results:start -->`` and ``<!-- results:end -->`` lines.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hmspar.errors import HmsparError

START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"

#: (leaderboard metric, column title) shown in the README table.
COLUMNS = (("roc_auc", "ROC-AUC"), ("auprc", "AUPRC"), ("f1", "F1"), ("accuracy", "Acc."),
           ("balanced_accuracy", "Bal. acc."), ("brier", "Brier"))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _fmt(stat: Mapping[str, Any], digits: int) -> str:
    if stat.get("mean") is None:
        return "–"
    if stat.get("std") is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def render_results_table(leaderboard: Mapping[str, Any], date: str, params_digest: str, digits: int = 3) -> str:
    """Markdown table of the leaderboard: one row per run and model, the best ROC-AUC of each run in bold.

    Parameters
    ----------
    leaderboard : mapping
        From :func:`hmspar.report.leaderboard.build_leaderboard` (or ``metrics/leaderboard.json``).
    date : str
        Date printed under the table.
    params_digest : str
        Short hash of ``params.yaml`` printed under the table, so a table can be matched to its settings.
    digits : int
        Decimals of every number.

    Returns
    -------
    str
        The table and a one-paragraph caption, ending with a newline.
    """
    rows = leaderboard.get("rows")
    if not rows:
        raise HmsparError("results table: the leaderboard has no rows")
    best: dict[str, float] = {}
    for r in rows:
        mean = r["roc_auc"]["mean"]
        if mean is not None:
            best[r["run"]] = max(best.get(r["run"], float("-inf")), mean)
    header = ["Run", "Model", "Inputs", *[title for _, title in COLUMNS], "Seeds"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(COLUMNS) + 1)) + "|"]
    for r in rows:
        model = r["model"] + (" ⚠ constant" if r.get("constant_prediction") else "")
        cells = [_cell(r["run"]), _cell(model), _cell("+".join(r["inputs"]) or "–")]
        for metric, _ in COLUMNS:
            text = _fmt(r.get(metric, {"mean": None}), digits)
            if metric == "roc_auc" and r[metric]["mean"] is not None and r[metric]["mean"] == best.get(r["run"]):
                text = f"**{text}**"
            cells.append(text)
        cells.append(str(r["n_seeds"]))
        lines.append("| " + " | ".join(cells) + " |")
    caption = (f"Test split, mean ± std over seeds; binary F1 and accuracy at the threshold chosen on "
               f"validation (or on out-of-fold training predictions for runs selected by k-fold; accuracy at 0.5 "
               f"in `metrics/leaderboard.csv`), multi-class: argmax and macro F1; ⚠ constant: a single class "
               f"predicted for every test entity in some seed; bold: best ROC-AUC of the run. Generated {date} from params `{params_digest}` "
               f"(full table: `metrics/leaderboard.csv`, significance: `metrics/significance.json`).")
    return "\n".join(lines) + "\n\n" + caption + "\n"


def update_readme(readme_path: str | os.PathLike, table: str) -> None:
    """Replace the text between the results markers of ``readme_path`` with ``table`` (atomic write).

    Raises
    ------
    HmsparError
        When the file is missing or the markers are missing, repeated or out of order.
    """
    from hmspar.io import write_text_atomic

    path = Path(readme_path)
    if not path.exists():
        raise HmsparError(f"{path}: not found")
    text = path.read_text(encoding="utf-8")
    for marker in (START_MARKER, END_MARKER):
        count = text.count(marker)
        if count != 1:
            raise HmsparError(f"{path}: expected the marker {marker!r} exactly once, found it {count} times")
    start = text.index(START_MARKER) + len(START_MARKER)
    end = text.index(END_MARKER)
    if end < start:
        raise HmsparError(f"{path}: {END_MARKER!r} comes before {START_MARKER!r}")
    new = text[:start] + "\n" + table.strip("\n") + "\n" + text[end:]
    if new != text:
        write_text_atomic(path, new)


def main(argv: list[str] | None = None) -> int:
    """``python -m hmspar.report.readme_table``: copy the stage's results table into README.md."""
    parser = argparse.ArgumentParser(
        prog="python -m hmspar.report.readme_table",
        description="Copy metrics/results_table.md between the results markers of README.md.")
    parser.add_argument("--table", default="metrics/results_table.md", help="table written by the evaluate stage")
    parser.add_argument("--readme", default="README.md", help="file holding the results markers")
    args = parser.parse_args(argv)
    try:
        table_path = Path(args.table)
        if not table_path.exists():
            raise HmsparError(f"{table_path}: not found (run `dvc repro evaluate` first)")
        update_readme(args.readme, table_path.read_text(encoding="utf-8"))
    except HmsparError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.readme}: results table updated from {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

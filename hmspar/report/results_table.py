"""The results table: the leaderboard as Markdown, written by the evaluate stage to ``metrics/results_table.md``.

The table is a generated file (a DVC output, git-tracked): ``docs/results.md`` links to it instead of
holding a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hmspar.errors import HmsparError

#: (leaderboard metric, column title) shown in the table.
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

"""The ``report`` stage: the offline report page ``report/index.html`` (see :mod:`hmspar.report.page`).

Kept apart from :mod:`hmspar.pipeline.report` so that the stage depends on the page builder alone, not on
the evaluate code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hmspar.config import build

REPORT_PAGE = Path("report/index.html")


def report_page(params: dict[str, Any]) -> Path:
    """``report``: the one offline page a reader opens first (``report/index.html``), from evaluate's
    ``metrics/`` and ``plots/`` and the recommendation track's ``metrics/rec_leaderboard.json``,
    ``plots_rec/``, ``metrics/rec_ablation.json`` and ``plots_rec_ablation/`` (all declared dependencies of the stage); reads ``params.yaml: evaluate.report``."""
    from hmspar.report.page import ReportConfig, write_report

    section = params.get("evaluate") or {}
    cfg = build(ReportConfig, section.get("report") if isinstance(section, dict) else None, "evaluate.report")
    return write_report(Path("metrics"), Path("plots"), cfg, REPORT_PAGE,
                        rec_board=Path("metrics/rec_leaderboard.json"), rec_plots=Path("plots_rec"),
                        rec_ablation=Path("metrics/rec_ablation.json"), rec_ablation_plots=Path("plots_rec_ablation"))

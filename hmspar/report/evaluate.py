"""The evaluate stage: leaderboard (JSON and CSV), paired-bootstrap significance, headline metrics, DVC plot
data and PNG figures and the results table, in that order.

The top of the report package: it imports :mod:`~hmspar.report.leaderboard` (results -> tables),
:mod:`~hmspar.report.bootstrap`, :mod:`~hmspar.report.plots` and :mod:`~hmspar.report.results_table`, and
nothing imports it but :func:`hmspar.pipeline.evaluate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import write_json, write_text_atomic
from hmspar.metrics import json_safe
from hmspar.report import bootstrap, modalities, plots, results_table
from hmspar.report.leaderboard import (EvaluateConfig, build_headline, build_leaderboard,
                                       discover_results, leaderboard_frame, params_digest)


def _today() -> str:
    """Today's UTC date, or the date of ``$SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc).date().isoformat()
        except ValueError:
            raise HmsparError(f"SOURCE_DATE_EPOCH: expected seconds since 1970, got {epoch!r}") from None
    return _dt.datetime.now(tz=_dt.timezone.utc).date().isoformat()


def evaluate(
    results_dir: str | os.PathLike,
    examples_root: str | os.PathLike,
    params: Mapping[str, Any],
    out_metrics_dir: str | os.PathLike,
    plots_dir: str | os.PathLike,
    date: str | None = None,
    live_root: str | os.PathLike = "dvclive",
    result_folders: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Run the whole evaluate stage.

    Parameters
    ----------
    results_dir : path
        Searched recursively for ``metrics.json`` + ``predictions.csv`` pairs (``results/``).
    examples_root : path
        ``data/gaf_examples``: the GAF figure's images are read from ``<examples_root>/<dataset>.npz``
        (written by each dataset's convert or import stage, :func:`hmspar.convert.gaf_example`).
    params : mapping
        The whole ``params.yaml`` (its ``evaluate`` section, optional, is built into :class:`EvaluateConfig`
        and hashed into the table's params digest: the stage declares only ``evaluate``), or an
        :class:`EvaluateConfig`.
    out_metrics_dir : path
        Receives ``leaderboard.json``, ``leaderboard.csv``, ``significance.json``, ``modalities.json``
        (:func:`hmspar.report.modalities.modality_table`), ``headline.json`` (five
        numbers over all runs, :func:`~hmspar.report.leaderboard.build_headline`: the table ``dvc metrics show``
        prints) and ``results_table.md``.
    plots_dir : path
        Receives ``roc/<run>.json``, ``pr/<run>.json``, ``confusion/<run>.csv`` (DVC plot data; each folder
        is replaced as a whole) and ``leaderboard_heatmap.png``, ``ablation.png`` (only when ablation results
        exist; a stale one is removed otherwise), ``gaf_examples.png``. The report page is the ``report``
        stage's (:func:`hmspar.report.page.write_report`), which reads these files and the rec track's.
    date : str, optional
        Date printed under the table (default: today in UTC, or ``$SOURCE_DATE_EPOCH``).
    live_root : path
        DVCLive folder of the train stage; its per-epoch curves go to ``plots/curves/<run>.json``.
    result_folders : sequence of str, optional
        Search only these subfolders of ``results_dir`` (the stage passes
        :data:`hmspar.pipeline.CLASSIFICATION_RESULTS`: not the rec track's results).

    Returns
    -------
    dict
        Name -> path of every file written.
    """
    if isinstance(params, EvaluateConfig):
        cfg, digest_source = params, dataclasses.asdict(params)
    else:
        if not isinstance(params, Mapping):
            raise HmsparError(f"params: expected a mapping, got {type(params).__name__}")
        cfg = build(EvaluateConfig, params.get("evaluate"), "evaluate")
        digest_source = dataclasses.asdict(cfg)
    metrics_dir, plots_dir = Path(out_metrics_dir), Path(plots_dir)

    results = discover_results(results_dir, result_folders)
    leaderboard = build_leaderboard(results)
    significance = bootstrap.significance(results, leaderboard, cfg)
    modality_info = modalities.modality_table(results, leaderboard, cfg)
    headline = build_headline(leaderboard, significance, cfg.headline_digits)

    written: dict[str, Path] = {}
    written["leaderboard_json"] = metrics_dir / "leaderboard.json"
    write_json(written["leaderboard_json"], json_safe(leaderboard))
    written["leaderboard_csv"] = metrics_dir / "leaderboard.csv"
    csv_text = leaderboard_frame(leaderboard).to_csv(index=False, float_format="%.6g")
    write_text_atomic(written["leaderboard_csv"], csv_text)
    written["significance"] = metrics_dir / "significance.json"
    write_json(written["significance"], json_safe(significance))
    written["modalities"] = metrics_dir / "modalities.json"
    write_json(written["modalities"], json_safe(modality_info))
    written["headline"] = metrics_dir / "headline.json"
    write_json(written["headline"], json_safe(headline))

    written.update(plots.write_plot_data(results, leaderboard, plots_dir, cfg.curve_points))
    written.update(plots.write_training_curves(live_root, plots_dir))
    written["heatmap"] = plots.leaderboard_heatmap(leaderboard, plots_dir / "leaderboard_heatmap.png")
    ablation = plots.ablation_chart(leaderboard, plots_dir / "ablation.png")
    if ablation is not None:
        written["ablation"] = ablation
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(plots_dir / "ablation.png")
    datasets = sorted({r.dataset for r in results})
    written["gaf_examples"] = plots.gaf_examples(datasets, examples_root, plots_dir / "gaf_examples.png")

    table = results_table.render_results_table(leaderboard, date or _today(), params_digest(digest_source),
                                               digits=cfg.table_digits)
    written["results_table"] = metrics_dir / "results_table.md"
    write_text_atomic(written["results_table"], table)
    return written

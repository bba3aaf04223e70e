"""Leaderboard of one recommendation dataset from whatever ``recommend*`` outputs are present.

``python -m benchmarks.rec_partial --dataset fashion [--models m1 m2 ...] [--out FILE.md]`` evaluates the
models whose ``results/rec/<dataset>/<model>/`` folders exist (all of ``--models``, or every registered model
found) with the code the ``rec_evaluate`` stage uses (:func:`hmspar.rec.report.evaluate_dataset` and
:func:`~hmspar.rec.report.render_table`: full ranking, the reference picked on validation, paired bootstrap
over users and seeds, slices with their intervals) and prints the markdown tables. Nothing is written under
``metrics/``: the stage stays the one source of the committed leaderboard; this is for a session that reran
some of a dataset's stages but not the whole track.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hmspar.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--models", nargs="+", default=None, help="models to evaluate (default: every one found)")
    ap.add_argument("--results", type=Path, default=Path("results/rec"))
    ap.add_argument("--out", type=Path, default=None, help="also write the tables to this file")
    args = ap.parse_args(argv)

    from hmspar.config import build
    from hmspar.errors import HmsparError
    from hmspar.rec.registry import REGISTRY
    from hmspar.rec.report import RecEvaluateConfig, evaluate_dataset, render_table
    from hmspar.rec.runner import protocol_config

    params = load_params()
    rec = params.get("rec") or {}
    cfg = build(RecEvaluateConfig, rec.get("evaluate"), "rec.evaluate")
    names = args.models or list(REGISTRY)
    found = [m for m in names if (args.results / args.dataset / m / "meta.json").is_file()]
    missing = sorted(set(args.models or []) - set(found))
    if missing:
        raise HmsparError(f"no results for {', '.join(missing)} under {args.results / args.dataset} "
                          f"(run recommend@{args.dataset}-<model> first)")
    if not found:
        raise HmsparError(f"no model results under {args.results / args.dataset}")
    entry, _ = evaluate_dataset(args.dataset, found, Path("data/rec/features") / args.dataset, args.results,
                                protocol_config(params), cfg)
    text = render_table({args.dataset: entry})
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"<!-- python -m benchmarks.rec_partial --dataset {args.dataset}"
                            f"{' --models ' + ' '.join(args.models) if args.models else ''} -->\n\n{text}\n")


if __name__ == "__main__":
    main()

"""Fit time of the multimodal recommenders (MTSTRec, ATHWE, PixelRec-style two-tower) at the track's
default size, on the synthetic toy log (``hmspar.rec.toy``) until the shop dataset is available.

``python -m benchmarks.bench_rec_models [--users 10000 --items 3000 --mean-len 20 --models mtstrec athwe]``
prints per model: fit seconds for one seed, optimiser steps run, milliseconds per step, the best step, the best validation NDCG@10
and the test NDCG@10 (full ranking by the track's evaluation module; the toy log has no seen-item masking).
The issue's target is at most 3 minutes per model and seed on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time

from benchmarks._measure import save, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=3_000)
    parser.add_argument("--mean-len", type=float, default=20.0)
    parser.add_argument("--models", nargs="+", default=["mtstrec", "athwe", "pixelrec"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=0, help="override train.max_steps (0 = the default)")
    args = parser.parse_args(argv)

    import torch

    from hmspar.config import build
    from hmspar.rec.models import athwe, mtstrec, pixelrec
    from hmspar.rec.toy import leave_one_out, toy_log
    from hmspar.rec.train import validation_ndcg

    classes = {"mtstrec": mtstrec.MTSTRec, "athwe": athwe.ATHWE, "pixelrec": pixelrec.PixelRecTwoTower}
    start = time.perf_counter()
    seqs, times, items = toy_log(args.users, args.items, args.mean_len, seed=args.seed)
    train, val, test = leave_one_out(seqs, times)
    print(f"toy log: {args.users} users, {args.items} items, {sum(map(len, seqs))} interactions "
          f"({time.perf_counter() - start:.1f} s); torch threads {torch.get_num_threads()}", flush=True)
    rows = []
    for name in args.models:
        cls = classes[name]
        model = cls(build(cls.Config, {"train": {"max_steps": args.max_steps}} if args.max_steps else {},
                                f"rec.recommenders.{name}"), seed=args.seed)
        start = time.perf_counter()
        model.callback = lambda step, row, t0=start: print(
            f"  {name} step {step}: {time.perf_counter() - t0:.1f} s, {row}", flush=True)
        model.fit(train, items, val)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        test_ndcg = validation_ndcg(model.score, test, 2048)
        score_s = time.perf_counter() - start
        steps = model.report_["steps_run"]
        rows.append({"model": name, "fit_s": fit_s, "steps": steps, "ms_per_step": 1000 * fit_s / max(steps, 1),
                     "best_step": model.best_step_,
                     "val_ndcg10": model.report_["best_val_ndcg@10"], "test_ndcg10": test_ndcg,
                     "score_s": score_s})
        print(rows[-1], flush=True)
    save("rec_models", rows)
    print(table(rows, ["model", "fit_s", "steps", "ms_per_step", "best_step", "val_ndcg10", "test_ndcg10",
                       "score_s"]))


if __name__ == "__main__":
    main()

"""Fit time of the multimodal recommenders (MTSTRec, ATHWE, PixelRec-style two-tower) at the track's
default size, on the synthetic toy log (``hmspar.rec.toy``) until the shop dataset is available.

``python -m benchmarks.bench_rec_models [--users 10000 --items 3000 --mean-len 20 --models mtstrec athwe]``
prints per model: fit seconds for one seed, epochs run, seconds per epoch, the best validation NDCG@10
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
    parser.add_argument("--epochs", type=int, default=0, help="override train.epochs (0 = the default)")
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
        model = cls(build(cls.Config, {"train": {"epochs": args.epochs}} if args.epochs else {},
                                f"rec.recommenders.{name}"), seed=args.seed)
        start = time.perf_counter()
        model.callback = lambda epoch, row, t0=start: print(
            f"  {name} epoch {epoch}: {time.perf_counter() - t0:.1f} s, {row}", flush=True)
        model.fit(train, items, val)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        test_ndcg = validation_ndcg(model.score, test, 2048)
        score_s = time.perf_counter() - start
        epochs = len(model.history_)
        rows.append({"model": name, "fit_s": fit_s, "epochs": epochs, "s_per_epoch": fit_s / epochs,
                     "best_epoch": model.best_epoch_,
                     "val_ndcg10": model.report_["best_val_ndcg@10"], "test_ndcg10": test_ndcg,
                     "score_s": score_s})
        print(rows[-1], flush=True)
    save("rec_models", rows)
    print(table(rows, ["model", "fit_s", "epochs", "s_per_epoch", "best_epoch", "val_ndcg10", "test_ndcg10",
                       "score_s"]))


if __name__ == "__main__":
    main()

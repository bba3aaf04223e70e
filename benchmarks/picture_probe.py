"""What a picture representation reads of the fashion shop's latent item attributes, on items it never saw.

The fashion simulator is deterministic in its seed, so the latent attributes of every item (look, the three
visible traits, the style that content shows, the content-caused appeal) can be drawn again from
``params.yaml`` without reading anything a model sees. Each representation is probed linearly
(:func:`hmspar.rec.picture_encoder.linear_probe`: a ridge map fitted on the training items, the penalty chosen on
a fifth of them, scored on the items outside the training histories):

- ``descriptor``: the fixed 88-d style descriptor (``vision: descriptor``);
- ``lab_encoder``: ``data/rec/pictures/<dataset>/features.npy`` (stage ``rec_pictures@<dataset>``), or any
  ``(n_items + 1, D)`` arrays given with ``--features NAME=PATH``;
- ``pixels``: the raw pictures at 8x8 (a linear baseline).

``python -m benchmarks.picture_probe [--dataset fashion] [--features NAME=PATH ...] [--out FILE]``
(default ``benchmarks/results/picture_probe_<dataset>.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    from hmspar.config import build
    from hmspar.params import load_params
    from hmspar.rec import fashion
    from hmspar.rec.data import ProtocolConfig, load
    from hmspar.rec.datasets import dataset_config
    from hmspar.rec.models.common import style_descriptor, train_items
    from hmspar.rec.picture_encoder import linear_probe
    from hmspar.rec.pictures import FEATURES_FILE, PICTURES_ROOT

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion")
    ap.add_argument("--features", nargs="*", default=[], metavar="NAME=PATH")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    params = load_params()
    cfg = dataset_config(args.dataset, params)
    if cfg.kind != "fashion":
        raise SystemExit(f"picture_probe: {args.dataset!r} is a {cfg.kind!r} dataset; only the fashion simulator "
                         "is probed (its latent attributes are drawn again from its seed)")
    cat, _, pictures = fashion.make_catalogue(cfg)
    data = load(Path("data/rec/features") / args.dataset,
                build(ProtocolConfig, params["rec"].get("protocol"), "rec.protocol"))
    items = data.items
    if not np.array_equal(items.image[1:], pictures):
        raise SystemExit("picture_probe: the converted pictures differ from the simulator's (stale features?)")
    seen = train_items(data.train, items.n_items)[1:]           # item code i is feature row i + 1
    fit, held = np.flatnonzero(seen), np.flatnonzero(~seen)
    reps = {"descriptor": style_descriptor(items.image)[1:]}
    default = PICTURES_ROOT / args.dataset / FEATURES_FILE
    if default.is_file():
        reps["lab_encoder"] = np.load(default)[1:]
    for spec in args.features:
        name, _, path = spec.partition("=")
        reps[name] = np.load(path)[1:]
    n, c, s, _ = pictures.shape
    reps["pixels"] = pictures.reshape(n, c, 8, s // 8, 8, s // 8).mean(axis=(3, 5)).reshape(n, -1) / 255.0
    targets = {"look_accuracy": (cat.look, True), "category_accuracy": (cat.category, True),
               "tone_r2": (cat.traits[:, 0], False), "cut_r2": (cat.traits[:, 1], False),
               "print_scale_r2": (cat.traits[:, 2], False), "style_seen_r2": (cat.style_seen, False),
               "appeal_seen_r2": (cat.pop_seen, False)}
    table = {name: {key: round(linear_probe(x, y, fit, held, classes=cls), 4) for key, (y, cls) in targets.items()}
             for name, x in reps.items()}
    result = {"dataset": args.dataset, "n_fit_items": int(fit.size), "n_probe_items": int(held.size),
              "chance_look_accuracy": round(float(np.bincount(cat.look[held]).max() / held.size), 4),
              "probe_on_unseen_items": table}
    out = Path(args.out or f"benchmarks/results/picture_probe_{args.dataset}.json")
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    keys = list(targets)
    print("| representation | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()

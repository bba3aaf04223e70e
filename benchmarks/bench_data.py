"""Wall time and peak memory of the generate and convert stages, per dataset, at the params sizes.

Usage: ``python -m benchmarks.bench_data [dataset ...]`` from the repository root (writes data/ like
``dvc repro`` would; run ``dvc repro`` or ``dvc checkout`` afterwards to restore the tracked outputs).
"""

from __future__ import annotations

import sys

from benchmarks._measure import measure, save, table
from hmspar.data.generators import dataset_config
from hmspar.params import load_params


def main(names: list[str]) -> None:
    params = load_params()
    names = names or list(params["datasets"])
    rows = []
    for name in names:
        gen = measure([sys.executable, "-m", "stages.generate", name])
        conv = measure([sys.executable, "-m", "stages.convert", name])
        rows.append({"dataset": name, "n": dataset_config(name, params["datasets"][name]).n_entities,
                     "generate_s": gen["seconds"], "generate_peak_mib": gen["peak_mib"],
                     "convert_s": conv["seconds"], "convert_peak_mib": conv["peak_mib"]})
        print(rows[-1], flush=True)
    total = sum(r["generate_s"] + r["convert_s"] for r in rows)
    peak = max(max(r["generate_peak_mib"], r["convert_peak_mib"]) for r in rows)
    rows.append({"dataset": "all", "n": sum(r["n"] for r in rows), "generate_s": sum(r["generate_s"] for r in rows),
                 "generate_peak_mib": max(r["generate_peak_mib"] for r in rows),
                 "convert_s": sum(r["convert_s"] for r in rows), "convert_peak_mib": peak})
    save("data", rows)
    print(table(rows, ["dataset", "n", "generate_s", "generate_peak_mib", "convert_s", "convert_peak_mib"]))
    print(f"total generate+convert: {total:.1f} s, peak {peak:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])

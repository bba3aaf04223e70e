"""Wall time and peak memory of importing a 1,000,000-row transaction log (CSV and Parquet).

Usage: ``python -m benchmarks.bench_import [n_rows]`` from the repository root. Writes a seeded synthetic log
(:func:`hmspar.data.importers.examples.synthetic_log`) under ``benchmarks/out/import/``, then runs the
``transactions`` importer plus the raw-dataset write in a fresh child process per file format and prints a
table (also saved as ``benchmarks/out/import.json``). Target: under 60 s and 2 GB peak on 2 cores.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from benchmarks._measure import OUT, measure, save, table

WORK = OUT / "import"
COLUMNS = {"entity": "customer_id", "time": "invoice_date", "amount": "total", "quantity": "qty", "text": "product"}


def make_log(n_rows: int, seed: int = 7) -> dict[str, Path]:
    """Write a seeded log of exactly ``n_rows`` rows as CSV and Parquet; returns the paths by format."""
    import numpy as np

    from hmspar.data.importers.examples import synthetic_log

    WORK.mkdir(parents=True, exist_ok=True)
    paths = {"csv": WORK / f"log_{n_rows}.csv", "parquet": WORK / f"log_{n_rows}.parquet"}
    if all(p.exists() for p in paths.values()):
        return paths
    n_customers = max(100, int(n_rows / 8.5))  # about 8.5 rows per customer over 24 months at rate 1.5
    frame = synthetic_log(n_customers, seed=seed, months=24, rate=1.5)
    while len(frame) < n_rows:
        n_customers = int(n_customers * 1.2 * n_rows / len(frame))
        frame = synthetic_log(n_customers, seed=seed, months=24, rate=1.5)
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=n_rows, replace=False))
    frame = frame.iloc[keep].reset_index(drop=True)
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"], index=False)
    return paths


def child(path: str) -> None:
    """Import ``path`` and write the raw dataset (what ``generate@<dataset>`` does), printing the shape."""
    from hmspar.data.generators import dataset_config, generator_module

    cfg = dataset_config("bench_shop", {"kind": "transactions", "path": path, "columns": COLUMNS,
                                        "frequency": "month", "input_periods": 12, "horizon": 3})
    start = time.perf_counter()
    ds = generator_module(cfg.kind).generate(cfg)
    imported = time.perf_counter() - start
    out = WORK / f"raw_{Path(path).suffix[1:]}"
    shutil.rmtree(out, ignore_errors=True)
    ds.save(out)
    print(f"entities={ds.n} channels={ds.channels} import_s={imported:.2f} "
          f"total_s={time.perf_counter() - start:.2f} distinct_texts={ds.extra_meta['distinct_texts']}",
          file=sys.stderr)


def main(argv: list[str]) -> None:
    n_rows = int(argv[0]) if argv else 1_000_000
    start = time.perf_counter()
    paths = make_log(n_rows)
    print(f"log of {n_rows} rows ready in {time.perf_counter() - start:.1f} s "
          f"(CSV {paths['csv'].stat().st_size / 2**20:.0f} MiB)", flush=True)
    rows = []
    for fmt, path in paths.items():
        result = measure([sys.executable, "-m", "benchmarks.bench_import", "--child", str(path)],
                         env={"OMP_NUM_THREADS": "2", "ARROW_NUM_THREADS": "2"})
        rows.append({"format": fmt, "rows": n_rows, "seconds": result["seconds"], "peak_mib": result["peak_mib"]})
        print(rows[-1], flush=True)
    save("import", rows)
    print(table(rows, ["format", "rows", "seconds", "peak_mib"]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    else:
        main(sys.argv[1:])

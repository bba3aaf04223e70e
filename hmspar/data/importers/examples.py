"""Seeded synthetic input files for the importers: the shipped examples and the benchmark's large log.

``python -m hmspar.data.importers.examples [directory]`` rewrites ``data/external/example_shop.csv`` (a
transaction log) and ``data/external/example_series.tsv`` (a three-class series table); the files in the
repository are exactly what this module writes, and a test checks that. They are small (well under 1 MB),
plain text, and tracked by git, because the ``generate`` stage reads them.

The log's customers follow a simple latent process: a monthly purchase rate (gamma), a lognormal basket
value, an acquisition month and a silent dropout month, a country and a segment that shift the rate and
the basket. Nothing here is used by the importers themselves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

EXAMPLE_DIR = Path("data/external")
PRODUCTS = ("Café mug", "Tea towel", "Candle set", "Notebook", "Plant pot", "Wool scarf", "Coffee beans",
            "Wall clock", "Cushion cover", "Picture frame", "Gift card", "Lunch box")
COUNTRIES = ("United Kingdom", "Germany", "France", "España")
SEGMENTS = ("retail", "wholesale")


def synthetic_log(n_customers: int, seed: int, start: str = "2022-01-01", months: int = 24,
                  rate: float = 1.0) -> pd.DataFrame:
    """A transaction log: one row per purchase, columns ``customer_id, invoice_date, total, qty, product,
    country, segment, invoice_no`` (country and segment constant per customer, invoice_no per row).

    Parameters
    ----------
    n_customers : int
        Customers simulated (those who never buy do not appear).
    seed : int
        Seed of ``np.random.default_rng``.
    start : str
        First day of the log (the first of a month).
    months : int
        Months covered; the log ends on the last day of the last month.
    rate : float
        Multiplier on every customer's monthly purchase rate (the benchmark raises it to reach 1M rows).

    Returns
    -------
    pd.DataFrame
        Rows sorted by date.
    """
    rng = np.random.default_rng(seed)
    country = rng.choice(len(COUNTRIES), size=n_customers, p=[0.7, 0.12, 0.12, 0.06])
    segment = rng.choice(len(SEGMENTS), size=n_customers, p=[0.85, 0.15])
    lam = rate * rng.gamma(1.2, 0.9, size=n_customers) * np.where(segment == 1, 1.8, 1.0)
    basket = rng.normal(3.4, 0.6, size=n_customers) + np.where(segment == 1, 1.0, 0.0) + 0.2 * (country == 1)
    first = np.where(rng.random(n_customers) < 0.6, 0, rng.integers(0, months, size=n_customers))
    dropout = first + rng.geometric(np.clip(0.05 + 0.02 * (segment == 0), 0.01, 1.0), size=n_customers)
    month = np.arange(months)
    alive = (month[None, :] >= first[:, None]) & (month[None, :] < dropout[:, None])
    season = 1.0 + 0.35 * np.cos(2 * np.pi * (month - 10) / 12)  # peak in November
    counts = rng.poisson(lam[:, None] * season[None, :] * alive)  # (customers, months)
    cust, mon = np.nonzero(counts)
    reps = counts[cust, mon]
    cust, mon = np.repeat(cust, reps), np.repeat(mon, reps)
    n = cust.size
    month_start = (np.datetime64(start, "M") + mon.astype("timedelta64[M]")).astype("datetime64[D]")
    month_days = ((np.datetime64(start, "M") + (mon + 1).astype("timedelta64[M]")).astype("datetime64[D]")
                  - month_start).astype(np.int64)
    day = month_start + (rng.random(n) * month_days).astype("timedelta64[D]")
    minute = rng.integers(8 * 60, 20 * 60, size=n)
    stamp = day.astype("datetime64[m]") + minute.astype("timedelta64[m]")
    qty = 1 + rng.poisson(np.where(segment[cust] == 1, 6.0, 1.0))
    total = np.round(np.exp(basket[cust] + rng.normal(0.0, 0.5, size=n)) * np.sqrt(qty), 2)
    width = max(6, len(str(n_customers)))
    frame = pd.DataFrame({
        "customer_id": np.char.add("C", np.char.zfill((cust + 1).astype(str), width)),
        "invoice_date": pd.to_datetime(stamp).strftime("%Y-%m-%d %H:%M"),
        "total": total,
        "qty": qty,
        "product": np.asarray(PRODUCTS, dtype=object)[rng.integers(0, len(PRODUCTS), size=n)],
        "country": np.asarray(COUNTRIES, dtype=object)[country[cust]],
        "segment": np.asarray(SEGMENTS, dtype=object)[segment[cust]],
    })
    frame = frame.iloc[np.argsort(stamp, kind="stable")].reset_index(drop=True)
    frame["invoice_no"] = np.arange(500001, 500001 + n)
    return frame


def synthetic_series(n_per_class: int, seed: int, min_length: int = 24, max_length: int = 36) -> pd.DataFrame:
    """A three-class series table (``flat``, ``seasonal``, ``trending`` weekly sales counts) of varying
    length, with a few missing cells; columns ``id, label, v1..v<max_length>`` (NaN after a row's end)."""
    rng = np.random.default_rng(seed)
    classes = ("flat", "seasonal", "trending")
    n = n_per_class * len(classes)
    label = np.repeat(np.arange(len(classes)), n_per_class)[rng.permutation(n)]
    length = rng.integers(min_length, max_length + 1, size=n)
    t = np.arange(max_length)[None, :]
    level = rng.gamma(4.0, 1.5, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    slope = rng.uniform(0.04, 0.09, size=(n, 1)) * rng.choice([-1.0, 1.0], size=(n, 1), p=[0.3, 0.7])
    shape = np.where(label[:, None] == 1, 1.0 + 0.8 * np.sin(2 * np.pi * t / 12 + phase),
                     np.where(label[:, None] == 2, np.clip(1.0 + slope * (t - 12), 0.1, None), 1.0))
    values = rng.poisson(level * shape).astype(np.float64)
    values[rng.random(values.shape) < 0.02] = np.nan
    values[t >= length[:, None]] = np.nan
    frame = pd.DataFrame(values, columns=[f"v{i + 1}" for i in range(max_length)])
    frame.insert(0, "label", np.asarray(classes, dtype=object)[label])
    frame.insert(0, "id", [f"S{i + 1:04d}" for i in range(n)])
    return frame


def write_series_tsv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a series table as TSV with one ragged row per entity (trailing missing steps left out)."""
    values = frame.iloc[:, 2:].to_numpy(dtype=np.float64)
    observed = ~np.isnan(values)
    ends = values.shape[1] - np.argmax(observed[:, ::-1], axis=1)
    lines = ["\t".join(["id", "label", *frame.columns[2:]])]
    for i, (ident, label) in enumerate(zip(frame.iloc[:, 0], frame.iloc[:, 1])):
        cells = ["" if np.isnan(v) else f"{v:g}" for v in values[i, : ends[i]]]
        lines.append("\t".join([str(ident), str(label), *cells]))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_examples(directory: str | Path = EXAMPLE_DIR) -> list[Path]:
    """Write ``example_shop.csv`` and ``example_series.tsv`` into ``directory``; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shop = directory / "example_shop.csv"
    log = synthetic_log(420, seed=2024, start="2022-09-01", months=16)
    log.to_csv(shop, index=False, encoding="utf-8", lineterminator="\n")
    series = directory / "example_series.tsv"
    write_series_tsv(synthetic_series(80, seed=2025), series)
    return [shop, series]


if __name__ == "__main__":
    for written in write_examples(*sys.argv[1:2]):
        print(f"{written}: {written.stat().st_size / 1024:.0f} KiB")

"""``kind: interactions``: import a user's own interaction log (and optional item table) into the raw
schema of :mod:`hmspar.rec.schema`, so convert, the recommenders and the evaluation treat it like the shop.

The log is CSV, TSV or Parquet with a user, an item and a timestamp column (names configurable; timestamps
as ISO dates or Unix seconds) and optionally a rating column kept when ``rating >= rating_threshold``.
The optional item table adds a text, an image-path, a category and a price column. Exact duplicate rows
(or, with ``dedup: user_item``, every repeat of a user-item pair) are dropped, then a k-core filter keeps
users and items with at least ``k_core`` interactions. Items get no arrival date (``first_time`` NaN): a
date read off the log itself would leak the validation and test windows. Every problem is an :class:`HmsparError` naming the
file, the column or the row.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hmspar.data.importers.readers import check_exists, read_table
from hmspar.errors import HmsparError
from hmspar.rec.schema import write_events, write_items, write_meta

SECONDS_PER_DAY = 86400.0


@dataclasses.dataclass(frozen=True)
class LogColumns:
    """``columns:`` names of the log's columns (``rating`` optional)."""

    user: str = "user_id"
    item: str = "item_id"
    time: str = "timestamp"
    rating: str | None = None


@dataclasses.dataclass(frozen=True)
class ItemColumns:
    """``item_columns:`` names of the item table's columns (every one but ``item`` optional)."""

    item: str = "item_id"
    text: str | None = None
    image: str | None = None
    category: str | None = None
    price: str | None = None


@dataclasses.dataclass(frozen=True)
class Config:
    """``params.yaml: rec.datasets.<name>`` for ``kind: interactions``.

    Attributes
    ----------
    path : str
        The interaction log (relative to the repository root).
    columns : LogColumns
    time_format : {"auto", "iso", "unix"}
        ``auto``: numeric columns are Unix seconds, anything else ISO dates.
    rating_threshold : float or None
        Keep rows with ``rating >= threshold`` (needs ``columns.rating``).
    items_path : str or None
        Optional item table; it must cover every item of the (filtered) log.
    item_columns : ItemColumns
    dedup : {"none", "exact", "user_item"}
        Drop exact duplicate rows, or every repeat of a user-item pair after its first time.
    k_core : int
        Repeatedly drop users and items with fewer interactions (0 or 1: no filter).
    image_size : int
        Side the item pictures are resized to.
    seed : int
        Unused by the import itself (kept so every dataset entry has one).
    """

    path: str
    kind: str = "interactions"
    seed: int = 0
    columns: LogColumns = LogColumns()
    time_format: Literal["auto", "iso", "unix"] = "auto"
    rating_threshold: float | None = None
    items_path: str | None = None
    item_columns: ItemColumns = ItemColumns()
    dedup: Literal["none", "exact", "user_item"] = "exact"
    k_core: int = 0
    image_size: int = 32
    name: str = ""

    def __post_init__(self) -> None:
        if self.k_core < 0:
            raise ValueError(f"k_core must be non-negative, got {self.k_core!r}")
        if not 8 <= self.image_size <= 128:
            raise ValueError(f"image_size must lie in [8, 128], got {self.image_size!r}")
        if self.rating_threshold is not None and self.columns.rating is None:
            raise ValueError("rating_threshold needs columns.rating (the rating column's name)")


def _require(frame: Any, column: str, path: str, key: str) -> None:
    if column not in frame.columns:
        raise HmsparError(f"{path}: missing column {column!r} (params key {key}); "
                          f"columns in the file: {', '.join(map(str, frame.columns))}")


def parse_times(values: Any, fmt: str, path: str, column: str) -> np.ndarray:
    """Timestamps -> float64 days since 1970-01-01 (UTC), naming the first unparseable row.

    Parameters
    ----------
    values : pandas.Series
        The raw column.
    fmt : {"auto", "iso", "unix"}
    path, column : str
        For the error message.
    """
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    # auto: a column that is mostly numbers is Unix seconds (its odd values are the bad rows); one that is
    # mostly text is ISO dates, so a stray value is reported at its own row in either case.
    as_unix = fmt == "unix" or (fmt == "auto" and numeric.notna().mean() > 0.5)
    if as_unix:
        bad = numeric.isna().to_numpy()
        days = numeric.to_numpy(dtype=np.float64) / SECONDS_PER_DAY
    else:
        parsed = pd.to_datetime(values.astype(str), errors="coerce", utc=True, format="ISO8601")
        bad = parsed.isna().to_numpy()
        days = (parsed - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy() / SECONDS_PER_DAY
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        expected = "Unix seconds" if as_unix else "an ISO date such as 2024-03-01 or 2024-03-01T12:30:00"
        if fmt == "auto":
            expected += ", like most of the column"
        raise HmsparError(f"{path}: row {row + 1}: unparseable timestamp {values.iloc[row]!r} in column "
                          f"{column!r} (expected {expected})")
    return days


def k_core(user: np.ndarray, item: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the rows kept by the iterative k-core filter (users and items with >= k rows)."""
    keep = np.ones(user.shape[0], dtype=bool)
    if k <= 1:
        return keep
    while True:
        uc = np.bincount(user[keep], minlength=user.max() + 1 if user.size else 0)
        ic = np.bincount(item[keep], minlength=item.max() + 1 if item.size else 0)
        new = keep & (uc[user] >= k) & (ic[item] >= k)
        if new.sum() == keep.sum():
            return new
        keep = new


def _load_picture(path: Path, size: int, where: str) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise HmsparError(f"{where}: image file {str(path)!r} not found")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except OSError as exc:
        raise HmsparError(f"{where}: image file {str(path)!r} could not be read: {exc}") from None


def generate(cfg: Config, out_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Import the log (and item table) into ``out_dir``; returns the metadata written to ``meta.json``."""
    import pandas as pd

    key = f"rec.datasets.{cfg.name or '<name>'}"
    path = check_exists(cfg.path, f"{key}.path")
    cols = cfg.columns
    wanted = [cols.user, cols.item, cols.time] + ([cols.rating] if cols.rating else [])
    frame, _ = read_table(path, str_columns=[cols.user, cols.item, cols.time])
    for name, column in (("user", cols.user), ("item", cols.item), ("time", cols.time), ("rating", cols.rating)):
        if column is not None:
            _require(frame, column, str(path), f"{key}.columns.{name}")
    frame = frame[wanted].copy()
    n_rows = len(frame)
    for name, column in (("user", cols.user), ("item", cols.item)):
        missing = frame[column].isna().to_numpy()
        if missing.any():
            raise HmsparError(f"{path}: row {int(np.flatnonzero(missing)[0]) + 1}: empty {name} id in column {column!r}")
    frame["_t"] = parse_times(frame[cols.time], cfg.time_format, str(path), cols.time)
    if cols.rating is not None and cfg.rating_threshold is not None:
        rating = pd.to_numeric(frame[cols.rating], errors="coerce")
        if rating.isna().any():
            row = int(np.flatnonzero(rating.isna().to_numpy())[0])
            raise HmsparError(f"{path}: row {row + 1}: rating {frame[cols.rating].iloc[row]!r} in column "
                              f"{cols.rating!r} is not a number")
        frame = frame[rating.to_numpy() >= cfg.rating_threshold]
    frame[cols.user] = frame[cols.user].astype(str)
    frame[cols.item] = frame[cols.item].astype(str)
    if cfg.dedup == "exact":
        frame = frame.drop_duplicates(subset=[cols.user, cols.item, "_t"])
    elif cfg.dedup == "user_item":
        frame = frame.sort_values([cols.user, "_t"], kind="stable").drop_duplicates(subset=[cols.user, cols.item])
    user_ids, user = np.unique(frame[cols.user].to_numpy(), return_inverse=True)
    item_ids, item = np.unique(frame[cols.item].to_numpy(), return_inverse=True)
    keep = k_core(user, item, cfg.k_core)
    if not keep.any():
        raise HmsparError(f"{path}: no interactions left after filtering ({n_rows} rows read; rating threshold "
                          f"{cfg.rating_threshold}, k_core {cfg.k_core})")
    frame = frame[keep]
    user_ids, user = np.unique(frame[cols.user].to_numpy(), return_inverse=True)
    item_ids, item = np.unique(frame[cols.item].to_numpy(), return_inverse=True)
    time = frame["_t"].to_numpy(dtype=np.float64)
    # a log carries no catalogue dates: an item's first interaction in the whole log would tell a model
    # which items are first bought in the validation or test window, so the arrival is left unknown (NaN);
    # the item-age input falls back to an item's first *training* interaction (train.item_arrivals)
    first_time = np.full(item_ids.size, np.nan)

    n_items = item_ids.size
    text = [f"item {i}" for i in item_ids]
    category = ["all"] * n_items
    price = np.zeros(n_items)
    pictures = np.zeros((n_items, 3, cfg.image_size, cfg.image_size), dtype=np.uint8)
    has_text = has_pictures = False
    if cfg.items_path is not None:
        ipath = check_exists(cfg.items_path, f"{key}.items_path")
        ic = cfg.item_columns
        table, _ = read_table(ipath, str_columns=[c for c in (ic.item, ic.text, ic.image, ic.category) if c])
        for name in ("item", "text", "image", "category", "price"):
            column = getattr(ic, name)
            if column is not None:
                _require(table, column, str(ipath), f"{key}.item_columns.{name}")
        table[ic.item] = table[ic.item].astype(str)
        dup = table[ic.item].duplicated().to_numpy()
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            raise HmsparError(f"{ipath}: row {row + 1}: item {table[ic.item].iloc[row]!r} listed twice")
        table = table.set_index(ic.item)
        absent = ~np.isin(item_ids, table.index.to_numpy())
        if absent.any():
            raise HmsparError(f"{ipath}: the item table misses {int(absent.sum())} of the {n_items} items of the "
                              f"log, e.g. {item_ids[np.flatnonzero(absent)[0]]!r}")
        table = table.loc[item_ids]
        if ic.text is not None:
            text = table[ic.text].fillna("").astype(str).tolist()
            has_text = True
        if ic.category is not None:
            category = table[ic.category].fillna("unknown").astype(str).tolist()
        if ic.price is not None:
            values = pd.to_numeric(table[ic.price], errors="coerce")
            if values.isna().any() or (values < 0).any():
                bad = item_ids[np.flatnonzero(values.isna().to_numpy() | (values < 0).to_numpy())[0]]
                raise HmsparError(f"{ipath}: item {bad!r}: price in column {ic.price!r} is missing, negative or "
                                  f"not a number")
            price = values.to_numpy(dtype=np.float64)
        if ic.image is not None:
            base = ipath.parent
            for j, rel in enumerate(table[ic.image].tolist()):
                if isinstance(rel, str) and rel:
                    pictures[j] = _load_picture(base / rel, cfg.image_size, f"{ipath}: item {item_ids[j]!r}")
            has_pictures = True
    items = pd.DataFrame({"item_id": item_ids.astype(str), "category": category, "brand": [""] * n_items,
                          "price": price, "first_time": first_time, "text": text})
    write_items(out_dir, items, pictures)
    write_events(out_dir, user, item, time)
    meta = {"kind": "interactions", "n_users": int(user_ids.size), "n_items": int(n_items),
            "n_events": int(time.size), "rows_read": int(n_rows), "categories": sorted(set(category)),
            "has_pictures": has_pictures, "has_text": has_text, "image_size": cfg.image_size,
            "time_unit": "days", "config": dataclasses.asdict(cfg)}
    write_meta(out_dir, meta)
    return meta

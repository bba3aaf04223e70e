"""The on-disk schema of a raw interaction dataset (``data/rec/raw/<dataset>/``) and of its converted features
(``data/rec/features/<dataset>/``), shared by the shop simulator, the interaction-log importer and the loader.

Raw files (written by ``rec_generate``)::

    items.parquet      one row per item, row order = item code 0..n_items-1: ``item_id`` (str), ``category``
                       (str), ``brand`` (str), ``price`` (float, 0 when unknown), ``first_time`` (float days),
                       ``text`` (str, title and description)
    pictures.npy       uint8 (n_items, 3, S, S) product pictures (all zeros when a dataset has none)
    events_user.npy    int64 (E,) user codes 0..n_users-1
    events_item.npy    int64 (E,) item codes 0..n_items-1
    events_time.npy    float64 (E,) timestamps in days
    meta.json          name, kind, counts, category names, whether items have pictures, generator notes

Feature files (written by ``rec_convert``; item index ``i + 1`` is item code ``i``, index 0 is padding)::

    image.npy          uint8 (n_items + 1, 3, S, S)
    text.npy           float32 (n_items + 1, D) MiniLM embeddings (each distinct text embedded once)
    price.npy          float32 (n_items + 1,) log1p price
    category.npy       int64 (n_items + 1,) category code 1..n_categories (0 = padding)
    first_time.npy     float64 (n_items + 1,)
    seq_items.npy      int64 (E,) item indices of every user's time-ordered sequence, users concatenated
    seq_times.npy      float64 (E,)
    seq_offsets.npy    int64 (n_users + 1,) user ``u`` owns ``seq_*[offsets[u]:offsets[u + 1]]``
    meta.json          counts, ``repeat_purchases`` (some user interacts with an item twice), category names

Every array is a plain ``.npy`` file (no zip container, no timestamps), so the same params give the same
bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.errors import HmsparError

EVENT_FILES = {"user": "events_user.npy", "item": "events_item.npy", "time": "events_time.npy"}
EVENT_DTYPES = {"user": np.int64, "item": np.int64, "time": np.float64}
ITEM_COLUMNS = ("item_id", "category", "brand", "price", "first_time", "text")


class NpyWriter:
    """Write a 1-D ``.npy`` file of known length block by block (bounded memory, no memory map).

    Parameters
    ----------
    path : Path
        Output file.
    length : int
        Total number of elements; :meth:`close` fails if a different number was written.
    dtype : numpy dtype
        Element type.
    """

    def __init__(self, path: Path, length: int, dtype: Any) -> None:
        self.path = Path(path)
        self.length = int(length)
        self.dtype = np.dtype(dtype)
        self.written = 0
        self._fh = open(self.path, "wb")
        np.lib.format.write_array_header_1_0(
            self._fh, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                       "shape": (self.length,)})

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype).reshape(-1)
        self.written += block.size
        if self.written > self.length:
            raise HmsparError(f"{self.path}: more than the declared {self.length} elements written")
        self._fh.write(block.tobytes())

    def close(self) -> None:
        self._fh.close()
        if self.written != self.length:
            raise HmsparError(f"{self.path}: {self.written} elements written, {self.length} declared")


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` with sorted keys (deterministic bytes)."""
    with open(Path(directory) / "meta.json", "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.write("\n")


def read_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "meta.json"
    if not path.is_file():
        raise HmsparError(f"{path}: not found (run the stage that writes {Path(directory)} first)")
    with open(path) as fh:
        return json.load(fh)


def write_items(directory: Path, items: Any, pictures: np.ndarray) -> None:
    """Write ``items.parquet`` (columns :data:`ITEM_COLUMNS`) and ``pictures.npy`` (uint8)."""
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise HmsparError(f"item table lacks column {missing[0]!r}")
    if pictures.dtype != np.uint8 or pictures.ndim != 4 or pictures.shape[0] != len(items):
        raise HmsparError(f"pictures must be uint8 (n_items, 3, S, S), got {pictures.dtype} {pictures.shape}")
    items[list(ITEM_COLUMNS)].to_parquet(Path(directory) / "items.parquet", index=False)
    np.save(Path(directory) / "pictures.npy", np.ascontiguousarray(pictures))


def read_items(directory: str | Path) -> tuple[Any, np.ndarray]:
    """Return ``(items DataFrame, pictures uint8 (n_items, 3, S, S))`` of a raw dataset."""
    import pandas as pd

    directory = Path(directory)
    for name in ("items.parquet", "pictures.npy"):
        if not (directory / name).is_file():
            raise HmsparError(f"{directory / name}: not found (run rec_generate first)")
    return pd.read_parquet(directory / "items.parquet"), np.load(directory / "pictures.npy")


def write_events(directory: Path, user: np.ndarray, item: np.ndarray, time: np.ndarray) -> None:
    """Write the three event arrays at once (for importers; the simulator streams with :class:`NpyWriter`)."""
    for key, arr in (("user", user), ("item", item), ("time", time)):
        np.save(Path(directory) / EVENT_FILES[key], np.ascontiguousarray(arr, dtype=EVENT_DTYPES[key]))


def read_events(directory: str | Path, mmap: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(user, item, time)`` event arrays of a raw dataset (memory-mapped when ``mmap``)."""
    directory = Path(directory)
    out = []
    for key in ("user", "item", "time"):
        path = directory / EVENT_FILES[key]
        if not path.is_file():
            raise HmsparError(f"{path}: not found (run rec_generate first)")
        out.append(np.load(path, mmap_mode="r" if mmap else None))
    return out[0], out[1], out[2]

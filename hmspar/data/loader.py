"""Loading converted features (``data/features/<dataset>/``) as dicts of modality arrays per split.

Feature directory layout (written by :mod:`hmspar.convert`)::

    ids.npy      (N,)         entity ids (str)
    series.npy   (N, C, T)    float32, log1p of the observed values; unobserved periods are 0
    mask.npy     (N, C, T)    float32, 1 where the period shows activity (value > 0), else 0
    image.npy    (N, 2C, S, S) float32 ISA-GAF: for each channel c, [2c] trend GASF, [2c+1] sparsity GASF
    text.npy     (N, D)       float32 sentence embedding of the entity's description (D = 0 without text)
    static.npy   (N, F)       float32 one-hot categorical and raw numeric static attributes (F may be 0)
    labels.npz   task -> (N,) int8 labels
    splits.npz   task -> (N,) int8 split codes (0 train, 1 validation, 2 test)
    groups.npy   (N,)         group names (only for datasets with groups, e.g. merchant industries)
    meta.json    channels, tasks, groups, static column names and which of them are numeric, the
                 declared ``modalities`` and ``values`` (``nonnegative`` or ``signed``)

For ``values: signed`` datasets ``series.npy`` holds the raw real values (NaN -> 0) and ``mask.npy`` is 1
where the step was observed; see :mod:`hmspar.convert`.

A split may have no validation rows (a user's predefined split without them): ``val`` is then an empty
:class:`SplitData` and the training code selects by k-fold inside the training rows
(:mod:`hmspar.training.selection`).

Everything fitted is fitted here on the *training* split of the requested task, so every model sees the
same normalisation: series are standardised per channel, text embeddings per dimension, numeric static
columns per column.

Bounded memory
--------------
By default (``lazy=True``) nothing but the labels, ids and split index arrays is read into memory: each
modality of a split is a :class:`MappedRows`, an index array over the memory-mapped ``.npy`` file plus
the standardisation, applied to each batch as it is read. ``view[a:b]``, ``view[idx]`` (integer or
boolean rows) return float32 numpy arrays; ``np.asarray(view)`` materialises the whole split (in
chunks). Torch models (:class:`~hmspar.models.torch_base.TorchClassifier`, ``lazy_inputs = True``) are
trained and evaluated batch by batch from these views, so a million merchants with (2, 16, 16) images
(2 GB on disk) never sit in memory at once. Models that need whole matrices (the tabular baselines:
gradient boosting, MiniRocket, ...) get materialised numpy arrays from :meth:`SplitData.materialise`
(that is what :func:`hmspar.runner.run_model` does for any model without ``lazy_inputs``); their
memory grows with the split size. The standardisation statistics are computed in chunks (exact
mean / population std, merged with Chan's parallel formula), so fitting them is bounded too.

Rows of a memory-mapped ``.npy`` file are read with ``os.preadv`` (one call per run of consecutive
rows) rather than through the mapping: the operating system's page cache still serves repeated epochs,
but the pages are not mapped into the process, so its resident memory stays at one batch instead of
growing towards the size of the files it has touched (2 GB of images at a million merchants).
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.data.splits import SPLIT_NAMES
from hmspar.errors import HmsparError

MODALITIES = ("series", "image", "text", "static")
FEATURE_FILES = ("ids.npy", "series.npy", "mask.npy", "image.npy", "text.npy", "static.npy",
                 "labels.npz", "splits.npz", "meta.json")

#: Target bytes read per chunk when statistics are fitted or a view is materialised.
CHUNK_BYTES = 64 * 2 ** 20


class MappedRows:
    """A lazily read, standardised row subset of an array: ``(source[index] - mean) / std`` as float32.

    Parameters
    ----------
    source : np.ndarray
        The full array, typically a read-only ``np.memmap`` of an ``.npy`` file, shape (N, ...).
    index : np.ndarray, optional
        (n,) row indices into ``source`` (default: every row). Sorted indices read fastest.
    mean, std : np.ndarray, optional
        Broadcastable against one batch ``(B, ...)`` (leading axis of length 1); applied on read.

    Notes
    -----
    Behaves like a read-only (n, ...) float32 array for the operations models use: ``shape``,
    ``ndim``, ``dtype``, ``len``, ``np.shape``, row indexing ``view[i]``, ``view[a:b]``,
    ``view[int_array]``, ``view[bool_mask]`` (optionally followed by more axes, ``view[rows, 0]``), and
    ``np.asarray(view)``. Each read returns a fresh numpy array; ``subset(idx)`` returns another view.
    """

    def __init__(self, source: np.ndarray, index: np.ndarray | None = None,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        if np.ndim(source) < 1:
            raise HmsparError("MappedRows: source must have at least one axis (rows)")
        self.source = source
        n_source = int(np.shape(source)[0])
        if index is None:
            index = np.arange(n_source, dtype=np.int64)
        index = np.asarray(index)
        if index.ndim != 1 or not (np.issubdtype(index.dtype, np.integer)):
            raise HmsparError(f"MappedRows: index must be a 1-D integer array, got {index.dtype} {index.shape}")
        if index.size and (index.min() < 0 or index.max() >= n_source):
            raise HmsparError(f"MappedRows: row index out of range for {n_source} rows")
        self.index = index.astype(np.int64, copy=False)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        self._file = _FileRows.of(source)

    # ------------------------------------------------------------------ array-like surface
    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.index.size),) + tuple(int(s) for s in np.shape(self.source)[1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def row_bytes(self) -> int:
        """Bytes of one row as stored in ``source``."""
        return int(np.prod(self.shape[1:], dtype=np.int64)) * np.dtype(self.source.dtype).itemsize

    def __len__(self) -> int:
        return int(self.index.size)

    def __repr__(self) -> str:
        where = getattr(self.source, "filename", None) or type(self.source).__name__
        return f"MappedRows(shape={self.shape}, source={where}, standardised={self.mean is not None})"

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            if not key:
                return np.asarray(self)
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            out = self._read(self.index[np.asarray([key])])[0]
        else:
            out = self._read(self.index[key])
        return out[(slice(None),) * (0 if isinstance(key, (int, np.integer)) else 1) + rest] if rest else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        for a, b in self.chunks():
            out[a:b] = self[a:b]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getstate__(self) -> dict[str, Any]:
        # A memory map is pickled as its file name (a spawned data-loading worker reopens it), not its data.
        state = self.__dict__.copy()
        state["_file"] = None
        filename = getattr(self.source, "filename", None)
        if isinstance(self.source, np.memmap) and filename and Path(filename).suffix == ".npy":
            state["source"] = ("npy-memmap", str(filename))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        source = state["source"]
        if isinstance(source, tuple) and source and source[0] == "npy-memmap":
            state["source"] = np.load(source[1], mmap_mode="r")
        self.__dict__.update(state)
        self._file = _FileRows.of(self.source)

    # ------------------------------------------------------------------ views and chunks
    def subset(self, idx: np.ndarray | slice) -> "MappedRows":
        """Rows ``idx`` of this view, as another lazy view (nothing is read)."""
        view = MappedRows.__new__(MappedRows)
        view.source, view.index, view.mean, view.std, view._file = (
            self.source, self.index[idx], self.mean, self.std, self._file)
        return view

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, int]]:
        """Consecutive ``(a, b)`` row ranges of about ``chunk_bytes`` each (at least one row)."""
        n = len(self)
        step = max(1, int(chunk_bytes // max(1, self.row_bytes)))
        for a in range(0, n, step):
            yield a, min(n, a + step)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """Read ``source[rows]`` (sorted first, so memory-map reads go forward) and standardise it."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros((0,) + self.shape[1:], dtype=np.float32)
        if rows.size > 1 and np.any(rows[1:] < rows[:-1]):
            order = np.argsort(rows, kind="stable")
            out = np.empty((rows.size,) + self.shape[1:], dtype=np.float32)
            out[order] = self._read(rows[order])
            return out
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        if self._file is not None:
            out = self._file.read(rows)
        elif hi - lo == rows.size:  # consecutive rows: one slice read
            out = np.array(self.source[lo:hi], dtype=np.float32)
        else:
            out = np.asarray(self.source[rows], dtype=np.float32)
        if self.mean is not None:
            out -= self.mean
            out /= self.std
        return out


class _FileRows:
    """Positional reads of rows of a C-ordered array stored in a file (the file behind an ``np.memmap``).

    Shared by every view of one source; the file descriptor is opened on first use, per process.
    """

    def __init__(self, filename: str, offset: int, dtype: np.dtype, row_shape: tuple[int, ...]) -> None:
        self.filename, self.offset, self.dtype, self.row_shape = filename, int(offset), dtype, row_shape
        self.row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
        self._fd: int | None = None
        self._pid: int | None = None

    @classmethod
    def of(cls, source: Any) -> "_FileRows | None":
        """Reader for a whole-file ``np.memmap`` (not a view of one); None for anything else."""
        if not (isinstance(source, np.memmap) and isinstance(source.base, mmap.mmap)
                and source.flags.c_contiguous and getattr(source, "filename", None)
                and hasattr(os, "preadv") and source.dtype.hasobject is False
                and int(np.prod(source.shape[1:], dtype=np.int64)) > 0):  # zero-width rows: nothing to read
            return None
        return cls(str(source.filename), source.offset, source.dtype, tuple(source.shape[1:]))

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            self._fd, self._pid = os.open(self.filename, os.O_RDONLY), os.getpid()
        return self._fd

    def read(self, rows: np.ndarray) -> np.ndarray:
        """float32 rows ``rows`` (sorted, non-empty), one ``preadv`` per run of consecutive rows."""
        fd = self._descriptor()
        out = np.empty((rows.size,) + self.row_shape, dtype=self.dtype)
        raw = out.reshape(rows.size, -1).view(np.uint8)  # (n, row_bytes)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(rows) != 1) + 1, [rows.size]])
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist()):
            buf = memoryview(raw[a:b]).cast("B")
            pos = self.offset + int(rows[a]) * self.row_bytes
            done = 0
            while done < len(buf):
                got = os.preadv(fd, [buf[done:]], pos + done)
                if got <= 0:
                    raise HmsparError(f"{self.filename}: file ends before row {int(rows[b - 1])} "
                                      "(truncated features; rerun the convert stage)")
                done += got
        return out if out.dtype == np.float32 else out.astype(np.float32)

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass


def rows_of(array: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of a numpy array (a copy) or of a :class:`MappedRows` (another lazy view)."""
    if isinstance(array, MappedRows):
        return array.subset(idx)
    return array[idx]


def materialise(array: Any) -> np.ndarray:
    """A float32 numpy array of ``array`` (a :class:`MappedRows` is read in chunks)."""
    if isinstance(array, np.ndarray) and not isinstance(array, np.memmap) and array.dtype == np.float32:
        return array
    return np.asarray(array, dtype=np.float32)


@dataclasses.dataclass
class SplitData:
    """One split of one task.

    ``X`` maps modality names to arrays: ``series`` (n, C, T) standardised, ``mask`` (n, C, T) (always
    present with ``series``), ``image`` (n, 2C, S, S), ``text`` (n, D) standardised, ``static`` (n, F)
    standardised (numeric columns).
    Values are :class:`MappedRows` views (``load_task(lazy=True)``) or float32 numpy arrays.
    ``y`` is (n,) int64, ``ids`` (n,) str.
    """

    X: dict[str, Any]
    y: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def lazy(self) -> bool:
        """True when some modality is a :class:`MappedRows` view (read batch by batch)."""
        return any(isinstance(v, MappedRows) for v in self.X.values())

    def subset(self, idx: np.ndarray) -> "SplitData":
        """Rows ``idx`` (lazy views stay lazy)."""
        return SplitData({k: rows_of(v, idx) for k, v in self.X.items()}, self.y[idx], self.ids[idx])

    def materialise(self) -> "SplitData":
        """The same split with every modality read into a float32 numpy array."""
        return SplitData({k: materialise(v) for k, v in self.X.items()}, self.y, self.ids)


def available_modalities(meta: dict) -> tuple[str, ...]:
    """Modalities a converted dataset really has: ``meta["modalities"]`` (written by the convert step), or
    for features written before that key existed, every modality except a zero-width ``static``."""
    declared = meta.get("modalities")
    if declared is not None:
        return tuple(m for m in MODALITIES if m in declared)
    return tuple(m for m in MODALITIES if m != "static" or meta.get("static_columns"))


def read_meta(features_dir: str | Path) -> dict:
    path = Path(features_dir) / "meta.json"
    if not path.exists():
        raise HmsparError(f"{path}: missing (run the convert stage first)")
    with open(path) as fh:
        return json.load(fh)


def fit_standardiser(view: MappedRows, axes: tuple[int, ...],
                     chunk_bytes: int = CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation of ``view`` over ``axes`` (which must include 0), read in
    chunks and merged exactly (Chan et al.); std below 1e-8 becomes 1. Returns float32 arrays with
    ``keepdims`` shape.

    Raises
    ------
    HmsparError
        If ``axes`` does not include the row axis 0 or the view has no rows.
    """
    if 0 not in axes:
        raise HmsparError("fit_standardiser: axes must include the row axis 0")
    if len(view) == 0:
        raise HmsparError("fit_standardiser: no rows to fit on")
    count = 0
    mean = m2 = None
    for a, b in view.chunks(chunk_bytes):
        x = view[a:b].astype(np.float64)
        k = int(np.prod([x.shape[ax] for ax in axes]))
        mu = x.mean(axis=axes, keepdims=True)
        sq = ((x - mu) ** 2).sum(axis=axes, keepdims=True)
        if mean is None:
            count, mean, m2 = k, mu, sq
            continue
        delta = mu - mean
        total = count + k
        mean = mean + delta * (k / total)
        m2 = m2 + sq + delta ** 2 * (count * k / total)
        count = total
    std = np.sqrt(m2 / count)
    std = np.where(std < 1e-8, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def load_task(
    features_dir: str | Path,
    task: str,
    group: str | None = None,
    modalities: tuple[str, ...] | list[str] = MODALITIES,
    lazy: bool = True,
) -> dict[str, SplitData]:
    """Return ``{"train": SplitData, "val": SplitData, "test": SplitData}`` for ``task``.

    Parameters
    ----------
    features_dir : path
        A directory written by the convert stage.
    task : str
        Task name (a key of ``labels.npz``).
    group : str, optional
        Keep only entities of this group (e.g. ``"Industry-0"``); the stored split is reused.
    modalities : sequence of str
        Which of ``series``, ``image``, ``text``, ``static`` to load (``mask`` comes with ``series``).
    lazy : bool, default True
        Return :class:`MappedRows` views over the memory-mapped files (rows read and standardised per
        batch); False reads every split into float32 numpy arrays (chunk by chunk).
    """
    features_dir = Path(features_dir)
    for fname in FEATURE_FILES:
        if not (features_dir / fname).exists():
            raise HmsparError(f"{features_dir / fname}: missing (run the convert stage first)")
    unknown = sorted(set(modalities) - set(MODALITIES))
    if unknown:
        raise HmsparError(f"unknown modality {unknown[0]!r} (known: {', '.join(MODALITIES)})")
    meta = read_meta(features_dir)
    labels = np.load(features_dir / "labels.npz")
    splits = np.load(features_dir / "splits.npz")
    if task not in labels.files:
        raise HmsparError(f"{features_dir}: unknown task {task!r} (tasks: {', '.join(labels.files)})")
    if task not in splits.files:
        raise HmsparError(f"{features_dir}/splits.npz: no split for task {task!r} (rerun the convert stage)")
    y_all = labels[task].astype(np.int64)
    split_codes = splits[task]
    keep = np.ones(y_all.shape[0], dtype=bool)
    if group is not None:
        if not (features_dir / "groups.npy").exists():
            raise HmsparError(f"{features_dir}: dataset has no groups, but group {group!r} was requested")
        groups = np.load(features_dir / "groups.npy")
        if group not in set(groups.tolist()):
            raise HmsparError(f"{features_dir}: unknown group {group!r} (groups: {', '.join(sorted(set(groups.tolist())))})")
        keep &= groups == group
    index = {name: np.flatnonzero(keep & (split_codes == code)) for name, code in SPLIT_NAMES.items()}
    for name, idx in index.items():
        if name == "val" and idx.size == 0:  # no validation rows: selection by k-fold in the training code
            continue
        if idx.size == 0 or np.unique(y_all[idx]).size < 2:
            raise HmsparError(f"{features_dir}: task {task!r}{' group ' + group if group else ''} has a "
                              f"{name} split with {idx.size} entities and fewer than two classes")
    ids = np.load(features_dir / "ids.npy", mmap_mode="r")
    sources: dict[str, np.ndarray] = {}
    for m in modalities:
        sources[m] = _open(features_dir / f"{m}.npy", y_all.shape[0])
        if m == "series":
            sources["mask"] = _open(features_dir / "mask.npy", y_all.shape[0])
    # Normalisation fitted on the training split only.
    stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if "series" in sources:
        stats["series"] = fit_standardiser(MappedRows(sources["series"], index["train"]), axes=(0, 2))
    if "text" in sources and sources["text"].shape[1]:
        # Sentence-embedding dimensions have std ~0.02: without this every model taking text sees
        # nearly constant inputs.
        stats["text"] = fit_standardiser(MappedRows(sources["text"], index["train"]), axes=(0,))
    if "static" in sources and sources["static"].shape[1]:
        n_cols = sources["static"].shape[1]
        numeric = np.asarray(meta.get("static_numeric", [True] * n_cols), dtype=bool)
        if numeric.shape != (n_cols,):
            raise HmsparError(f"{features_dir}/meta.json: static_numeric has {numeric.size} entries for "
                              f"{n_cols} static columns (rerun the convert stage)")
        mean, std = fit_standardiser(MappedRows(sources["static"], index["train"]), axes=(0,))
        mean[:, ~numeric] = 0.0
        std[:, ~numeric] = 1.0
        stats["static"] = (mean, std)
    out = {}
    for name, idx in index.items():
        X = {k: MappedRows(src, idx, *stats.get(k, (None, None))) for k, src in sources.items()}
        part = SplitData(X, y_all[idx], np.asarray(ids[idx]))
        out[name] = part if lazy else part.materialise()
    return out


def _open(path: Path, n: int) -> np.ndarray:
    """Memory-map a feature array, checking it has one row per entity."""
    array = np.load(path, mmap_mode="r")
    if array.ndim < 2 or array.shape[0] != n:
        raise HmsparError(f"{path}: expected {n} rows, found shape {array.shape} (rerun the convert stage)")
    return array

"""Import a labelled sequence-classification table (one row per entity: id, label, values) as a raw dataset.

File formats (by suffix):

* CSV / TSV (UTF-8 or Latin-1): each line is ``id, label, v1, v2, ...``. Rows may have different lengths;
  shorter ones are padded with NaN (unobserved, hence masked by the convert step) to the longest. Empty
  cells and ``NaN``/``NA``/``?`` are missing values. A first line whose value fields are all non-numeric is
  a header (``header: true/false`` overrides the guess); columns are taken by position, not by name.
* Parquet: the same layout as columns (first the id, then the label, then one column per step).
* ``.npz``: arrays ``values`` (N, T) or (N, 1, T), ``labels`` (N,) and optionally ``ids`` (N,).

Labels may be binary or multi-class, numbers or strings: the distinct labels, sorted (numerically when
they all are numbers), become class codes 0..K-1; the mapping is stored in ``meta.json``
(``classes.<task>``). The dataset has a single channel ``value`` and declares the modalities ``series``
and ``image`` only: such tables carry no text and no static attributes, so no model builds an encoder
for them (the stored description "A series of length L." is kept for reference, never embedded).

Values (``values``): ``signed`` series are real-valued measurements (e.g. z-normalised): stored as they
are, 0 is an ordinary value, only missing cells are gaps. ``nonnegative`` series are activity (``log1p``,
0 = inactive). ``auto`` (the default) decides from the values of the whole table, labels not involved:
signed when any value is negative, else non-negative. ``negatives: shift`` (explicit only) subtracts each
series' own minimum (a per-entity transform, nothing leaks across splits) and reads the result as
non-negative activity; ``negatives: error`` (the default) only matters with ``values: nonnegative``,
where a negative value is an error naming the cell.

A predefined split (``split_path``) is a table with columns ``id`` and ``split`` (``train``, ``val`` or
``validation``, ``test``) listing every entity. If it has no validation rows, none are invented: the
training code then selects epochs, early-stopping rounds and the binary threshold by stratified k-fold
inside the training rows and refits on all of them (:mod:`hmspar.training.selection`). The codes
(0 train, 1 validation, 2 test, aligned with the entities) are stored in ``meta.json`` as ``split_codes``,
with ``split: predefined``, for the convert step to use instead of drawing its own split.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from hmspar.data.importers import ImportConfig, cap_entities
from hmspar.data.importers.readers import (
    MISSING_TOKENS,
    SEPARATORS,
    check_exists,
    format_row,
    read_table,
    read_text,
    table_format,
)
from hmspar.data.schema import RawDataset
from hmspar.data.splits import SPLIT_NAMES, TEST, TRAIN, VAL
from hmspar.errors import HmsparError

#: Split names accepted in a split file -> split code.
SPLIT_WORDS = {"train": TRAIN, "val": VAL, "valid": VAL, "validation": VAL, "test": TEST}


@dataclasses.dataclass(frozen=True)
class Config(ImportConfig):
    """``imports.<name>`` settings of a ``kind: series`` dataset.

    Attributes
    ----------
    path : str
        The table (CSV, TSV, Parquet or ``.npz``).
    task : str
        Name of the classification task (the label column's meaning), e.g. ``label`` or ``activity``.
    split_path : str or None
        Optional predefined split (columns ``id``, ``split``); None lets the convert step draw a stratified
        split from ``seed``, ``val_fraction`` and ``test_fraction``.
    header : bool or None
        Whether a CSV/TSV file starts with a header line; None guesses (see the module docstring).
    values : {"auto", "signed", "nonnegative"}
        How the values are read (see the module docstring); ``auto`` is signed when any value is negative.
    negatives : {"error", "shift"}
        ``shift``: subtract each series' minimum and read the result as non-negative activity (explicit
        only); ``error``: a negative value with ``values: nonnegative`` is an error.
    frequency : {"step", "day", "week", "month"}
        What one step is (recorded in ``meta.json``).
    image_size : int
        ISA-GAF image side; at most the longest series length.
    """

    task: str = "label"
    split_path: str | None = None
    header: bool | None = None
    values: Literal["auto", "signed", "nonnegative"] = "auto"
    negatives: Literal["error", "shift"] = "error"
    frequency: Literal["step", "day", "week", "month"] = "step"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.task.isidentifier():
            raise ValueError(f"task must be a simple name (letters, digits, underscores), got {self.task!r}")
        if self.image_size is None:
            raise ValueError("image_size must be a positive integer")
        if self.negatives == "shift" and self.values == "signed":
            raise ValueError("negatives: 'shift' turns series into non-negative activity; it cannot be combined "
                             "with values: signed")


@dataclasses.dataclass
class _Table:
    """A series table as read: ids and labels as strings, values (N, T) float64 with NaN for missing."""

    ids: np.ndarray
    labels: np.ndarray
    values: np.ndarray
    id_column: str
    label_column: str
    value_column: Callable[[int], str]
    row: Callable[[int], str]  # 0-based row -> "row 3: ..." / "line 4: ..."


def _cells(fields: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(f if len(f) <= 30 else f[:27] + "...") for f in fields[:limit])
    return f"[{shown}{', ...' if len(fields) > limit else ''}]"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_values(flat: list[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strings -> float64 values and a mask of cells that are neither a number nor a missing token."""
    s = pd.Series(np.asarray(flat, dtype=object), dtype=object).astype(str).str.strip()
    missing = s.isin(MISSING_TOKENS).to_numpy()
    num = pd.to_numeric(s.where(~missing), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (np.isnan(num) & ~missing) | np.isinf(num)
    return num, bad


def _read_delimited(path: Path, sep: str, header: bool | None) -> tuple[_Table, str]:
    text, encoding = read_text(path)
    numbered = [(i + 1, r) for i, r in enumerate(csv.reader(io.StringIO(text), delimiter=sep))
                if any(f.strip() for f in r)]  # csv line numbers of the non-blank rows
    lines = [i for i, _ in numbered]
    rows = [r for _, r in numbered]
    if not rows:
        raise HmsparError(f"{path}: the file is empty")
    if header is None:
        head = [f.strip() for f in rows[0][2:]]
        header = len(rows[0]) >= 3 and not any(_is_number(f) or f in MISSING_TOKENS for f in head)
    names = [f.strip() for f in rows[0]] if header else []
    if header:
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise HmsparError(f"{path}: the file has a header ({_cells(names)}) but no data rows")

    def column(j: int) -> str:
        if j < len(names) and names[j]:
            return repr(names[j])
        return f"{j + 1} ({('id', 'label')[j] if j < 2 else f'value {j - 1}'})"

    def row(i: int) -> str:
        return f"line {lines[i]}: {_cells(rows[i])}"

    short = np.flatnonzero([len(r) < 3 for r in rows])
    if short.size:
        raise HmsparError(f"{path}: column {column(2)}: {short.size} row(s) without values (each row needs an id, "
                          f"a label and at least one value), first at {row(int(short[0]))}")
    lengths = np.array([len(r) - 2 for r in rows])
    num, bad = _parse_values(list(itertools.chain.from_iterable(r[2:] for r in rows)))
    values = np.full((len(rows), int(lengths.max())), np.nan)
    row_of = np.repeat(np.arange(len(rows)), lengths)
    col_of = np.arange(row_of.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    if bad.any():
        k = int(np.argmax(bad))
        raise HmsparError(f"{path}: column {column(int(col_of[k]) + 2)}: non-numeric values in {int(bad.sum())} "
                          f"cell(s), first {rows[row_of[k]][col_of[k] + 2]!r} at {row(int(row_of[k]))}")
    values[row_of, col_of] = num
    table = _Table(ids=np.array([r[0].strip() for r in rows], dtype=object),
                   labels=np.array([r[1].strip() for r in rows], dtype=object), values=values,
                   id_column=column(0), label_column=column(1), value_column=lambda j: column(j + 2), row=row)
    return table, encoding


def _read_parquet(path: Path) -> tuple[_Table, str]:
    frame, encoding = read_table(path)
    if frame.shape[1] < 3:
        raise HmsparError(f"{path}: a series table needs an id column, a label column and at least one value "
                          f"column; found columns {list(frame.columns)}")
    idc, labc, valc = frame.columns[0], frame.columns[1], list(frame.columns[2:])
    ids = np.where(frame[idc].isna(), "", frame[idc].astype(str).str.strip()).astype(object)
    labels = np.where(frame[labc].isna(), "", frame[labc].astype(str).str.strip()).astype(object)
    block = frame[valc]
    if all(pd.api.types.is_numeric_dtype(block[c].dtype) and not pd.api.types.is_bool_dtype(block[c].dtype)
           for c in valc):
        values = block.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isinf(values)
    else:
        num, bad = _parse_values(block.to_numpy(dtype=object).ravel())
        values, bad = num.reshape(block.shape), bad.reshape(block.shape)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise HmsparError(f"{path}: column {valc[j]!r}: non-numeric values in {int(bad.sum())} cell(s), first at "
                          f"{format_row(frame, int(i), [valc[j]])}")
    table = _Table(ids=ids, labels=labels, values=values, id_column=repr(idc), label_column=repr(labc),
                   value_column=lambda j: repr(valc[j]), row=lambda i: format_row(frame, i))
    return table, encoding


def _read_npz(path: Path) -> tuple[_Table, str]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile and numpy raise several types for a corrupt archive
        raise HmsparError(f"{path}: not a readable .npz archive ({exc})") from None
    for key in ("values", "labels"):
        if key not in arrays:
            raise HmsparError(f"{path}: array {key!r} missing (found: {', '.join(sorted(arrays)) or 'none'}); "
                              "expected 'values' (N, T), 'labels' (N,) and optionally 'ids' (N,)")
    values = arrays["values"]
    if values.ndim == 3 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
        raise HmsparError(f"{path}: array 'values' must be numeric with shape (N, T) or (N, 1, T), got "
                          f"{values.dtype} {values.shape}")
    n = values.shape[0]
    ids = arrays.get("ids", np.array([f"S{i:06d}" for i in range(1, n + 1)]))
    labels = arrays["labels"]
    for key, arr in (("labels", labels), ("ids", ids)):
        if arr.shape != (n,):
            raise HmsparError(f"{path}: array {key!r} must have shape ({n},) to match 'values', got {arr.shape}")
    values = values.astype(np.float64)
    if np.isinf(values).any():
        i, j = np.argwhere(np.isinf(values))[0]
        raise HmsparError(f"{path}: array 'values': infinite values, first at row {i + 1}, step {j + 1}")

    def row(i: int) -> str:
        cells = _cells([f"{v:g}" for v in values[i]])
        return f"row {i + 1}: id {str(ids[i])!r}, label {str(labels[i])!r}, values {cells}"

    table = _Table(ids=np.array([str(x).strip() for x in ids], dtype=object),
                   labels=np.array([str(x).strip() for x in labels], dtype=object), values=values,
                   id_column="'ids'", label_column="'labels'", value_column=lambda j: f"'values'[:, {j}]", row=row)
    return table, "npz"


def read_series_table(path: str | Path, header: bool | None = None) -> tuple[_Table, str]:
    """Read a series table by suffix and check ids and values (see the module docstring for formats).

    Returns
    -------
    table : _Table
        ``ids`` and ``labels`` (object arrays of str), ``values`` (N, T) float64 with NaN padding.
    encoding : str
        ``"utf-8"``, ``"latin-1"``, ``"parquet"`` or ``"npz"``.

    Raises
    ------
    HmsparError
        For an empty file, a row without values, non-numeric values, missing or duplicate ids, missing
        labels, or a row without any observed value; the message names the file, the column and a row.
    """
    path = Path(path)
    fmt = table_format(path, allowed=("csv", "tsv", "parquet", "npz"))
    if path.stat().st_size == 0:
        raise HmsparError(f"{path}: the file is empty")
    if fmt == "npz":
        table, encoding = _read_npz(path)
    elif fmt == "parquet":
        table, encoding = _read_parquet(path)
    else:
        table, encoding = _read_delimited(path, SEPARATORS[fmt], header)
    empty = np.flatnonzero(table.ids == "")
    if empty.size:
        raise HmsparError(f"{path}: column {table.id_column}: missing ids in {empty.size} row(s), first at "
                          f"{table.row(int(empty[0]))}")
    seen = pd.Series(table.ids).duplicated(keep="first").to_numpy()
    if seen.any():
        k = int(np.argmax(seen))
        first = int(np.argmax(table.ids == table.ids[k]))
        raise HmsparError(f"{path}: column {table.id_column}: duplicate ids in {int(seen.sum())} row(s), first "
                          f"{table.ids[k]!r} at {table.row(k)} (already at {table.row(first)})")
    missing = np.flatnonzero(table.labels == "")
    if missing.size:
        raise HmsparError(f"{path}: column {table.label_column}: missing labels in {missing.size} row(s), first at "
                          f"{table.row(int(missing[0]))}")
    unobserved = np.flatnonzero(np.isnan(table.values).all(axis=1))
    if unobserved.size:
        raise HmsparError(f"{path}: column {table.value_column(0)}: {unobserved.size} row(s) without any observed "
                          f"value, first at {table.row(int(unobserved[0]))}")
    return table, encoding


def class_codes(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Map label strings to codes 0..K-1 in sorted order (numeric order when every label is a number).

    Returns
    -------
    codes : np.ndarray
        (N,) int8.
    classes : list of str
        ``classes[k]`` is the label of code ``k``.
    """
    distinct = sorted(set(labels.tolist()))
    if all(_is_number(x) for x in distinct):
        distinct = sorted(distinct, key=lambda x: (float(x), x))
    if len(distinct) > 126:
        raise HmsparError(f"{len(distinct)} distinct labels; at most 126 classes are supported")
    lookup = {c: k for k, c in enumerate(distinct)}
    return np.array([lookup[x] for x in labels.tolist()], dtype=np.int8), distinct


def _predefined_split(cfg: Config, ids: np.ndarray, codes: np.ndarray, all_ids: np.ndarray) -> np.ndarray:
    """Split codes (0 train, 1 val, 2 test) from ``cfg.split_path`` for the entities ``ids``."""
    path = check_exists(cfg.split_path, f"{cfg.where}.split_path")
    frame, _ = read_table(path, str_columns=("id", "split"))
    for column in ("id", "split"):
        if column not in frame.columns:
            raise HmsparError(f"{path}: column {column!r} not found (a split file has columns 'id' and 'split'); "
                              f"the file has columns {list(frame.columns)}; first {format_row(frame, 0)}")
    sid = frame["id"].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    word = frame["split"].fillna("").astype(str).str.strip().str.lower()
    unknown_word = ~word.isin(list(SPLIT_WORDS)).to_numpy()
    if unknown_word.any():
        k = int(np.argmax(unknown_word))
        raise HmsparError(f"{path}: column 'split': values must be train, val or test, got {frame['split'].iloc[k]!r} "
                          f"at {format_row(frame, k)}")
    dup = pd.Series(sid).duplicated().to_numpy()
    if dup.any():
        raise HmsparError(f"{path}: column 'id': duplicate ids, first at {format_row(frame, int(np.argmax(dup)))}")
    foreign = ~pd.Series(sid).isin(set(all_ids.tolist())).to_numpy()
    if foreign.any():
        raise HmsparError(f"{path}: column 'id': {int(foreign.sum())} id(s) not in {cfg.path}, first at "
                          f"{format_row(frame, int(np.argmax(foreign)))}")
    position = pd.Index(sid).get_indexer(ids)
    if (position < 0).any():
        absent = ids[position < 0]
        raise HmsparError(f"{path}: column 'id': {absent.size} entit{'y' if absent.size == 1 else 'ies'} of "
                          f"{cfg.path} not listed, e.g. {absent[0]!r}; the split file must list every entity")
    split = word.map(SPLIT_WORDS).to_numpy(dtype=np.int8)[position]
    # No validation rows: none are carved out of the training rows; selection uses k-fold inside them.
    for name, code in SPLIT_NAMES.items():
        if code == VAL and not (split == VAL).any():
            continue
        present = np.unique(codes[split == code])
        if present.size < 2:
            raise HmsparError(f"{path}: column 'split': the {name} split has {int((split == code).sum())} entities and "
                              f"{'no class' if present.size == 0 else 'a single class'}; every split needs at least "
                              "two classes")
    return split


def generate(cfg: Config, progress: bool = True) -> RawDataset:
    """Import the series table ``cfg.path`` (the ``generate`` stage of a ``kind: series`` dataset).

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Unused; kept for the generator interface.

    Returns
    -------
    RawDataset
        Series (N, 1, T) with channel ``value`` (NaN after each row's end), task ``cfg.task`` with codes
        0..K-1, empty static frame, ``values`` signed or non-negative, modalities ``series, image``; ``extra_meta`` holds ``classes`` and, with a split file,
        ``split: "predefined"`` and ``split_codes``.

    Raises
    ------
    HmsparError
        See :func:`read_series_table`; also for a single class, negative values with
        ``values: nonnegative`` (unless ``negatives: shift``), an ``image_size`` above the series length, or a bad split file.
    """
    path = check_exists(cfg.path, f"{cfg.where}.path")
    table, encoding = read_series_table(path, cfg.header)
    keep = cap_entities(table.ids.size, cfg.n_entities, cfg.seed)
    ids, raw_labels, values = table.ids[keep], table.labels[keep], table.values[keep]
    codes, classes = class_codes(raw_labels)
    if len(classes) < 2:
        raise HmsparError(f"{path}: column {table.label_column}: a single class ({classes[0]!r}) in all {ids.size} "
                          f"rows, e.g. {table.row(int(keep[0]))}; a classification task needs at least two")
    negative = np.nan_to_num(values, nan=0.0) < 0
    shifted = cfg.negatives == "shift"
    if negative.any() and cfg.values == "nonnegative" and not shifted:
        i, j = np.argwhere(negative)[0]
        raise HmsparError(f"{path}: column {table.value_column(int(j))}: negative values in {int(negative.sum())} "
                          f"cell(s), first {values[i, j]:g} at {table.row(int(keep[i]))}, but "
                          f"{cfg.where}.values is 'nonnegative'; set {cfg.where}.values: signed (or auto) for "
                          f"real-valued series, or {cfg.where}.negatives: shift to subtract each series' own minimum")
    if shifted:
        values = values - np.nanmin(values, axis=1, keepdims=True)
        value_kind = "nonnegative"
    elif cfg.values == "auto":  # from the values of the whole table; labels are not involved
        value_kind = "signed" if negative.any() else "nonnegative"
    else:
        value_kind = cfg.values
    observed = ~np.isnan(values)
    ends = observed.shape[1] - np.argmax(observed[:, ::-1], axis=1)  # last observed step + 1, per row
    length = int(ends.max())
    values = values[:, :length]
    if cfg.image_size > length:
        raise HmsparError(f"{cfg.where}.image_size: {cfg.image_size} exceeds the longest series in {path} "
                          f"({length} values); set image_size to at most {length}")
    texts = [f"A series of length {int(e)}." for e in ends]
    extra = {
        "source": {"kind": "series", "path": str(cfg.path), "encoding": encoding, "rows": int(table.ids.size),
                   "negatives": cfg.negatives, "values": cfg.values},
        "classes": {cfg.task: classes},
        "distinct_texts": len(set(texts)),
    }
    if cfg.split_path is not None:
        extra["split"] = "predefined"
        extra["split_codes"] = _predefined_split(cfg, ids, codes, table.ids).astype(int).tolist()
        extra["split_source"] = str(cfg.split_path)
    class_list = ", ".join(f"{c}={k}" for k, c in enumerate(classes))
    return RawDataset(
        name=cfg.name or path.stem,
        series=values[:, None, :].astype(np.float32),
        channels=["value"],
        ids=ids.astype(str),
        text=texts,
        static=pd.DataFrame(index=pd.RangeIndex(ids.size)),
        labels={cfg.task: codes},
        label_definitions={cfg.task: f"The class given in column {table.label_column} of {cfg.path} "
                                     f"({len(classes)} classes: {class_list})."},
        frequency=cfg.frequency,
        extra_meta=extra,
        values=value_kind,
        modalities=["series", "image"],
    )

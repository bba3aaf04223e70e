"""Reading user files for the importers: CSV, TSV and Parquet by suffix, UTF-8 with a Latin-1 fallback,
and error messages that name the file, the column and a sample row.

Every problem with a user's file is raised as :class:`~hmspar.errors.HmsparError` with the file path first,
so the ``generate`` stage prints one line saying what to fix and exits non-zero.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hmspar.errors import HmsparError

#: Encodings tried in order for text files (``utf-8-sig`` also accepts plain UTF-8 and strips a BOM).
ENCODINGS = ("utf-8-sig", "latin-1")
#: Suffix -> table format. A trailing compression suffix (``.gz``, ``.bz2``, ``.xz``, ``.zip``) is allowed
#: on text formats.
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip")
SEPARATORS = {"csv": ",", "tsv": "\t"}
#: Strings read as a missing value in numeric series cells (besides the empty string).
MISSING_TOKENS = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None", "?"})


def table_format(path: str | Path, allowed: Sequence[str] = ("csv", "tsv", "parquet")) -> str:
    """Return ``"csv"``, ``"tsv"``, ``"parquet"`` (or another allowed format) from the file suffix.

    Raises
    ------
    HmsparError
        If the suffix is not one of the supported ones.
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    fmt = FORMATS.get(suffix) if suffix != ".npz" else "npz"
    if fmt is None or fmt not in allowed:
        known = sorted(s for s, f in FORMATS.items() if f in allowed) + ([".npz"] if "npz" in allowed else [])
        raise HmsparError(f"{path}: unsupported file type {suffix or '(no suffix)'!r} "
                          f"(supported: {', '.join(known)})")
    return fmt


def check_exists(path: str | Path, key: str) -> Path:
    """Return ``Path(path)`` or raise an error naming the params ``key`` when the file is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise HmsparError(f"{key}: file {str(path)!r} not found (paths are relative to the repository root)")
    if path.stat().st_size == 0:
        raise HmsparError(f"{path}: the file is empty")
    return path


def read_text(path: str | Path) -> tuple[str, str]:
    """Read a whole text file, trying UTF-8 first and Latin-1 second.

    Returns
    -------
    text : str
    encoding : str
        The encoding that worked (``"utf-8"`` or ``"latin-1"``).
    """
    path = Path(path)
    raw = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in COMPRESSIONS:
        import bz2
        import gzip
        import lzma
        import zipfile

        if suffix == ".gz":
            raw = gzip.decompress(raw)
        elif suffix == ".bz2":
            raw = bz2.decompress(raw)
        elif suffix == ".xz":
            raw = lzma.decompress(raw)
        else:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                names = zf.namelist()
                if len(names) != 1:
                    raise HmsparError(f"{path}: a zip archive must hold exactly one file, found {len(names)}")
                raw = zf.read(names[0])
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def read_table(path: str | Path, str_columns: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
    """Read a CSV, TSV or Parquet table (by suffix) into a DataFrame.

    Parameters
    ----------
    path : path
        The file; ``.csv``, ``.tsv``/``.tab``/``.txt`` (optionally compressed) or ``.parquet``/``.pq``.
    str_columns : sequence of str
        Columns read as strings from text files (identifiers keep leading zeros; dates are parsed by the
        caller). Columns not in the file are ignored here (the caller reports them).

    Returns
    -------
    frame : pd.DataFrame
        The table with a default RangeIndex (row ``i`` is data row ``i + 1`` of the file).
    encoding : str
        ``"utf-8"``, ``"latin-1"`` or ``"parquet"``.

    Raises
    ------
    HmsparError
        If the file is empty, has a header but no rows, or cannot be parsed.
    """
    path = Path(path)
    fmt = table_format(path)
    if path.stat().st_size == 0:
        raise HmsparError(f"{path}: the file is empty")
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
            raise HmsparError(f"{path}: not a readable Parquet file ({exc})") from None
        encoding = "parquet"
    else:
        sep = SEPARATORS[fmt]
        frame = None
        for encoding in ENCODINGS:
            try:
                header = pd.read_csv(path, sep=sep, encoding=encoding, nrows=0)
                dtype = {c: str for c in str_columns if c in header.columns}
                frame = pd.read_csv(path, sep=sep, encoding=encoding, dtype=dtype, low_memory=False)
                break
            except UnicodeDecodeError:
                continue
            except pd.errors.EmptyDataError:
                raise HmsparError(f"{path}: the file is empty") from None
            except pd.errors.ParserError as exc:
                raise HmsparError(f"{path}: not a valid {fmt.upper()} file ({exc})") from None
        assert frame is not None  # latin-1 decodes every byte sequence
        encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    if len(frame) == 0:
        raise HmsparError(f"{path}: the file has a header ({', '.join(map(str, frame.columns[:8]))}) but no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True), encoding


def _short(value: Any, width: int = 40) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_row(frame: pd.DataFrame, position: int, columns: Sequence[str] | None = None, max_columns: int = 8) -> str:
    """``"row 7: {'customer_id': 'C3', 'total': '-5'}"``: data row ``position + 1`` of ``frame``.

    Parameters
    ----------
    frame : pd.DataFrame
        The table as read (default RangeIndex).
    position : int
        0-based row position.
    columns : sequence of str, optional
        Columns to show first (the rest follow up to ``max_columns``).
    """
    cols = list(columns or []) + [c for c in frame.columns if c not in (columns or [])]
    cols = [c for c in cols if c in frame.columns][:max_columns]
    row = frame.iloc[position]
    cells = ", ".join(f"{c!r}: {_short(row[c])}" for c in cols)
    more = ", ..." if len(frame.columns) > len(cols) else ""
    return f"row {position + 1}: {{{cells}{more}}}"


def row_error(path: str | Path, column: str, problem: str, frame: pd.DataFrame, bad: np.ndarray,
              columns: Sequence[str] | None = None) -> HmsparError:
    """An error naming the file, the column, the problem, how many rows have it and the first such row.

    Parameters
    ----------
    path : path
        The user's file.
    column : str
        The offending column.
    problem : str
        What is wrong, e.g. ``"negative amounts"``.
    frame : pd.DataFrame
        The table as read.
    bad : np.ndarray
        Boolean mask (or positions) of the offending rows; must select at least one.
    columns : sequence of str, optional
        Columns to show first in the sample row.
    """
    positions = np.flatnonzero(bad) if np.asarray(bad).dtype == bool else np.asarray(bad)
    first = int(positions[0])
    count = f"{positions.size} row{'s' if positions.size != 1 else ''}"
    shown = [column] + [c for c in (columns or []) if c != column]
    return HmsparError(f"{path}: column {column!r}: {problem} in {count}, first at {format_row(frame, first, shown)}")

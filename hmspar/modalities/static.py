"""Static modality: turn a frame of entity attributes into a float32 matrix without fitting anything.

Categorical columns (object, string or category dtype) become one-hot blocks named ``"<col>=<value>"``;
numeric columns (float, int, bool) pass through as they are. Calendar columns (every value a weekday or
every value a month name) are encoded cyclically instead, as ``"<col>_sin"`` and ``"<col>_cos"`` of the
angle ``2 pi position / period``, so Sunday sits next to Monday and December next to January, and a
month never seen in training (a temporal split) still lands between its neighbours instead of on an
all-zero one-hot block. Nothing here is fitted on the data beyond
listing the categories: missing numbers are set to 0 with a ``"<col>__missing"`` indicator column
(never imputed with a statistic, which would leak validation and test rows into training), and
standardisation is left to the loader, which fits it on the training split using ``numeric_mask``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hmspar.errors import HmsparError

__all__ = ["encode_static", "CYCLES"]

MISSING_SUFFIX = "__missing"

#: Calendar cycles recognised by ``cyclic="auto"``: name -> spellings, each a tuple in cycle order.
CYCLES: dict[str, tuple[tuple[str, ...], ...]] = {
    "weekday": (("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
                ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")),
    "month": (("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
              ("January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December")),
}


def _calendar_cycle(values: set[str]) -> tuple[str, ...] | None:
    """The spelling of a calendar cycle holding every one of ``values`` (non-empty), else None."""
    if not values:
        return None
    for spellings in CYCLES.values():
        for order in spellings:
            if values <= set(order):
                return order
    return None


def _is_categorical(series: pd.Series) -> bool:
    """True for object, string and category columns (the ones that are one-hot encoded)."""
    dtype = series.dtype
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype))


def encode_static(
    frame: pd.DataFrame,
    categories: dict[str, list[str]] | None = None,
    cyclic: bool = True,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Encode static attributes as a float32 matrix: one-hot categoricals, sin/cos calendar columns,
    numeric columns as they are.

    Columns keep the order of ``frame``; each categorical column expands in place into one column per
    category (sorted by their string form unless ``categories`` gives the list), followed by
    ``"<col>__missing"`` if the column has missing values. A numeric column is followed by
    ``"<col>__missing"`` when it has NaNs, which are set to 0 (no median or mean imputation: that would
    be a statistic of all rows, validation and test included).

    Parameters
    ----------
    frame : pd.DataFrame
        N rows of attributes; categorical columns have object, string or category dtype, numeric ones
        float, int or bool dtype. May have no columns.
    categories : dict[str, list[str]] or None, default None
        Fixed category lists per column, in the order wanted (e.g. to give several frames the same
        columns). A column listed here is one-hot encoded even if numeric (values compared as ``str``);
        values outside the list get an all-zero block. Other categorical columns use the sorted
        distinct values found in ``frame``.
    cyclic : bool, default True
        Encode a categorical column whose values all belong to one calendar cycle of :data:`CYCLES`
        (weekday or month names, abbreviated or full) as ``"<col>_sin", "<col>_cos"`` with angle
        ``2 pi i / period`` for the value at position ``i`` of the cycle (missing values: both 0, plus
        the missing indicator). Columns listed in ``categories`` stay one-hot. These columns are
        bounded and are not standardised (``numeric_mask`` False).

    Returns
    -------
    matrix : np.ndarray
        float32 array of shape (N, F).
    columns : list[str]
        F column names: ``"<col>=<value>"``, ``"<col>"``, ``"<col>_sin"``, ``"<col>_cos"`` or
        ``"<col>__missing"``.
    numeric_mask : np.ndarray
        bool array of shape (F,), True for the pass-through numeric columns (the ones to standardise).

    Raises
    ------
    HmsparError
        If ``categories`` names an absent column, or a column has an unsupported dtype or infinite values.

    Examples
    --------
    >>> frame = pd.DataFrame({"region": ["South", "North", "South"], "age": [3.0, None, 5.0]})
    >>> matrix, columns, numeric = encode_static(frame)
    >>> columns
    ['region=North', 'region=South', 'age', 'age__missing']
    >>> matrix.tolist()
    [[0.0, 1.0, 3.0, 0.0], [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 5.0, 0.0]]
    >>> numeric.tolist()
    [False, False, True, False]
    """
    if not isinstance(frame, pd.DataFrame):
        raise HmsparError(f"static encoding: expected a pandas DataFrame, got {type(frame).__name__}")
    categories = dict(categories or {})
    unknown = sorted(set(map(str, categories)) - set(map(str, frame.columns)))
    if unknown:
        raise HmsparError(f"static encoding: categories given for absent column(s) {unknown}; "
                          f"frame has {[str(c) for c in frame.columns]}")
    n = len(frame)
    blocks: list[np.ndarray] = []  # each (N, k)
    columns: list[str] = []
    numeric: list[bool] = []
    for col in frame.columns:
        name = str(col)
        values = frame[col]
        missing = values.isna().to_numpy()  # (N,)
        as_str = None
        cycle = None
        if name in categories or _is_categorical(values):
            as_str = np.array(["" if m else str(v) for v, m in zip(values.tolist(), missing)], dtype=object)
            if cyclic and name not in categories:
                cycle = _calendar_cycle(set(as_str[~missing].tolist()))
        if cycle is not None:
            position = {v: i for i, v in enumerate(cycle)}
            angle = np.array([2 * np.pi * position[v] / len(cycle) if not m else 0.0
                              for v, m in zip(as_str.tolist(), missing)])  # (N,)
            block = np.stack([np.sin(angle), np.cos(angle)], axis=1) * ~missing[:, None]  # (N, 2)
            blocks.append(block.astype(np.float32))
            columns += [f"{name}_sin", f"{name}_cos"]
            numeric += [False, False]
        elif as_str is not None:
            if name in categories:
                levels = [str(v) for v in categories[name]]
                if len(set(levels)) != len(levels):
                    raise HmsparError(f"static encoding: categories of column {name!r} repeat a value: {levels}")
            else:
                levels = sorted(set(as_str[~missing].tolist()))
            onehot = np.stack([(as_str == level) & ~missing for level in levels], axis=1) if levels \
                else np.zeros((n, 0), dtype=bool)  # (N, K)
            blocks.append(onehot.astype(np.float32))
            columns += [f"{name}={level}" for level in levels]
            numeric += [False] * len(levels)
        elif pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
            x = values.to_numpy(dtype=np.float64, na_value=np.nan)  # (N,)
            if np.isinf(x).any():
                raise HmsparError(f"static encoding: column {name!r} has infinite values "
                                  f"(row {int(np.flatnonzero(np.isinf(x))[0])})")
            blocks.append(np.where(missing, 0.0, x).astype(np.float32)[:, None])
            columns.append(name)
            numeric.append(True)
        else:
            raise HmsparError(f"static encoding: column {name!r} has unsupported dtype {values.dtype} "
                              "(expected str/category for categorical or float/int/bool for numeric)")
        if missing.any():
            blocks.append(missing.astype(np.float32)[:, None])
            columns.append(name + MISSING_SUFFIX)
            numeric.append(False)
    matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0), dtype=np.float32)  # (N, F)
    return np.ascontiguousarray(matrix, dtype=np.float32), columns, np.array(numeric, dtype=bool)

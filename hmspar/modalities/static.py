"""Static modality: turn a frame of entity attributes into a float32 matrix without fitting anything.

Categorical columns (object, string or category dtype) become one-hot blocks named ``"<col>=<value>"``;
numeric columns (float, int, bool) pass through as they are. Nothing here is fitted on the data beyond
listing the categories: missing numbers are set to 0 with a ``"<col>__missing"`` indicator column
(never imputed with a statistic, which would leak validation and test rows into training), and
standardisation is left to the loader, which fits it on the training split using ``numeric_mask``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hmspar.errors import HmsparError

__all__ = ["encode_static"]

MISSING_SUFFIX = "__missing"


def _is_categorical(series: pd.Series) -> bool:
    """True for object, string and category columns (the ones that are one-hot encoded)."""
    dtype = series.dtype
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype))


def encode_static(
    frame: pd.DataFrame,
    categories: dict[str, list[str]] | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Encode static attributes as a float32 matrix: one-hot categoricals, numeric columns as they are.

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

    Returns
    -------
    matrix : np.ndarray
        float32 array of shape (N, F).
    columns : list[str]
        F column names: ``"<col>=<value>"``, ``"<col>"`` or ``"<col>__missing"``.
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
        if name in categories or _is_categorical(values):
            as_str = np.array(["" if m else str(v) for v, m in zip(values.tolist(), missing)], dtype=object)
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

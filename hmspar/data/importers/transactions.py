"""Import a transaction log (one row per purchase) as a customer dataset: period series, a description of
the input window, static attributes and churn / repurchase / engagement labels from a later horizon.

Windows. Dates are cut into calendar periods (``day``; ``week``, Monday to Sunday; ``month``). The *input
window* is the ``input_periods`` periods ending with the *cutoff* (``params: cutoff``, the last day of the
input window, which must be the last day of a period), or, without a cutoff, ending ``horizon`` periods
before the log's last complete period. The *label window* is the ``horizon`` periods right after it. The
two never overlap: series, text and static attributes are computed from input-window rows only, labels
from label-window rows only, and rows after the label window are ignored.

Entities are the customers with at least one row in the input window (sorted by id). Per period they get
``spend`` (sum of the amount column), ``transactions`` (number of rows) and, if a quantity column is
mapped, ``quantity`` (its sum); a period without rows is 0.

Labels (over the label window):

* ``churn``: no row at all; ``repurchase``: at least one row (the complement, for a positive-class view);
* ``engagement``: spend *above* a threshold. Either a number given as ``engagement_threshold``, or (the
  default, ``null``) the median spend over the last ``horizon`` periods of the *input* window among the
  customers who spent anything there. Why not the training split's median of the horizon spend: the split
  is drawn later by the convert step, stratified on this very label, so the label cannot depend on it;
  a median over all customers' horizon spend would put the validation and test customers' future into
  the training labels. The default uses only data observed by the cutoff (what a shop knows when it
  scores its customers) and is the same for every split; its value is stored in ``meta.json``.

Descriptions use only the input window: share of active periods, spend trend, order of magnitude of the
spend per active period, recency of the last purchase, and (if a text column is mapped) the most frequent
text value. Static attributes are the extra columns that are constant per customer over its input-window
rows (or the columns listed in ``static``); numeric ones stay numeric, the others become strings.

Everything is vectorised (period codes, ``np.bincount`` on entity x period indices, one factorisation of
the ids): a 1,000,000-row log imports in seconds (see ``benchmarks/bench_import.py``).
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from hmspar.data.importers import ImportConfig, cap_entities
from hmspar.data.importers.readers import check_exists, format_row, read_table, row_error
from hmspar.data.schema import RawDataset, activity_code, render_texts, trend_code
from hmspar.errors import HmsparError

TASKS = ("churn", "engagement", "repurchase")
FREQUENCIES = ("day", "week", "month")
#: An automatically detected categorical static column with more distinct values than this is taken for an
#: identifier (e.g. an e-mail address) and skipped; list it in ``static`` to keep it anyway.
MAX_CATEGORIES = 100
#: Longest text value quoted in a description.
MAX_TEXT_CHARS = 60

_EPOCH_WEEKDAY_SHIFT = 3  # 1970-01-01 was a Thursday: (day + 3) // 7 starts weeks on Mondays


@dataclasses.dataclass(frozen=True)
class Columns:
    """``imports.<name>.columns``: which column of the log holds what.

    Attributes
    ----------
    entity : str
        Customer id (read as a string).
    time : str
        Date or timestamp of the transaction.
    amount : str
        Non-negative amount spent (the ``spend`` channel).
    quantity : str or None
        Optional non-negative quantity (a ``quantity`` channel).
    text : str or None
        Optional text per row (e.g. the product description); the most frequent value in the input window
        enters the customer's description.
    """

    entity: str
    time: str
    amount: str
    quantity: str | None = None
    text: str | None = None

    def mapped(self) -> dict[str, str]:
        """Role -> column name, for the roles that are set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def __post_init__(self) -> None:
        names = list(self.mapped().values())
        if len(set(names)) != len(names):
            raise ValueError(f"columns: each role needs its own column, got {self.mapped()}")


@dataclasses.dataclass(frozen=True)
class Config(ImportConfig):
    """``imports.<name>`` settings of a ``kind: transactions`` dataset.

    Attributes
    ----------
    path : str
        The log (CSV, TSV or Parquet, by suffix; text files in UTF-8 or Latin-1).
    columns : Columns
        Column mapping (``entity``, ``time``, ``amount``; optional ``quantity``, ``text``).
    frequency : {"day", "week", "month"}
        Period of the series.
    input_periods : int
        Periods in the input window (the series length the models see).
    horizon : int
        Periods in the label window right after the input window.
    tasks : list of str
        Subset of ``churn``, ``engagement``, ``repurchase``.
    cutoff : str or None
        Last day of the input window (ISO date, the last day of a period). None: ``horizon`` periods before
        the log's last complete period. A ``datetime.date`` (what YAML makes of an unquoted ``2011-09-30``)
        is accepted and stored as its ISO text; DVC itself cannot hash such a value, so ``params.yaml``
        quotes it, but the stage run directly or the library may receive one.
    engagement_threshold : float or None
        Spend in the label window above which a customer is engaged; None: the median spend over the last
        ``horizon`` input periods among the customers who spent then (see the module docstring).
    static : list of str or None
        Static attribute columns; None detects the extra columns that are constant per customer.
    date_format : str or None
        ``strftime`` format of the time column (e.g. ``"%d/%m/%Y %H:%M"``); None lets pandas infer it from
        the first value.
    image_size : int or None
        ISA-GAF image side; None means ``min(16, input_periods)``.
    """

    columns: Columns = dataclasses.field(kw_only=True)
    frequency: Literal["day", "week", "month"] = "month"
    input_periods: int = 12
    horizon: int = 3
    tasks: list[str] = dataclasses.field(default_factory=lambda: list(TASKS))
    cutoff: str | datetime.date | None = None
    engagement_threshold: float | None = None
    static: list[str] | None = None
    date_format: str | None = None
    image_size: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_periods < 2:
            raise ValueError(f"input_periods must be at least 2, got {self.input_periods!r}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {self.horizon!r}")
        if not self.tasks:
            raise ValueError(f"tasks must list at least one of {', '.join(TASKS)}")
        for task in self.tasks:
            if task not in TASKS:
                raise ValueError(f"tasks must be chosen from {', '.join(TASKS)}, got {task!r}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks has duplicates: {self.tasks!r}")
        if self.engagement_threshold is not None and not self.engagement_threshold >= 0:
            raise ValueError(f"engagement_threshold must be non-negative (or null), got {self.engagement_threshold!r}")
        if type(self.cutoff) is datetime.date:  # exactly a date: a datetime would carry a time of day
            object.__setattr__(self, "cutoff", self.cutoff.isoformat())
        if self.cutoff is not None:
            if not isinstance(self.cutoff, str):
                raise ValueError(f"cutoff must be an ISO date such as '2011-09-30' (quoted), got {self.cutoff!r}")
            try:
                day = _day_number(pd.Timestamp(self.cutoff))
            except (ValueError, TypeError):
                raise ValueError(f"cutoff must be an ISO date such as 2011-09-30, got {self.cutoff!r}") from None
            if period_of(np.array([day + 1]), self.frequency)[0] == period_of(np.array([day]), self.frequency)[0]:
                last = period_end(period_of(np.array([day]), self.frequency)[0], self.frequency)
                raise ValueError(f"cutoff must be the last day of a {self.frequency} (the end of the input window), "
                                 f"got {self.cutoff!r}; e.g. {last}")
        if self.static is not None:
            clash = sorted(set(self.static) & set(self.columns.mapped().values()))
            if clash:
                raise ValueError(f"static must not list a mapped column, got {clash[0]!r}")
        if self.image_size is None:
            object.__setattr__(self, "image_size", min(16, self.input_periods))
        if self.image_size > self.input_periods:
            raise ValueError(f"image_size must not exceed input_periods ({self.input_periods}), "
                             f"got {self.image_size!r}")
        object.__setattr__(self, "length", self.input_periods)


# ----------------------------------------------------------------------------------------------------------
# Calendar periods as integers
# ----------------------------------------------------------------------------------------------------------


def _day_number(ts: pd.Timestamp) -> int:
    return int(np.datetime64(ts.date(), "D").astype(np.int64))


def period_of(days: np.ndarray, frequency: str) -> np.ndarray:
    """Integer period codes of day numbers (days since 1970-01-01); consecutive periods differ by one.

    Parameters
    ----------
    days : np.ndarray
        int64 day numbers.
    frequency : {"day", "week", "month"}
        ``week`` periods run Monday to Sunday; ``month`` periods are calendar months.
    """
    days = np.asarray(days, dtype=np.int64)
    if frequency == "day":
        return days
    if frequency == "week":
        return (days + _EPOCH_WEEKDAY_SHIFT) // 7
    if frequency == "month":
        return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    raise HmsparError(f"unknown frequency {frequency!r} (known: {', '.join(FREQUENCIES)})")


def period_start(period: int, frequency: str) -> np.datetime64:
    """First day of integer period ``period`` (inverse of :func:`period_of`)."""
    if frequency == "day":
        return np.datetime64(int(period), "D")
    if frequency == "week":
        return np.datetime64(int(period) * 7 - _EPOCH_WEEKDAY_SHIFT, "D")
    return np.datetime64(int(period), "M").astype("datetime64[D]")


def period_end(period: int, frequency: str) -> np.datetime64:
    """Last day of integer period ``period``."""
    return period_start(period + 1, frequency) - np.timedelta64(1, "D")


# ----------------------------------------------------------------------------------------------------------
# Column checks
# ----------------------------------------------------------------------------------------------------------


def _check_columns(frame: pd.DataFrame, cfg: Config, path: Path) -> None:
    available = ", ".join(map(repr, frame.columns[:20])) + (", ..." if frame.shape[1] > 20 else "")
    for role, column in cfg.columns.mapped().items():
        if column not in frame.columns:
            raise HmsparError(f"{path}: column {column!r} ({cfg.where}.columns.{role}) not found; the file has "
                              f"columns {available}; first {format_row(frame, 0)}")
    for column in cfg.static or []:
        if column not in frame.columns:
            raise HmsparError(f"{path}: column {column!r} ({cfg.where}.static) not found; the file has "
                              f"columns {available}; first {format_row(frame, 0)}")


def _entity_ids(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    col = frame[column]
    missing = col.isna().to_numpy()
    if missing.any():
        raise row_error(path, column, "missing customer ids", frame, missing)
    values = col.astype(str).str.strip().to_numpy(dtype=object)
    empty = values == ""
    if empty.any():
        raise row_error(path, column, "empty customer ids", frame, empty)
    return values


def _naive(parsed: pd.Series) -> pd.Series:
    return parsed.dt.tz_localize(None) if isinstance(parsed.dtype, pd.DatetimeTZDtype) else parsed


def _parses(value: object, date_format: str | None) -> bool:
    """Whether one value parses as a date on its own (to name the bad row of a column that failed whole)."""
    try:
        return not pd.isna(pd.to_datetime(value, format=date_format))
    except (ValueError, TypeError, OverflowError):
        return False


def _parse_dates(text: pd.Series, date_format: str | None) -> pd.Series:
    """Parse date strings; unparsable ones become NaT.

    With ``date_format`` that format only. Without: ISO 8601 first (dates and timestamps may mix), then the
    rest with the format pandas infers from their first value, then whatever is left one by one
    (``format="mixed"``, slow but rarely needed), so a uniform log of any common format parses quickly.
    """
    import warnings

    if date_format is not None:
        return _naive(pd.to_datetime(text, format=date_format, errors="coerce"))
    parsed = _naive(pd.to_datetime(text, format="ISO8601", errors="coerce"))
    for fmt in (None, "mixed"):
        todo = parsed.isna() & text.notna()
        if not todo.any():
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": handled by "mixed"
            again = _naive(pd.to_datetime(text[todo], format=fmt, errors="coerce"))
        parsed = parsed.astype("datetime64[ns]")
        parsed[todo] = again.astype("datetime64[ns]")
    return parsed


def _day_numbers(frame: pd.DataFrame, column: str, date_format: str | None, path: Path) -> np.ndarray:
    """int64 day numbers of the time column; unparsable or missing dates raise naming the first bad row."""
    col = frame[column]
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        parsed = col.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(col.dtype):
        parsed = col
    else:
        if pd.api.types.is_numeric_dtype(col.dtype) and date_format is None:
            raise row_error(path, column, "numbers where dates were expected (set date_format, e.g. '%Y%m%d')",
                            frame, np.ones(len(col), dtype=bool))
        text = col.astype("string") if not pd.api.types.is_string_dtype(col.dtype) else col
        try:
            parsed = _parse_dates(text, date_format)
        except (ValueError, TypeError) as exc:  # the column as a whole failed: name the first value that does
            bad_at = next((i for i, value in enumerate(text) if not _parses(value, date_format)), 0)
            raise HmsparError(f"{path}: column {column!r}: dates could not be parsed ({exc}); first "
                              f"{format_row(frame, bad_at, [column])}") from None
    bad = parsed.isna().to_numpy()
    if bad.any():
        hint = f" with format {date_format!r}" if date_format else " (set date_format if the format is unusual)"
        raise row_error(path, column, f"unparsable or missing dates{hint}", frame, bad)
    return parsed.to_numpy().astype("datetime64[D]").astype(np.int64)


def _amounts(frame: pd.DataFrame, column: str, what: str, path: Path) -> np.ndarray:
    col = frame[column]
    if pd.api.types.is_bool_dtype(col.dtype):
        raise row_error(path, column, f"true/false values where {what} were expected", frame,
                        np.ones(len(col), dtype=bool))
    values = col if pd.api.types.is_numeric_dtype(col.dtype) else pd.to_numeric(col, errors="coerce")
    values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        raise row_error(path, column, f"non-numeric or missing {what}", frame, bad)
    negative = values < 0
    if negative.any():
        raise row_error(path, column, f"negative {what} (remove returns and refunds, or net them per purchase, "
                                      "before importing)", frame, negative)
    return values


# ----------------------------------------------------------------------------------------------------------
# Descriptions and static attributes
# ----------------------------------------------------------------------------------------------------------

_ACTIVE = ("no {u}", "few {u}s", "some {u}s", "most {u}s", "nearly every {u}")
_TREND = ("falling", "stable", "rising")
_MAGNITUDE = ("none", "under 10", "in the tens", "in the hundreds", "in the thousands", "10,000 or more")
_RECENCY = ("in the final {u}", "one or two {u}s before the cutoff", "three to five {u}s before the cutoff",
            "six or more {u}s before the cutoff")


def _text_modes(codes: np.ndarray, text: np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    """Most frequent non-empty text per entity (ties: alphabetical). Returns (index per entity, table);
    entities without text get index ``len(table)``."""
    keep = text != ""
    codes, text = codes[keep], text[keep]
    tcode, uniques = pd.factorize(text)
    k = max(len(uniques), 1)
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[np.argsort(np.asarray(uniques, dtype=str), kind="stable")] = np.arange(len(uniques))
    keys, counts = np.unique(codes.astype(np.int64) * k + tcode, return_counts=True)
    ent, tc = keys // k, keys % k
    order = np.lexsort((rank[tc], -counts, ent))
    first_ent, first = np.unique(ent[order], return_index=True)
    out = np.full(n, len(uniques), dtype=np.int64)
    out[first_ent] = tc[order][first]
    table = [s if len(s) <= MAX_TEXT_CHARS else s[: MAX_TEXT_CHARS - 3] + "..." for s in map(str, uniques)]
    return out, table


def _describe(spend: np.ndarray, counts: np.ndarray, modes: np.ndarray | None, mode_table: list[str],
              frequency: str) -> tuple[list[str], int]:
    """Bucketed descriptions of the input window (at most 5 x 3 x 6 x 4 x (texts + 1) distinct strings)."""
    n, length = spend.shape
    active = counts > 0
    since_last = np.argmax(active[:, ::-1], axis=1)  # periods between the last active one and the cutoff
    recency = np.digitize(since_last, [1, 3, 6])
    pos = spend > 0
    gmean = np.exp(np.where(pos, np.log(np.where(pos, spend, 1.0)), 0.0).sum(axis=1) / np.maximum(pos.sum(axis=1), 1))
    magnitude = np.where(pos.any(axis=1), np.digitize(gmean, [10.0, 100.0, 1000.0, 10000.0]) + 1, 0)
    columns = [activity_code(counts.astype(np.float64)), trend_code(spend), magnitude, recency]
    radices = [len(_ACTIVE), len(_TREND), len(_MAGNITUDE), len(_RECENCY)]
    if modes is not None:
        columns.append(modes)
        radices.append(len(mode_table) + 1)
    u = frequency

    def fmt(parts: tuple[int, ...], variant: int) -> str:
        act, trend, mag, rec = parts[:4]
        text = (f"Customer active in {_ACTIVE[act].format(u=u)} of the {length}-{u} window, "
                f"spend {_TREND[trend]}, spend per active {u} {_MAGNITUDE[mag]}, "
                f"last purchase {_RECENCY[rec].format(u=u)}")
        if len(parts) > 4 and parts[4] < len(mode_table):
            text += f"; most frequent item: {mode_table[parts[4]]}"
        return text + "."

    return render_texts(np.stack(columns, axis=1), radices, fmt)


def _static(frame: pd.DataFrame, rows: np.ndarray, codes: np.ndarray, n: int, cfg: Config,
            path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Static attributes per entity from input-window ``rows`` (entity ``codes``); returns (frame, ignored)."""
    mapped = set(cfg.columns.mapped().values())
    explicit = cfg.static is not None
    candidates = list(cfg.static) if explicit else [c for c in frame.columns if c not in mapped]
    out: dict[str, np.ndarray] = {}
    ignored: list[str] = []
    key = pd.Series(codes)
    for column in candidates:
        values = frame[column].iloc[rows].reset_index(drop=True)
        per_entity = values.groupby(key, sort=True).nunique(dropna=False)
        varying = per_entity.to_numpy() > 1
        if varying.any():
            if explicit:
                entity = int(per_entity.index[np.argmax(varying)])
                own = np.flatnonzero(codes == entity)
                own_values = values.iloc[own].astype(str).to_numpy()
                sample = rows[own[[0, int(np.argmax(own_values != own_values[0]))]]]
                raise HmsparError(f"{path}: column {column!r} ({cfg.where}.static): not constant per customer "
                                  f"({int(varying.sum())} customers have several values), e.g. "
                                  f"{format_row(frame, int(sample[0]), [cfg.columns.entity, column])} and "
                                  f"{format_row(frame, int(sample[1]), [cfg.columns.entity, column])}")
            ignored.append(column)
            continue
        first = values.groupby(key, sort=True).first().reindex(range(n))
        numeric = pd.api.types.is_numeric_dtype(values.dtype)
        if not explicit and (first.nunique(dropna=False) <= 1
                             or (not numeric and first.nunique() > MAX_CATEGORIES)):
            ignored.append(column)
            continue
        if numeric:
            out[column] = first.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[column] = np.where(first.isna(), None, first.astype(str)).astype(object)
    return pd.DataFrame(out, index=pd.RangeIndex(n)), ignored


# ----------------------------------------------------------------------------------------------------------
# The import
# ----------------------------------------------------------------------------------------------------------


def from_frame(frame: pd.DataFrame, cfg: Config, source: str | Path = "<frame>", encoding: str = "") -> RawDataset:
    """Aggregate a transaction log held in a DataFrame (as read from ``cfg.path``) into a raw dataset.

    Parameters
    ----------
    frame : pd.DataFrame
        The log, one row per transaction, default RangeIndex.
    cfg : Config
        The dataset's settings.
    source : str or Path
        Name of the file in error messages and metadata.
    encoding : str
        How the file was decoded (recorded in ``meta.json``).

    Returns
    -------
    RawDataset
        Series (N, C, input_periods) with channels ``spend``, ``transactions`` (and ``quantity``); tasks
        ``cfg.tasks``; ``extra_meta`` records the windows, the engagement threshold and the columns used.

    Raises
    ------
    HmsparError
        Naming the file, the column and a sample row, for missing columns, unparsable dates, missing,
        non-numeric or negative amounts, windows outside the log, or a task with a single class.
    """
    path = Path(source)
    cols = cfg.columns
    if len(frame) == 0:
        raise HmsparError(f"{path}: the log has no rows")
    _check_columns(frame, cfg, path)
    entity = _entity_ids(frame, cols.entity, path)
    days = _day_numbers(frame, cols.time, cfg.date_format, path)
    amount = _amounts(frame, cols.amount, "amounts", path)
    quantity = _amounts(frame, cols.quantity, "quantities", path) if cols.quantity else None
    freq, unit, length, horizon = cfg.frequency, cfg.frequency, cfg.input_periods, cfg.horizon
    period = period_of(days, freq)

    # Windows: input = [c_start, c_end], labels = [c_end + 1, c_end + horizon], both within the log.
    first_day, last_day = int(days.min()), int(days.max())
    last_period = int(period_of(np.array([last_day]), freq)[0])
    last_complete = last_period if int(period_of(np.array([last_day + 1]), freq)[0]) != last_period else last_period - 1
    if cfg.cutoff is not None:
        c_end = int(period_of(np.array([_day_number(pd.Timestamp(cfg.cutoff))]), freq)[0])
        if c_end + horizon > last_complete:
            suggestion = period_end(last_complete - horizon, freq)
            raise HmsparError(
                f"{path}: column {cols.time!r}: the label window ({horizon} {unit}(s) after the cutoff {cfg.cutoff}, "
                f"{period_start(c_end + 1, freq)} to {period_end(c_end + horizon, freq)}) runs past the end of the "
                f"log: the last date is {np.datetime64(last_day, 'D')} at "
                f"{format_row(frame, int(np.argmax(days)), [cols.time])}; set {cfg.where}.cutoff to {suggestion} "
                f"or earlier, or shorten {cfg.where}.horizon")
    else:
        c_end = last_complete - horizon
    c_start = c_end - length + 1
    first_period = int(period_of(np.array([first_day]), freq)[0])
    if c_start < first_period:
        raise HmsparError(
            f"{path}: column {cols.time!r}: the input window ({length} {unit}(s) from {period_start(c_start, freq)} "
            f"to {period_end(c_end, freq)}) starts before the log's first date {np.datetime64(first_day, 'D')} at "
            f"{format_row(frame, int(np.argmin(days)), [cols.time])}; lower {cfg.where}.input_periods or "
            f"{cfg.where}.horizon{'' if cfg.cutoff is None else ', or move ' + cfg.where + '.cutoff later'}")
    windows = {
        "input_start": str(period_start(c_start, freq)), "input_end": str(period_end(c_end, freq)),
        "label_start": str(period_start(c_end + 1, freq)), "label_end": str(period_end(c_end + horizon, freq)),
    }
    in_rows = np.flatnonzero((period >= c_start) & (period <= c_end))
    if in_rows.size == 0:
        raise HmsparError(f"{path}: column {cols.time!r}: no rows in the input window "
                          f"{windows['input_start']} to {windows['input_end']}")

    # Entities: customers with a row in the input window, sorted by id (optionally a seeded sample).
    codes, uniques = pd.factorize(entity[in_rows])
    uniques = np.asarray(uniques, dtype=object)
    order = np.argsort(uniques.astype(str), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    codes = rank[codes]
    ids = uniques[order].astype(str)
    keep = cap_entities(ids.size, cfg.n_entities, cfg.seed)
    if keep.size < ids.size:
        remap = np.full(ids.size, -1, dtype=np.int64)
        remap[keep] = np.arange(keep.size)
        codes = remap[codes]
        in_rows, codes = in_rows[codes >= 0], codes[codes >= 0]
        ids = ids[keep]
    n = ids.size

    # Series: sums and counts over entity x period cells of the input window.
    cell = codes * length + (period[in_rows] - c_start)
    spend = np.bincount(cell, weights=amount[in_rows], minlength=n * length).reshape(n, length)
    counts = np.bincount(cell, minlength=n * length).reshape(n, length).astype(np.float64)
    channels, stack = ["spend", "transactions"], [spend, counts]
    if quantity is not None:
        channels.append("quantity")
        stack.append(np.bincount(cell, weights=quantity[in_rows], minlength=n * length).reshape(n, length))
    series = np.stack(stack, axis=1).astype(np.float32)  # (N, C, T)

    # Labels: label-window rows of the same customers only.
    lab_rows = np.flatnonzero((period > c_end) & (period <= c_end + horizon))
    lab_entity = pd.Index(ids).get_indexer(entity[lab_rows].astype(str))
    known = lab_entity >= 0
    lab_rows, lab_entity = lab_rows[known], lab_entity[known]
    h_count = np.bincount(lab_entity, minlength=n)
    h_spend = np.bincount(lab_entity, weights=amount[lab_rows], minlength=n)
    window = f"{windows['label_start']} to {windows['label_end']}"
    after = f"in the {horizon} {unit}(s) after the input window ({window})"
    labels: dict[str, np.ndarray] = {}
    definitions: dict[str, str] = {}
    threshold = None
    for task in cfg.tasks:
        if task == "churn":
            labels[task] = (h_count == 0).astype(np.int8)
            definitions[task] = f"The customer makes no purchase {after}."
        elif task == "repurchase":
            labels[task] = (h_count > 0).astype(np.int8)
            definitions[task] = f"The customer makes at least one purchase {after}."
        else:
            threshold, how = _engagement_threshold(spend, cfg, path)
            labels[task] = (h_spend > threshold).astype(np.int8)
            definitions[task] = f"The customer's spend {after} exceeds {threshold:g} ({how})."
        if np.unique(labels[task]).size < 2:
            column = cols.amount if task == "engagement" else cols.time
            sample = int(lab_rows[0]) if lab_rows.size else int(np.argmax(days))
            raise HmsparError(
                f"{path}: column {column!r}: task {task!r} has a single class (label {int(labels[task][0])} for all "
                f"{n} customers) with the label window {window}, e.g. {format_row(frame, sample, [column])}; "
                f"choose another {cfg.where}.cutoff or {cfg.where}.horizon, or drop the task from {cfg.where}.tasks")

    # Descriptions and static attributes, from input-window rows only.
    modes, mode_table = None, []
    if cols.text:
        text = frame[cols.text].iloc[in_rows].fillna("").astype(str).str.strip().to_numpy(dtype=object)
        modes, mode_table = _text_modes(codes, text, n)
    texts, n_distinct = _describe(spend, counts, modes, mode_table, unit)
    static, ignored = _static(frame, in_rows, codes, n, cfg, path)

    return RawDataset(
        name=cfg.name or path.stem,
        series=series,
        channels=channels,
        ids=ids,
        text=texts,
        static=static,
        labels=labels,
        label_definitions=definitions,
        frequency=freq,
        extra_meta={
            "source": {"kind": "transactions", "path": str(source), "encoding": encoding, "rows": int(len(frame)),
                       "input_rows": int(in_rows.size), "label_rows": int(lab_rows.size),
                       "entities_found": int(rank.size), "columns": cols.mapped(),
                       "static_columns": list(static.columns), "ignored_columns": ignored},
            "windows": windows,
            "horizon": horizon,
            "engagement_threshold": threshold,
            "distinct_texts": n_distinct,
        },
    )


def _engagement_threshold(spend: np.ndarray, cfg: Config, path: Path) -> tuple[float, str]:
    """The engagement threshold and how it was set (see the module docstring)."""
    if cfg.engagement_threshold is not None:
        return float(cfg.engagement_threshold), f"{cfg.where}.engagement_threshold"
    if cfg.horizon > cfg.input_periods:
        raise HmsparError(f"{cfg.where}.engagement_threshold: the default (median spend over the last horizon "
                          f"periods of the input window) needs horizon <= input_periods; give a number")
    recent = spend[:, -cfg.horizon:].sum(axis=1)
    spenders = recent[recent > 0]
    if spenders.size == 0:
        raise HmsparError(f"{path}: no customer spent anything in the last {cfg.horizon} {cfg.frequency}(s) of the "
                          f"input window; set {cfg.where}.engagement_threshold to a number")
    value = float(np.median(spenders))
    return value, (f"the median spend over the last {cfg.horizon} {cfg.frequency}(s) of the input window among "
                   "the customers who spent then")


def generate(cfg: Config, progress: bool = True) -> RawDataset:
    """Import the transaction log ``cfg.path`` (the ``generate`` stage of a ``kind: transactions`` dataset).

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Unused (the import is a handful of vectorised passes); kept for the generator interface.

    Returns
    -------
    RawDataset
        See :func:`from_frame`.
    """
    path = check_exists(cfg.path, f"{cfg.where}.path")
    str_columns = [c for c in (cfg.columns.entity, cfg.columns.time, cfg.columns.text) if c]
    frame, encoding = read_table(path, str_columns=str_columns)
    return from_frame(frame, cfg, source=cfg.path, encoding=encoding)

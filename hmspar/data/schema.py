"""The on-disk schema of a raw dataset (``data/raw/<dataset>/``), shared by every generator and importer.

A raw dataset holds only what a model may see (the observed input window) plus the labels, which the
generator derived from a future window or a latent cause that is *not* stored. Files:

``series.npy``
    float32, shape (N, C, T): per entity, C channels over T observed periods. ``0`` means no activity in
    the period; ``NaN`` means the period was not observed (a reporting gap).
``entities.parquet``
    one row per entity, in the same order: ``id`` (str), ``text`` (str, a description of the observed
    window), optional ``group`` (str, e.g. the merchant's industry), ``static__<name>`` columns (str for
    categorical, float for numeric attributes) and ``label__<task>`` columns (int8, 0/1).
``images.npy`` (optional)
    float32, shape (N, K, S, S): pictures the dataset provides itself (e.g. the trend dataset's rendered
    outfits). When present, the convert step stores them as the image modality instead of ISA-GAF.
``meta.json``
    dataset name, kind, channel names, period frequency, task definitions and class balance.

Labels are integer class codes ``0..K-1``: binary tasks use 0/1, multi-class tasks (imported series
tables, the ``shapes`` simulator) use more codes.

Two declarations travel in ``meta.json`` and tell the convert step how to read the data:

``values``
    ``"nonnegative"`` (activity: 0 = inactive period, the default of the retail simulators) or ``"signed"``
    (real-valued measurements, e.g. z-normalised series: 0 is an ordinary value and only NaN is a gap).
``modalities``
    The modalities the dataset really has, a subset of ``series, image, text, static`` in that order
    (``series`` and ``image`` always; ``text`` when the entities carry descriptions; ``static`` when
    there are static attributes). Models skip the modalities a dataset does not declare.

The window descriptors at the end (:func:`activity_code`, :func:`trend_code`, :func:`level_code`,
:func:`volatility_code`, :func:`render_texts`) build the ``text`` descriptions; they live here because the
simulators and the transactions importer share them, and both kinds of import stage already depend on this
module (an import stage does not depend on the simulators' ``generators/_common.py``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hmspar.errors import HmsparError

STATIC_PREFIX = "static__"
#: Every modality a dataset may declare, in canonical order.
ALL_MODALITIES = ("series", "image", "text", "static")
VALUE_KINDS = ("nonnegative", "signed")
LABEL_PREFIX = "label__"


@dataclasses.dataclass
class RawDataset:
    """In-memory form of a raw dataset. See the module docstring for the meaning of each field.

    Attributes
    ----------
    name : str
    series : np.ndarray
        float32 (N, C, T); 0 = inactive period, NaN = unobserved period.
    channels : list[str]
        C channel names, e.g. ``["spend", "transactions"]``.
    ids : np.ndarray
        (N,) entity ids as strings.
    text : list[str]
        N descriptions built from the observed window only.
    static : pd.DataFrame
        N rows of static attributes (categorical as str, numeric as float); may have no columns.
    labels : dict[str, np.ndarray]
        task name -> (N,) integer class codes 0..K-1 (0/1 for binary tasks), at least two classes.
    label_definitions : dict[str, str]
        task name -> one-sentence definition of the label (for the README and meta.json).
    frequency : str
        ``"day"``, ``"week"`` or ``"month"``.
    groups : np.ndarray | None
        (N,) group names (e.g. ``Industry-0``) for datasets whose tasks are run per group.
    images : np.ndarray | None
        float32 (N, K, S, S) pictures provided by the dataset itself; None means ISA-GAF is computed.
    values : {"nonnegative", "signed"}
        How the convert step reads ``series`` (see the module docstring).
    modalities : list[str] | None
        Declared modalities; None means ``series, image, text`` plus ``static`` when there are static
        columns (see :attr:`declared_modalities`).
    """

    name: str
    series: np.ndarray
    channels: list[str]
    ids: np.ndarray
    text: list[str]
    static: pd.DataFrame
    labels: dict[str, np.ndarray]
    label_definitions: dict[str, str]
    frequency: str
    groups: np.ndarray | None = None
    images: np.ndarray | None = None
    extra_meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    values: str = "nonnegative"
    modalities: list[str] | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n(self) -> int:
        return int(self.series.shape[0])

    @property
    def declared_modalities(self) -> list[str]:
        """The modalities this dataset has, in canonical order (``modalities`` or the default rule)."""
        if self.modalities is not None:
            return [m for m in ALL_MODALITIES if m in self.modalities]
        return ["series", "image", "text"] + (["static"] if len(self.static.columns) else [])

    def validate(self) -> None:
        s = self.series
        where = f"dataset {self.name!r}"
        if s.ndim != 3:
            raise HmsparError(f"{where}: series must have shape (N, C, T), got {s.shape}")
        n, c, _ = s.shape
        if n == 0:
            raise HmsparError(f"{where}: no entities")
        if len(self.channels) != c:
            raise HmsparError(f"{where}: {c} series channels but {len(self.channels)} channel names")
        if len(self.ids) != n or len(self.text) != n or len(self.static) != n:
            raise HmsparError(f"{where}: ids, text and static must have one row per entity ({n})")
        if len(set(map(str, self.ids))) != n:
            raise HmsparError(f"{where}: entity ids are not unique")
        if self.groups is not None and len(self.groups) != n:
            raise HmsparError(f"{where}: groups must have one entry per entity ({n})")
        if self.images is not None and (self.images.ndim != 4 or self.images.shape[0] != n
                                        or self.images.shape[2] != self.images.shape[3]):
            raise HmsparError(f"{where}: images must have shape (N={n}, K, S, S), got {self.images.shape}")
        if self.values not in VALUE_KINDS:
            raise HmsparError(f"{where}: values must be one of {', '.join(VALUE_KINDS)}, got {self.values!r}")
        if self.modalities is not None:
            unknown = [m for m in self.modalities if m not in ALL_MODALITIES]
            if unknown:
                raise HmsparError(f"{where}: unknown modality {unknown[0]!r} (known: {', '.join(ALL_MODALITIES)})")
            for m in ("series", "image"):
                if m not in self.modalities:
                    raise HmsparError(f"{where}: modalities must include {m!r}, got {list(self.modalities)}")
            if "static" in self.modalities and not len(self.static.columns):
                raise HmsparError(f"{where}: modalities lists 'static' but there are no static columns")
        if self.values == "nonnegative" and np.any(np.nan_to_num(np.asarray(s[: min(n, 4096)]), nan=0.0) < 0):
            raise HmsparError(f"{where}: negative values in a dataset declared values: nonnegative")
        if not self.labels:
            raise HmsparError(f"{where}: no tasks")
        for task, y in self.labels.items():
            if y.shape != (n,):
                raise HmsparError(f"{where}: labels of task {task!r} must have shape ({n},), got {y.shape}")
            if not np.issubdtype(np.asarray(y).dtype, np.integer):
                raise HmsparError(f"{where}: labels of task {task!r} must be integer class codes, got {y.dtype}")
            values = np.unique(y)
            if values.size < 2:
                raise HmsparError(f"{where}: task {task!r} has a single class ({values.tolist()}); "
                                  "a classification task needs at least two")
            if values.min() < 0 or values.max() >= 127:
                raise HmsparError(f"{where}: labels of task {task!r} must be codes 0..126, found {values.tolist()[:10]}")
            if task not in self.label_definitions:
                raise HmsparError(f"{where}: task {task!r} has no label definition")

    def class_balance(self) -> dict[str, float | list[float]]:
        """Fraction of positives per binary task; per-class fractions for a multi-class task."""
        out: dict[str, float | list[float]] = {}
        for t, y in self.labels.items():
            counts = np.bincount(np.asarray(y, dtype=np.int64))
            out[t] = float(counts[1] / counts.sum()) if counts.size == 2 else [round(float(c / counts.sum()), 4) for c in counts]
        return out

    def save(self, directory: str | Path) -> None:
        """Write the dataset into ``directory`` (expected to be a fresh, e.g. atomic, directory)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "series.npy", np.ascontiguousarray(self.series, dtype=np.float32))
        if self.images is not None:
            np.save(directory / "images.npy", np.ascontiguousarray(self.images, dtype=np.float32))
        frame = pd.DataFrame({"id": np.asarray(self.ids).astype(str), "text": list(self.text)})
        if self.groups is not None:
            frame["group"] = np.asarray(self.groups).astype(str)
        for col in self.static.columns:
            frame[STATIC_PREFIX + str(col)] = self.static[col].to_numpy()
        for task, y in self.labels.items():
            frame[LABEL_PREFIX + task] = np.asarray(y, dtype=np.int8)
        frame.to_parquet(directory / "entities.parquet", index=False)
        meta = {
            "name": self.name,
            "n_entities": self.n,
            "channels": list(self.channels),
            "length": int(self.series.shape[2]),
            "frequency": self.frequency,
            "tasks": {t: {"definition": self.label_definitions[t],
                          "positive_rate" if isinstance(r, float) else "class_rates": round(r, 4) if isinstance(r, float) else r}
                      for t, r in self.class_balance().items()},
            "n_classes": {t: int(np.max(y)) + 1 for t, y in self.labels.items()},
            "groups": sorted(set(map(str, self.groups))) if self.groups is not None else None,
            "static_columns": [str(c) for c in self.static.columns],
            "zero_fraction": round(float(np.mean(self.series == 0)), 4),
            "missing_fraction": round(float(np.mean(np.isnan(self.series))), 4),
            "values": self.values,
            "modalities": self.declared_modalities,
            **self.extra_meta,
        }
        with open(directory / "meta.json", "w") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
            fh.write("\n")

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = False) -> "RawDataset":
        """Read a dataset written by :meth:`save`, with errors naming the missing file or column."""
        directory = Path(directory)
        for fname in ("series.npy", "entities.parquet", "meta.json"):
            if not (directory / fname).exists():
                raise HmsparError(f"{directory / fname}: missing (run the generate stage first)")
        with open(directory / "meta.json") as fh:
            meta = json.load(fh)
        series = np.load(directory / "series.npy", mmap_mode="r" if mmap else None)
        frame = pd.read_parquet(directory / "entities.parquet")
        for col in ("id", "text"):
            if col not in frame.columns:
                raise HmsparError(f"{directory / 'entities.parquet'}: missing column {col!r}")
        static_cols = [c for c in frame.columns if c.startswith(STATIC_PREFIX)]
        static = frame[static_cols].rename(columns=lambda c: c[len(STATIC_PREFIX):])
        labels = {c[len(LABEL_PREFIX):]: frame[c].to_numpy(np.int8) for c in frame.columns if c.startswith(LABEL_PREFIX)}
        known = {"name", "n_entities", "channels", "length", "frequency", "tasks", "groups",
                 "static_columns", "zero_fraction", "missing_fraction", "n_classes", "values", "modalities"}
        images_path = directory / "images.npy"
        images = np.load(images_path, mmap_mode="r" if mmap else None) if images_path.exists() else None
        return cls(
            name=meta["name"],
            series=series,
            channels=list(meta["channels"]),
            ids=frame["id"].to_numpy(str),
            text=frame["text"].tolist(),
            static=static,
            labels=labels,
            label_definitions={t: v["definition"] for t, v in meta["tasks"].items()},
            frequency=meta["frequency"],
            groups=frame["group"].to_numpy(str) if "group" in frame.columns else None,
            images=images,
            extra_meta={k: v for k, v in meta.items() if k not in known},
            values=meta.get("values", "nonnegative"),
            modalities=meta.get("modalities"),
        )


_TINY = 1e-9


# --------------------------------------------------------------------------------------------------------
# Descriptors of the observed window (all vectorised; NaN = unobserved): the `text` column's building
# blocks, shared by the simulators and the transactions importer
# --------------------------------------------------------------------------------------------------------


def activity_code(x: np.ndarray) -> np.ndarray:
    """Bucket the share of observed periods with activity: 0 none, 1 <=25%, 2 <=50%, 3 <=85%, 4 more."""
    obs = ~np.isnan(x)
    active = (np.nan_to_num(x) > 0).sum(axis=1)
    share = active / np.maximum(obs.sum(axis=1), 1)
    return np.where(active == 0, 0, np.digitize(share, [0.25 + _TINY, 0.5 + _TINY, 0.85 + _TINY]) + 1)


def trend_code(x: np.ndarray) -> np.ndarray:
    """Bucket the change between the first and last third of the observed window (unobserved periods
    counted as 0) relative to the window mean: 0 falling, 1 stable, 2 rising (no activity gives 1)."""
    length = x.shape[1]
    k = max(1, length // 3)
    v = np.nan_to_num(x)
    first = v[:, :k].mean(axis=1)
    last = v[:, -k:].mean(axis=1)
    scale = v.mean(axis=1) + _TINY
    change = (last - first) / scale
    return np.digitize(change, [-0.4, 0.4])


def level_code(x: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Bucket the geometric mean of the positive observed values against fixed ``cuts``
    (0 = no activity, 1.. = above each successive cut)."""
    pos = np.nan_to_num(x) > 0
    logs = np.where(pos, np.log(np.where(pos, x, 1.0)), 0.0)
    n_pos = pos.sum(axis=1)
    gmean = np.exp(logs.sum(axis=1) / np.maximum(n_pos, 1))
    return np.where(n_pos == 0, 0, np.digitize(gmean, cuts) + 1)


def volatility_code(x: np.ndarray, cuts: Sequence[float] = (0.45, 0.9)) -> np.ndarray:
    """Bucket the coefficient of variation of the positive observed values: 0 steady, 1 uneven, 2 erratic
    (fewer than two active periods count as steady)."""
    pos = np.nan_to_num(x) > 0
    v = np.where(pos, x, 0.0)
    n_pos = np.maximum(pos.sum(axis=1), 1)
    mean = v.sum(axis=1) / n_pos
    var = np.where(pos, (v - mean[:, None]) ** 2, 0.0).sum(axis=1) / n_pos
    cv = np.sqrt(var) / (mean + _TINY)
    return np.where(pos.sum(axis=1) < 2, 0, np.digitize(cv, cuts))


def render_texts(
    codes: np.ndarray, radices: Sequence[int], fmt: Callable[[tuple[int, ...], int], str]
) -> tuple[list[str], int]:
    """Turn per-entity descriptor codes into description strings, formatting each distinct combination once.

    Parameters
    ----------
    codes : np.ndarray
        (n, k) small non-negative ints; column j lies in ``[0, radices[j])``.
    radices : sequence of int
        Number of values of each descriptor.
    fmt : callable
        ``fmt(parts, variant) -> str`` for one combination; ``variant`` is a stable integer derived from
        the combination, used to vary the wording without multiplying the number of distinct strings.

    Returns
    -------
    texts : list of str
        One description per entity.
    n_distinct : int
        Number of distinct descriptions.
    """
    codes = np.asarray(codes, dtype=np.int64)
    combined = np.zeros(codes.shape[0], dtype=np.int64)
    for j, r in enumerate(radices):
        combined = combined * int(r) + codes[:, j]
    uniq, inverse = np.unique(combined, return_inverse=True)
    rendered = []
    for value in uniq.tolist():
        parts = []
        rest = value
        for r in reversed(radices):
            parts.append(rest % int(r))
            rest //= int(r)
        variant = (value * 2654435761) % 97
        rendered.append(fmt(tuple(reversed(parts)), variant))
    table = np.array(rendered, dtype=object)
    return table[inverse.ravel()].tolist(), len(set(rendered))

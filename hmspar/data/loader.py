"""Loading converted features (``data/features/<dataset>/``) as dicts of modality arrays per split.

Feature directory layout (written by :mod:`hmspar.convert`)::

    ids.npy      (N,)         entity ids (str)
    series.npy   (N, C, T)    float32, log1p of the observed values; unobserved periods are 0
    mask.npy     (N, C, T)    float32, 1 where the period shows activity (value > 0), else 0
    image.npy    (N, 2C, S, S) float32 ISA-GAF: for each channel c, [2c] trend GASF, [2c+1] sparsity GASF
    text.npy     (N, D)       float32 sentence embedding of the entity's description
    static.npy   (N, F)       float32 one-hot categorical and raw numeric static attributes
    labels.npz   task -> (N,) int8 labels
    splits.npz   task -> (N,) int8 split codes (0 train, 1 validation, 2 test)
    groups.npy   (N,)         group names (only for datasets with groups, e.g. merchant industries)
    meta.json    channels, tasks, groups, static column names and which of them are numeric

Everything fitted is fitted here on the *training* split of the requested task, so every model sees the
same normalisation: series are standardised per channel, numeric static columns per column.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from hmspar.data.splits import SPLIT_NAMES, TRAIN
from hmspar.errors import HmsparError

MODALITIES = ("series", "image", "text", "static")
FEATURE_FILES = ("ids.npy", "series.npy", "mask.npy", "image.npy", "text.npy", "static.npy",
                 "labels.npz", "splits.npz", "meta.json")


@dataclasses.dataclass
class SplitData:
    """One split of one task.

    ``X`` maps modality names to arrays: ``series`` (n, C, T) standardised, ``mask`` (n, C, T) (always
    present with ``series``), ``image`` (n, 2C, S, S), ``text`` (n, D), ``static`` (n, F) standardised.
    ``y`` is (n,) int64, ``ids`` (n,) str.
    """

    X: dict[str, np.ndarray]
    y: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: np.ndarray) -> "SplitData":
        return SplitData({k: v[idx] for k, v in self.X.items()}, self.y[idx], self.ids[idx])


def read_meta(features_dir: str | Path) -> dict:
    path = Path(features_dir) / "meta.json"
    if not path.exists():
        raise HmsparError(f"{path}: missing (run the convert stage first)")
    with open(path) as fh:
        return json.load(fh)


def _fit_standardiser(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x.std(axis=axes, keepdims=True, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def load_task(
    features_dir: str | Path,
    task: str,
    group: str | None = None,
    modalities: tuple[str, ...] | list[str] = MODALITIES,
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
        Which of ``series``, ``image``, ``text``, ``static`` to load (arrays are memory-mapped and only
        the selected rows are read).
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
        if idx.size == 0 or np.unique(y_all[idx]).size < 2:
            raise HmsparError(f"{features_dir}: task {task!r}{' group ' + group if group else ''} has a "
                              f"{name} split with {idx.size} entities and fewer than two classes")
    ids = np.load(features_dir / "ids.npy")
    arrays: dict[str, np.ndarray] = {}
    for m in modalities:
        arrays[m] = np.load(features_dir / f"{m}.npy", mmap_mode="r")
        if m == "series":
            arrays["mask"] = np.load(features_dir / "mask.npy", mmap_mode="r")
    out = {name: SplitData({k: np.asarray(v[idx], dtype=np.float32) for k, v in arrays.items()},
                           y_all[idx], ids[idx]) for name, idx in index.items()}
    # Normalisation fitted on the training split only.
    train = out["train"].X
    if "series" in train:
        mean, std = _fit_standardiser(train["series"], axes=(0, 2))
        for part in out.values():
            part.X["series"] = (part.X["series"] - mean) / std
    if "static" in train and train["static"].shape[1]:
        numeric = np.asarray(meta.get("static_numeric", [True] * train["static"].shape[1]), dtype=bool)
        mean, std = _fit_standardiser(train["static"], axes=(0,))
        mean[:, ~numeric] = 0.0
        std[:, ~numeric] = 1.0
        for part in out.values():
            part.X["static"] = (part.X["static"] - mean) / std
    assert TRAIN == SPLIT_NAMES["train"]
    return out

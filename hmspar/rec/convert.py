"""The rec convert step: a raw interaction dataset -> per-item modality tables and time-ordered user
sequences (``data/rec/features/<dataset>/``, layout in :mod:`hmspar.rec.schema`).

Nothing here is fitted: pictures are copied as uint8, texts embedded with the shared MiniLM encoder (each
distinct string once), prices log1p-transformed, categories coded in sorted order. Events are sorted by
user, then time, then their row order in the raw files (a stable sort, so ties keep the log's order).
The leave-one-out split is *not* stored: :mod:`hmspar.rec.data` derives it from the sequences under the
protocol's settings, so changing the protocol does not redo this step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.config import build
from hmspar.io import atomic_dir
from hmspar.rec.schema import read_events, read_items, read_meta, write_meta

RAW_ROOT = Path("data/rec/raw")
FEATURES_ROOT = Path("data/rec/features")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """``params.yaml: text`` (the sentence encoder shared with the classification track)."""

    model_path: str | None = None
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size!r}")


def embed_texts(texts: list[str], text_cfg: TextConfig) -> np.ndarray:
    """(n, D) float32 MiniLM embeddings, each distinct string embedded once."""
    from hmspar.modalities.text import TextEncoder

    return TextEncoder(text_cfg.model_path, batch_size=text_cfg.batch_size).encode(texts)


def convert(raw_dir: str | Path, out_dir: str | Path, text_cfg: TextConfig, embed: Any = None) -> dict[str, Any]:
    """Convert ``raw_dir`` into ``out_dir``; returns the metadata written to ``meta.json``.

    ``embed`` (texts -> (n, D) float32) replaces the MiniLM encoder when given (tests use a stub).
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    raw_meta = read_meta(raw_dir)
    items, pictures = read_items(raw_dir)
    n_items = len(items)

    def padded(arr: np.ndarray, dtype: Any) -> np.ndarray:
        out = np.zeros((n_items + 1,) + arr.shape[1:], dtype=dtype)
        out[1:] = arr
        return out

    np.save(out_dir / "image.npy", padded(pictures, np.uint8))
    texts = items["text"].astype(str).tolist()
    vectors = embed(texts) if embed is not None else embed_texts(texts, text_cfg)
    np.save(out_dir / "text.npy", padded(vectors, np.float32))
    np.save(out_dir / "price.npy", padded(np.log1p(items["price"].to_numpy(dtype=np.float64)), np.float32))
    categories, cat_code = np.unique(items["category"].astype(str).to_numpy(), return_inverse=True)
    np.save(out_dir / "category.npy", padded(cat_code + 1, np.int64))
    np.save(out_dir / "first_time.npy", padded(items["first_time"].to_numpy(dtype=np.float64), np.float64))

    user, item, time = read_events(raw_dir)
    order = np.lexsort((np.arange(user.size), time, user))
    user, item, time = user[order], item[order], time[order]
    users, counts = np.unique(user, return_counts=True)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    seq_items = item.astype(np.int64) + 1
    np.save(out_dir / "seq_items.npy", seq_items)
    np.save(out_dir / "seq_times.npy", time.astype(np.float64))
    np.save(out_dir / "seq_offsets.npy", offsets)
    key = np.repeat(np.arange(users.size, dtype=np.int64), counts) * (n_items + 1) + seq_items
    n_repeats = int(key.size - np.unique(key).size)
    del key, order
    meta = {
        "kind": raw_meta.get("kind"),
        "n_users": int(users.size), "n_items": int(n_items), "n_events": int(seq_items.size),
        "n_repeat_events": n_repeats, "repeat_purchases": n_repeats > 0,
        "categories": categories.astype(str).tolist(), "image_size": int(pictures.shape[-1]),
        "has_pictures": bool(raw_meta.get("has_pictures", True)), "has_text": bool(raw_meta.get("has_text", True)),
        "text_dim": int(np.load(out_dir / "text.npy", mmap_mode="r").shape[1]),
    }
    write_meta(out_dir, meta)
    return meta


def convert_dataset(name: str, params: dict[str, Any], raw_root: Path = RAW_ROOT,
                    features_root: Path = FEATURES_ROOT) -> Path:
    """``rec_convert@<name>``: ``data/rec/raw/<name>/`` -> ``data/rec/features/<name>/`` (atomically).

    Reads only the ``text`` params section (the raw folder already reflects ``rec.datasets.<name>``).
    """
    text_cfg = build(TextConfig, params.get("text"), "text")
    raw = Path(raw_root) / name
    read_meta(raw)  # a clear error when rec_generate has not run
    out = Path(features_root) / name
    with atomic_dir(out) as tmp:
        convert(raw, tmp, text_cfg)
    return out

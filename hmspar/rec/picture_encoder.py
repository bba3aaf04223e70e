"""The lab's picture encoder (stage ``rec_pictures@<dataset>``; params ``rec.picture_encoder``).

A small CNN (:class:`hmspar.rec.models.pixelrec.PictureCNN`: stride-2 3x3 convolutions, global average
pooling, a linear map to ``d``) pretrained *inside the lab* on the pictures of the **training items** (items
that occur in the protocol's training histories) with two self-supervised objectives:

- **views**: two augmented copies of each picture must find each other in the batch (symmetric InfoNCE on
  projected, normalised embeddings, temperature ``temperature``). The augmentations are the picture
  renderer's own nuisances and nothing else (:func:`augment`): placement (a shift of up to ``shift`` px),
  a mirror image, lighting (a brightness factor in ``brightness``), an occluding box (probability
  ``occlusion``) and pixel noise (sd ``noise``). Colour, pattern frequency and silhouette width are left
  alone because they *are* the style (palette, print scale, cut), so the encoder is taught to keep them.
- **text**: each picture must find its own item's text among the batch's texts (CLIP-style symmetric
  InfoNCE between a projection of the picture embedding and a projection of the item's MiniLM text,
  standardised on the training items), weight ``text_weight`` (0 turns it off).

Budget: optimiser steps (``max_steps``, at most ``max_epochs`` passes over the training items), AdamW,
early stopping on the same loss over a seeded held-out ``val_fraction`` of the training items (fixed
augmentations), the best state kept. Items never bought in training (new arrivals) are never seen by the
encoder; their pictures are only encoded afterwards.

Outputs, in ``data/rec/pictures/<dataset>/``:

- ``cnn.pt``: the state dict of the ``PictureCNN(channels, d)``, the ``image_weights`` of the two-tower
  model (``rec.recommenders.pixelrec.image_weights: lab``; its ``cnn_channels`` and ``d`` must match);
- ``features.npy``: ``(n_items + 1, d)`` float32 frozen picture features of every item (row 0, padding,
  zero), read by the published models with ``vision: lab`` (each standardises them on its training items);
- ``meta.json``: the settings, the item counts and the validation curve.

``metrics/rec_pictures/<dataset>.json`` holds the **probe**: linear (ridge) maps fitted on the training
items' features and scored on the items the encoder never saw, from the lab encoder's features and from the
fixed 88-d style descriptor side by side: the category (accuracy), the log price and the standardised text
embedding (R²). ``benchmarks/picture_probe.py`` probes the fashion shop's latent look, traits and style.

Randomness: parameter initialisation from ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``,
batches, augmentations and the held-out split from generators seeded with ``seed``; same params, same
bytes on one machine. torch is imported inside the functions that train, so importing this module is cheap
(:mod:`hmspar.rec.pictures`, which the recommend stages import to resolve ``lab``, imports none of it).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from hmspar import threads
from hmspar.config import build, to_dict
from hmspar.errors import HmsparError
from hmspar.rec.pictures import FEATURES_FILE, PICTURES_ROOT, WEIGHTS_FILE

METRICS_ROOT = Path("metrics/rec_pictures")


@dataclasses.dataclass(frozen=True)
class PictureEncoderConfig:
    """``rec.picture_encoder``.

    Parameters
    ----------
    channels : list of int
        Output channels of the stride-2 convolutions (the two-tower's ``cnn_channels``).
    d : int
        Embedding size (the two-tower's ``d``; the width of ``features.npy``).
    proj_dim : int
        Width of the projection heads the losses compare (discarded after pretraining).
    text_weight : float
        Weight of the picture-text term (0: views only).
    temperature : float
        InfoNCE temperature of both terms.
    shift, brightness, occlusion, noise
        The augmentations (see the module docstring): largest shift in pixels, brightness factor range,
        probability of an occluding box, pixel noise sd (pictures in [0, 1]).
    max_steps, max_epochs : int, float
        Step budget: ``min(max_steps, ceil(max_epochs * n_fit / batch_size))``.
    min_steps, eval_every, patience : int
        Early stopping on the held-out loss, evaluated every ``eval_every`` steps.
    batch_size, lr, weight_decay : int, float, float
        AdamW settings (cosine decay to 0 over the budget).
    val_fraction : float
        Share of the training items held out for early stopping.
    seed : int
        The run's seed.
    device, num_threads
        ``auto``/``cpu``/``cuda``; ``auto`` or an integer (see :mod:`hmspar.threads`).
    """

    channels: list[int] = dataclasses.field(default_factory=lambda: [32, 64, 128])
    d: int = 64
    proj_dim: int = 64
    text_weight: float = 1.0
    temperature: float = 0.2
    shift: int = 3
    brightness: list[float] = dataclasses.field(default_factory=lambda: [0.85, 1.12])
    occlusion: float = 0.15
    noise: float = 0.05
    max_steps: int = 4000
    max_epochs: float = 200.0
    min_steps: int = 300
    eval_every: int = 100
    patience: int = 4
    batch_size: int = 256
    lr: float = 0.003
    weight_decay: float = 0.0001
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_threads: Any = "auto"

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels: must be a non-empty list of positive integers, got {self.channels!r}")
        for key in ("d", "proj_dim", "max_steps", "eval_every", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be a positive integer, got {getattr(self, key)!r}")
        for key in ("temperature", "lr", "max_epochs"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key}: must be positive, got {getattr(self, key)!r}")
        for key in ("text_weight", "occlusion", "noise", "weight_decay", "min_steps", "patience", "shift"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be non-negative, got {getattr(self, key)!r}")
        if self.occlusion > 1:
            raise ValueError(f"occlusion: must be a probability in [0, 1], got {self.occlusion!r}")
        if len(self.brightness) != 2 or not 0 < self.brightness[0] <= self.brightness[1]:
            raise ValueError(f"brightness: must be [low, high] with 0 < low <= high, got {self.brightness!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction: must be in (0, 1), got {self.val_fraction!r}")
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise ValueError(f"device: must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        threads.check(self.num_threads, "num_threads")


def encoder_config(params: dict[str, Any]) -> PictureEncoderConfig:
    """``rec.picture_encoder`` of ``params`` (unknown keys and bad values name their key)."""
    rec = params.get("rec") or {}
    return build(PictureEncoderConfig, rec.get("picture_encoder"), "rec.picture_encoder")


# ----------------------------------------------------------------------------------------------------
# Linear probes (numpy)
# ----------------------------------------------------------------------------------------------------
RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge weights (with an unpenalised intercept as the last row) of ``y`` on ``x``."""
    xa = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    pen = alpha * x.shape[0] * np.eye(xa.shape[1]) / max(1, x.shape[1])
    pen[-1, -1] = 0.0
    return np.linalg.solve(xa.T @ xa + pen, xa.T @ y)


def _apply(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w[:-1] + w[-1]


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    y = y.reshape(len(y), -1)
    pred = pred.reshape(len(pred), -1)
    return float(1.0 - ((y - pred) ** 2).sum() / max(1e-12, ((y - y.mean(0)) ** 2).sum()))


def linear_probe(x: np.ndarray, y: np.ndarray, fit: np.ndarray, held: np.ndarray, *, classes: bool,
                 seed: int = 0) -> float:
    """Score of a ridge map from features ``x`` to target ``y`` fitted on rows ``fit`` and scored on rows
    ``held``: accuracy of the arg-max of a one-hot regression (``classes``) or R² (``y`` 1-d or 2-d).

    ``x`` is standardised on ``fit``; the ridge penalty is chosen from :data:`RIDGE_ALPHAS` on a seeded
    fifth of ``fit`` (never on ``held``), then the map is refitted on all of ``fit``.
    """
    x = np.asarray(x, dtype=np.float64)
    mu, sd = x[fit].mean(0), x[fit].std(0)
    x = (x - mu) / np.where(sd > 1e-8, sd, 1.0)
    if classes:
        labels, codes = np.unique(y[fit], return_inverse=True)
        target = np.eye(labels.size)[codes]
    else:
        target = np.asarray(y, dtype=np.float64)[fit]

    def score(rows_fit_x, rows_fit_y, rows_x, rows_y, alpha):
        w = _ridge(rows_fit_x, rows_fit_y, alpha)
        pred = _apply(rows_x, w)
        if classes:
            return float((labels[pred.argmax(1)] == rows_y).mean())
        return _r2(rows_y, pred)

    order = np.random.default_rng(seed).permutation(fit.size)
    inner, outer = order[fit.size // 5:], order[:fit.size // 5]
    xf = x[fit]
    y_outer = y[fit][outer] if classes else target[outer]
    best = max(RIDGE_ALPHAS, key=lambda a: score(xf[inner], target[inner], xf[outer], y_outer, a))
    return score(xf, target, x[held], y[held] if classes else np.asarray(y, dtype=np.float64)[held], best)


def probe_table(features: dict[str, np.ndarray], items: Any, fit: np.ndarray, held: np.ndarray) -> dict[str, Any]:
    """``{feature set: {category_accuracy, log_price_r2, text_r2}}`` on the ``held`` items (module docstring)."""
    from hmspar.rec.models.common import standardised_text

    text = standardised_text(items, fit)
    out = {}
    for name, x in features.items():
        out[name] = {
            "category_accuracy": round(linear_probe(x, np.asarray(items.category), fit, held, classes=True), 4),
            "log_price_r2": round(linear_probe(x, np.asarray(items.price, dtype=np.float64), fit, held,
                                               classes=False), 4),
            "text_r2": round(linear_probe(x, text, fit, held, classes=False), 4),
        }
    return out


# ----------------------------------------------------------------------------------------------------
# Pretraining (torch)
# ----------------------------------------------------------------------------------------------------
def augment(x: Any, g: Any, cfg: PictureEncoderConfig) -> Any:
    """Augmented copies of ``x``, (B, 3, S, S) float pictures in [0, 1], drawn from generator ``g`` (on the
    CPU): shift (edge-replicated), mirror, brightness, an occluding box, noise (module docstring)."""
    import torch
    import torch.nn.functional as F

    b, c, s, _ = x.shape
    if cfg.shift:
        k = cfg.shift
        padded = F.pad(x, (k, k, k, k), mode="replicate")
        dy = torch.randint(0, 2 * k + 1, (b,), generator=g)
        dx = torch.randint(0, 2 * k + 1, (b,), generator=g)
        grid = torch.arange(s)
        rows = (dy[:, None] + grid)[:, None, :, None]                   # (B, 1, S, 1)
        cols = (dx[:, None] + grid)[:, None, None, :]                   # (B, 1, 1, S)
        x = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    lo, hi = cfg.brightness
    x = x * (lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=g))
    if cfg.occlusion:
        hit = torch.rand(b, generator=g) < cfg.occlusion
        corner = 0.8 * torch.rand(b, 2, generator=g)
        size = 0.15 + 0.25 * torch.rand(b, 2, generator=g)
        colour = torch.rand(b, c, 1, 1, generator=g)
        pos = (torch.arange(s) + 0.5) / s
        inside_x = (pos[None] >= corner[:, :1]) & (pos[None] < corner[:, :1] + size[:, :1])    # (B, S)
        inside_y = (pos[None] >= corner[:, 1:]) & (pos[None] < corner[:, 1:] + size[:, 1:])
        box = hit[:, None, None] & inside_y[:, :, None] & inside_x[:, None, :]                 # (B, S, S)
        x = torch.where(box[:, None], colour, x)
    if cfg.noise:
        x = x + cfg.noise * torch.randn(x.shape, generator=g)
    return x.clamp(0.0, 1.0)


def _info_nce(a: Any, b: Any, temperature: float) -> Any:
    """Symmetric InfoNCE of matched rows of ``a`` and ``b`` (both (B, k), L2-normalised here)."""
    import torch
    import torch.nn.functional as F

    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _step_budget(cfg: PictureEncoderConfig, n_fit: int) -> int:
    return max(1, min(cfg.max_steps, math.ceil(cfg.max_epochs * n_fit / cfg.batch_size)))


def pretrain(images: np.ndarray, text: np.ndarray, fit_items: np.ndarray, cfg: PictureEncoderConfig,
             progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """Pretrain ``PictureCNN(cfg.channels, cfg.d)`` on the pictures of ``fit_items``.

    Parameters
    ----------
    images : np.ndarray
        (n_items + 1, 3, S, S) uint8 pictures (row 0 padding).
    text : np.ndarray
        (n_items + 1, D) text embeddings, standardised by the caller (only rows ``fit_items`` are read).
    fit_items : np.ndarray
        Indices of the training items (at least 8).
    cfg : PictureEncoderConfig

    Returns
    -------
    (PictureCNN on the CPU, in eval mode, with the best held-out state; a report dict)
    """
    import torch
    from torch import nn

    from hmspar.device import resolve_device
    from hmspar.rec.models.pixelrec import PictureCNN

    fit_items = np.asarray(fit_items, dtype=np.int64)
    if fit_items.size < 8:
        raise HmsparError(f"rec.picture_encoder: {fit_items.size} training items with pictures; at least 8 "
                          "are needed to pretrain the picture encoder")
    rng = np.random.default_rng([cfg.seed, 7])
    order = rng.permutation(fit_items)
    n_val = max(2, int(round(cfg.val_fraction * order.size)))
    val_items, train_items = np.sort(order[:n_val]), np.sort(order[n_val:])
    batch = min(cfg.batch_size, train_items.size)
    budget = _step_budget(cfg, train_items.size)
    device = resolve_device(cfg.device)
    n_threads = threads.resolve(cfg.num_threads, "rec.picture_encoder.num_threads")
    pictures = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0          # (N+1, 3, S, S)
    words = torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32))
    use_text = cfg.text_weight > 0

    devices = [device.index or 0] if device.type == "cuda" else []
    with threads.limited(n_threads), torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed)
        cnn = PictureCNN(list(cfg.channels), cfg.d)
        heads = nn.ModuleDict({
            "view": nn.Sequential(nn.Linear(cfg.d, cfg.d), nn.ReLU(), nn.Linear(cfg.d, cfg.proj_dim)),
            "picture": nn.Linear(cfg.d, cfg.proj_dim),
            "text": nn.Linear(words.shape[1], cfg.proj_dim),
        })
        cnn.to(device)
        heads.to(device)
        params = list(cnn.parameters()) + list(heads.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, budget) / budget)))
        g = torch.Generator().manual_seed(int(cfg.seed))

        def losses(rows: np.ndarray, gen: Any) -> tuple[Any, Any]:
            idx = torch.from_numpy(rows)
            x = pictures[idx]
            v1, v2 = augment(x, gen, cfg).to(device), augment(x, gen, cfg).to(device)
            e1, e2 = cnn(v1 * 255.0), cnn(v2 * 255.0)                   # PictureCNN reads the 0-255 range
            view = _info_nce(heads["view"](e1), heads["view"](e2), cfg.temperature)
            if not use_text:
                return view, torch.zeros((), device=device)
            t = words[idx].to(device)
            return view, _info_nce(heads["picture"](0.5 * (e1 + e2)), heads["text"](t), cfg.temperature)

        def held_out() -> float:
            cnn.eval()
            heads.eval()
            gen = torch.Generator().manual_seed(int(cfg.seed) + 1)
            total, n = 0.0, 0
            with torch.no_grad():
                for s in range(0, val_items.size, batch):
                    rows = val_items[s:s + batch]
                    if rows.size < 2:
                        continue
                    v, t = losses(rows, gen)
                    total += float(v + cfg.text_weight * t) * rows.size
                    n += rows.size
            cnn.train()
            heads.train()
            return total / max(1, n)

        curve, best, best_step, bad, step = [], math.inf, 0, 0, 0
        best_state = copy.deepcopy(cnn.state_dict())
        perm = torch.randperm(train_items.size, generator=g).numpy()
        cursor = 0
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=budget, desc="picture encoder", unit="step")
        t0 = time.perf_counter()
        while step < budget:
            if cursor + batch > perm.size:
                perm, cursor = torch.randperm(train_items.size, generator=g).numpy(), 0
            rows = train_items[perm[cursor:cursor + batch]]
            cursor += batch
            view, text_loss = losses(rows, g)
            loss = view + cfg.text_weight * text_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if bar is not None:
                bar.update(1)
            if step % cfg.eval_every == 0 or step == budget:
                val = held_out()
                curve.append({"step": step, "train_loss": round(loss.item(), 4),
                              "train_view_loss": round(view.item(), 4),
                              "train_text_loss": round(text_loss.item(), 4), "val_loss": round(val, 4)})
                if val < best - 1e-4:
                    best, best_step, bad = val, step, 0
                    best_state = copy.deepcopy(cnn.state_dict())
                else:
                    bad += 1
                    if bad >= cfg.patience and step >= cfg.min_steps:
                        break
        if bar is not None:
            bar.close()
        cnn.load_state_dict(best_state)
        cnn.to("cpu").eval()
    report = {"n_fit_items": int(train_items.size), "n_val_items": int(val_items.size), "step_budget": budget,
              "steps_run": step, "best_step": best_step, "best_val_loss": round(best, 4),
              "chance_val_loss": round(math.log(min(batch, val_items.size)) * (1 + cfg.text_weight), 4),
              "fit_s": round(time.perf_counter() - t0, 2), "curve": curve, "device": str(device),
              "num_threads": n_threads}
    return cnn, report


def picture_encoder(dataset: str, params: dict[str, Any], features_root: Path | None = None,
                    out_root: Path = PICTURES_ROOT, metrics_root: Path = METRICS_ROOT,
                    progress: bool = True) -> Path:
    """Stage ``rec_pictures@<dataset>``: pretrain, encode every item, probe; returns the output folder."""
    import torch

    from hmspar.io import atomic_dir, write_json
    from hmspar.rec.convert import FEATURES_ROOT
    from hmspar.rec.data import ProtocolConfig, load
    from hmspar.rec.models.common import standardised_text, style_descriptor, train_items
    from hmspar.rec.models.pixelrec import encode_pictures

    cfg = encoder_config(params)
    protocol = build(ProtocolConfig, (params.get("rec") or {}).get("protocol"), "rec.protocol")
    features = Path(FEATURES_ROOT if features_root is None else features_root) / dataset
    if not features.is_dir():
        raise HmsparError(f"{features}: not found (unknown rec dataset {dataset!r}, or run rec_convert@{dataset} first)")
    data = load(features, protocol)
    items = data.items
    if items.image.ndim != 4 or items.image.shape[1] != 3:
        raise HmsparError(f"{features / 'image.npy'}: dataset {dataset!r} has no item pictures "
                          f"(shape {items.image.shape}); the picture encoder needs (n, 3, S, S) pictures")
    out = Path(out_root) / dataset
    if not data.meta.get("has_pictures", True):
        # an imported log without pictures: nothing to learn; the folder says so (resolve_lab reads it)
        with atomic_dir(out) as tmp:
            (tmp / "meta.json").write_text(json.dumps({"dataset": dataset, "has_pictures": False}, indent=2) + "\n")
        write_json(Path(metrics_root) / f"{dataset}.json", {"has_pictures": False})
        return out
    seen = train_items(data.train, items.n_items)
    fit = np.flatnonzero(seen)
    held = np.flatnonzero(~seen[1:]) + 1
    cnn, report = pretrain(items.image, standardised_text(items, fit), fit, cfg, progress=progress)
    feats = encode_pictures(cnn, items.image)
    probes = None
    if held.size >= 10:
        probes = probe_table({"lab_encoder": feats, "descriptor": style_descriptor(items.image)}, items, fit, held)
    with atomic_dir(out) as tmp:
        torch.save(cnn.state_dict(), tmp / WEIGHTS_FILE)
        np.save(tmp / FEATURES_FILE, feats)
        with open(tmp / "meta.json", "w") as fh:
            json.dump({"dataset": dataset, "has_pictures": True, "config": to_dict(cfg), "n_items": items.n_items,
                       "n_training_items": int(fit.size), "n_unseen_items": int(held.size),
                       # a cached output holds no wall time (the same params give the same bytes): fit_s goes
                       # to the metrics file only
                       **{k: v for k, v in report.items() if k != "fit_s"}},
                      fh, indent=2, sort_keys=True)
            fh.write("\n")
    write_json(Path(metrics_root) / f"{dataset}.json", {
        "has_pictures": True, "n_training_items": int(fit.size), "n_unseen_items": int(held.size),
        "best_step": report["best_step"], "best_val_loss": report["best_val_loss"],
        "chance_val_loss": report["chance_val_loss"], "fit_s": report["fit_s"],
        "probe_on_unseen_items": probes})
    return out

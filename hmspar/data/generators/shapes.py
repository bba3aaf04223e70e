"""Simulated small labelled series of several shape classes: the small-data, signed, multi-class regression
check of the default pipeline (a few dozen training series per class, z-normalised, no text, no static).

Each entity draws its class ``shape`` uniformly from the first ``n_classes`` of :data:`SHAPES` (a latent
cause drawn *before* the series), then a series of ``length`` steps on ``u = t / (length - 1)``:

* ``plateau``: a raised level between an onset ``a`` and an end ``b`` (Saito's *cylinder*);
* ``rise``: a linear ramp from ``a`` to ``b`` that then drops back (*bell*);
* ``fall``: a jump at ``a`` decaying linearly to ``b`` (*funnel*);
* ``wave``: a sine of 1.5-2.5 cycles with a random phase;
* ``double``: two narrow bumps, at ``a`` and near ``b``;
* ``dip``: a narrow trough followed by a narrow peak;
* ``spike``: one very narrow peak at ``a`` (about 1/16 of the window);
* ``steps``: a staircase of three levels (up at ``a``, up again at ``b``).

Onsets, widths and amplitudes are random per entity, the time axis is warped smoothly (``warp``), a small
random linear drift is added, then gaussian noise of standard deviation ``noise`` times the standard
deviation of the noise-free curve (the same signal-to-noise ratio in every class), and each series is z-normalised on its own observed steps (so the values are signed, mean 0,
standard deviation 1, and neither level nor scale identifies the class). About ``missing_rate`` of the
steps are unobserved (NaN). The dataset declares ``values: signed`` and the modalities ``series, image``.

Task ``shape``: the class code (``0..n_classes-1``), a latent cause: no summary statistic of the stored
series gives it away (mean and standard deviation are fixed by the z-normalisation), while the shape is
learnable by any sequence classifier.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from hmspar.data.generators import DatasetConfig
from hmspar.data.generators._common import check_fields, gap_mask, iter_blocks, make_ids
from hmspar.data.schema import RawDataset

#: Shape names in class-code order.
SHAPES = ("plateau", "rise", "fall", "wave", "double", "dip", "spike", "steps")

#: Suggested ``params.yaml`` section: 6 classes, about 33 training series per class.
DEFAULT_PARAMS = {"seed": 108, "n_entities": 360, "length": 64, "image_size": 16, "n_classes": 6,
                  "val_fraction": 0.05, "test_fraction": 0.4}


@dataclasses.dataclass(frozen=True)
class Config(DatasetConfig):
    """``datasets.shapes`` settings: the common ones plus

    n_classes : int
        Number of shape classes, 2 to 8 (the first ``n_classes`` of :data:`SHAPES`).
    noise : float
        Standard deviation of the gaussian noise relative to the standard deviation of the series' own
        noise-free curve (the same signal-to-noise ratio in every class).
    warp : float
        Strength of the smooth time warping (0 = none; at most 0.3).
    missing_rate : float
        Fraction of unobserved steps (NaN).
    """

    n_classes: int = 6
    noise: float = 0.35
    warp: float = 0.15
    missing_rate: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self, min_length=16)
        if not 2 <= self.n_classes <= len(SHAPES):
            raise ValueError(f"n_classes must lie in 2..{len(SHAPES)}, got {self.n_classes!r}")
        if not 0.0 <= self.noise <= 3.0:
            raise ValueError(f"noise must lie in [0, 3], got {self.noise!r}")
        if not 0.0 <= self.warp <= 0.3:
            raise ValueError(f"warp must lie in [0, 0.3], got {self.warp!r}")


def _bump(u: np.ndarray, centre: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Gaussian bumps: (m, T) from (m, T) positions and (m, 1) centres and widths."""
    return np.exp(-0.5 * ((u - centre) / width) ** 2)


def shape_curves(code: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise-free shapes of unit amplitude for class codes ``code`` (m,) on warped positions ``u`` (m, T)."""
    m = code.size
    a = rng.uniform(0.1, 0.45, (m, 1))
    b = np.minimum(a + rng.uniform(0.25, 0.45, (m, 1)), 0.95)
    out = np.zeros_like(u)
    inside = (u >= a) & (u <= b)
    frac = np.clip((u - a) / (b - a), 0.0, 1.0)
    narrow = rng.uniform(0.03, 0.06, (m, 1))
    curves = {
        0: inside.astype(np.float64),                                                     # plateau
        1: np.where(inside, frac, 0.0),                                                   # rise
        2: np.where(inside, 1.0 - frac, 0.0),                                             # fall
        3: np.sin(2 * np.pi * rng.uniform(1.5, 2.5, (m, 1)) * u + rng.uniform(0, 2 * np.pi, (m, 1))),  # wave
        4: _bump(u, a, narrow) + _bump(u, b, narrow),                                    # double
        5: _bump(u, a + 0.1, narrow) - _bump(u, a, narrow) * 1.0,                         # dip
        6: _bump(u, a + 0.2, narrow * 0.5),                                               # spike
        7: (u >= a).astype(np.float64) + (u >= b).astype(np.float64),                     # steps
    }
    for k, curve in curves.items():
        rows = code == k
        out[rows] = curve[rows]
    return out


def _simulate_block(rng: np.random.Generator, m: int, cfg: Config) -> dict[str, np.ndarray]:
    code = rng.integers(0, cfg.n_classes, m)  # the latent cause, drawn first
    t = np.linspace(0.0, 1.0, cfg.length)[None, :]
    warp = cfg.warp * rng.uniform(-1.0, 1.0, (m, 1)) * np.sin(np.pi * t)  # smooth, ends fixed
    u = np.clip(t + warp, 0.0, 1.0)
    amplitude = rng.uniform(0.8, 1.5, (m, 1))
    x = amplitude * shape_curves(code, u, rng)
    x += rng.normal(0.0, 0.3, (m, 1)) * (t - 0.5) * amplitude  # a small random drift
    # Noise relative to each series' own signal spread: the same signal-to-noise ratio in every class, so
    # roughness after z-normalisation does not tell the classes apart.
    x += rng.normal(0.0, cfg.noise, x.shape) * x.std(axis=1, keepdims=True)
    x[gap_mask(rng, m, cfg.length, cfg.missing_rate)] = np.nan
    mean = np.nanmean(x, axis=1, keepdims=True)
    std = np.nanstd(x, axis=1, keepdims=True)
    x = (x - mean) / np.where(std > 1e-8, std, 1.0)  # z-normalised per series: signed values
    return {"values": x, "shape": code}


def generate(cfg: Config, progress: bool = True) -> RawDataset:
    """Simulate the labelled shape series of ``cfg``.

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Show a progress bar over entity blocks.

    Returns
    -------
    RawDataset
        Series (N, 1, length) with channel ``value`` (signed, z-normalised), task ``shape`` with codes
        ``0..n_classes-1``, no static attributes, modalities ``series, image``.
    """
    n = cfg.n_entities
    series = np.empty((n, 1, cfg.length), dtype=np.float32)
    labels = np.empty(n, dtype=np.int8)
    for start, stop, rng in iter_blocks(n, cfg.seed, progress, "generate shapes"):
        b = _simulate_block(rng, stop - start, cfg)
        series[start:stop, 0] = b["values"]
        labels[start:stop] = b["shape"]
    names = SHAPES[:cfg.n_classes]
    return RawDataset(
        name="shapes",
        series=series,
        channels=["value"],
        ids=make_ids("S", n),
        text=[""] * n,  # no descriptions: the dataset does not declare the text modality
        static=pd.DataFrame(index=pd.RangeIndex(n)),
        labels={"shape": labels},
        label_definitions={"shape": f"The latent shape class drawn before the series ({cfg.n_classes} classes: "
                                    + ", ".join(f"{k}={s}" for k, s in enumerate(names)) + ")."},
        frequency="step",
        extra_meta={"classes": {"shape": list(names)}, "distinct_texts": 0},
        values="signed",
        modalities=["series", "image"],
    )

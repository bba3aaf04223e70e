"""MPTSNet baseline: multi-scale periodic segmentation, local CNN features and global attention.

A compact re-implementation, written from the paper, of MPTSNet (Mu et al., AAAI 2025, "MPTSNet:
Integrating Multiscale Periodic Local Patterns and Global Dependencies for Multivariate Time Series
Classification"), trained *from scratch* as a supervised classifier with the shared Trainer (no
pretrained weights). What is kept from the paper:

- periods found with the FFT: the ``n_periods`` strongest non-zero frequencies of the amplitude spectrum
  averaged over the *training* series and channels give periods ``ceil(T / f)`` (or fixed candidate
  periods from the config);
- per period (one scale), the series is cut into consecutive segments of that length (left-padded with
  zeros); an inception-style block of parallel convolutions (kernels 1, 3, 5) extracts local features
  within each segment, max-pooled to one token per segment;
- a transformer encoder attends across the segments of a scale (global dependencies);
- scales are fused with softmax weights initialised from the FFT amplitudes of their frequencies (the
  paper weights scales by amplitude), then a linear classifier.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.models.torch_base import TorchClassifier
from hmspar.training.trainer import TrainConfig


def fft_periods(series: np.ndarray, n_periods: int, max_rows: int = 4096) -> tuple[list[int], list[float]]:
    """Dominant periods of a batch of series from its mean amplitude spectrum.

    Parameters
    ----------
    series : np.ndarray
        (n, C, T) training series.
    n_periods : int
        Number of periods wanted (fewer come back when the series is too short or periods coincide).
    max_rows : int
        Use at most this many rows (the first ones) to compute the spectrum.

    Returns
    -------
    (list of int, list of float)
        Distinct periods (strongest first) and the amplitude of the frequency that gave each.
    """
    x = np.asarray(series[:max_rows], dtype=np.float64)  # (n, C, T)
    t = x.shape[-1]
    amp = np.abs(np.fft.rfft(x, axis=-1)).mean(axis=(0, 1))  # (T//2 + 1,)
    amp[0] = 0.0  # drop the mean (frequency 0)
    order = [int(f) for f in np.argsort(-amp, kind="stable") if f > 0]
    periods: list[int] = []
    weights: list[float] = []
    for f in order:
        p = int(math.ceil(t / f))
        if p not in periods:
            periods.append(p)
            weights.append(float(amp[f]))
        if len(periods) == n_periods:
            break
    if not periods:  # T == 1: a single segment of the whole series
        periods, weights = [t], [1.0]
    return periods, weights


def sinusoidal(n: int, d: int, device: torch.device) -> torch.Tensor:
    """(n, d) fixed sinusoidal position embedding."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


class InceptionBlock(nn.Module):
    """Parallel 1-D convolutions with kernels 1, 3 and 5 (same padding), concatenated and projected."""

    def __init__(self, c_in: int, d_model: int) -> None:
        super().__init__()
        width = max(d_model // 2, 4)
        self.branches = nn.ModuleList(nn.Conv1d(c_in, width, k, padding=k // 2) for k in (1, 3, 5))
        self.mix = nn.Conv1d(3 * width, d_model, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C_in, P) -> (N, d, P)
        h = F.gelu(torch.cat([branch(x) for branch in self.branches], dim=1))  # (N, 3w, P)
        return F.gelu(self.mix(h))


class PeriodicScale(nn.Module):
    """One scale of MPTSNet: segments of length ``period``, local CNN per segment, attention across them."""

    def __init__(self, period: int, c_in: int, d_model: int, n_heads: int, n_layers: int, dropout: float) -> None:
        super().__init__()
        self.period = period
        self.local = InceptionBlock(c_in, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.globl = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape  # (B, C_in, T)
        p = self.period
        n_seg = math.ceil(t / p)
        x = F.pad(x, (n_seg * p - t, 0))  # (B, C_in, n_seg * p), zeros on the left
        seg = x.view(b, c, n_seg, p).permute(0, 2, 1, 3).reshape(b * n_seg, c, p)  # (B n_seg, C_in, p)
        tokens = self.local(seg).amax(dim=-1).view(b, n_seg, -1)  # (B, n_seg, d)
        tokens = tokens + sinusoidal(n_seg, tokens.shape[-1], x.device)
        h = self.globl(tokens)  # (B, n_seg, d)
        return self.norm(h.mean(dim=1))  # (B, d)


class MPTSNet(nn.Module):
    """MPTSNet style network over the periods found at fit time.

    Parameters
    ----------
    n_channels : int
        Channels ``C`` of the series.
    n_outputs : int
        Logit columns (1 for binary).
    periods : sequence of int
        One scale per period.
    amplitudes : sequence of float
        FFT amplitude of each period's frequency; initialises the fusion weights.
    use_mask, d_model, n_heads, n_layers, dropout
        See :class:`MPTSNetConfig`.
    """

    def __init__(self, n_channels: int, n_outputs: int, periods: list[int], amplitudes: list[float],
                 use_mask: bool = True, d_model: int = 64, n_heads: int = 4, n_layers: int = 1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.use_mask = use_mask
        self.periods = [int(p) for p in periods]
        c_in = n_channels * (2 if use_mask else 1)
        self.scales = nn.ModuleList(PeriodicScale(p, c_in, d_model, n_heads, n_layers, dropout)
                                    for p in self.periods)
        amp = torch.tensor(amplitudes, dtype=torch.float32).clamp_min(1e-6)
        self.scale_logits = nn.Parameter(torch.log(amp / amp.sum()))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, n_outputs)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["series"]  # (B, C, T)
        if self.use_mask:
            x = torch.cat([x, batch["mask"]], dim=1)  # (B, 2C, T)
        per_scale = torch.stack([scale(x) for scale in self.scales], dim=1)  # (B, S, d)
        w = self.scale_logits.softmax(dim=0)  # (S,)
        fused = (per_scale * w[None, :, None]).sum(dim=1)  # (B, d)
        return self.head(self.drop(fused))  # (B, n_outputs)


def _small_train() -> TrainConfig:
    return TrainConfig(epochs=20, batch_size=256, lr=1e-3, patience=4)


@dataclasses.dataclass(frozen=True)
class MPTSNetConfig:
    """Settings of :class:`MPTSNetModel` (``baselines.mptsnet`` in ``params.yaml``).

    Parameters
    ----------
    inputs : list of str
        Must be ``["series"]``.
    use_mask : bool
        Feed the activity mask as extra input channels.
    n_periods : int
        Number of FFT periods (scales) found on the training series; ignored when ``periods`` is set.
    periods : list of int, optional
        Fixed candidate periods instead of the FFT ones (periods longer than the series are dropped).
    d_model, n_heads, n_layers : int
        Width, attention heads and transformer layers per scale.
    dropout : float
        Dropout in the transformer and before the classifier.
    train : TrainConfig
        Optimisation settings for the shared Trainer.
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["series"])
    use_mask: bool = True
    n_periods: int = 3
    periods: list[int] | None = None
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 1
    dropout: float = 0.1
    train: TrainConfig = dataclasses.field(default_factory=_small_train)

    def __post_init__(self) -> None:
        if list(self.inputs) != ["series"]:
            raise ValueError(f"inputs: MPTSNet reads the series only; expected ['series'], got {self.inputs!r}")
        for name in ("n_periods", "d_model", "n_heads", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.periods is not None and (not self.periods or any(p < 1 for p in self.periods)):
            raise ValueError(f"periods: expected a non-empty list of positive integers, got {self.periods!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")


class MPTSNetModel(TorchClassifier):
    """MPTSNet style multi-scale periodic classifier, trained from scratch (no pretrained weights).

    The periods (and the initial scale weights) come from the FFT of the *training* series in
    ``build_module``; they are stored in the module as ``module_.periods``.
    """

    Config = MPTSNetConfig
    name = "mptsnet"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"n_periods": 2, "d_model": 16, "n_heads": 2, "n_layers": 1,
                "train": {"epochs": 12, "batch_size": 32, "lr": 3e-3, "patience": 4, "num_threads": 1}}

    def build_module(self, X: dict[str, np.ndarray], n_outputs: int) -> nn.Module:
        """Find the periods on ``X['series']`` (training rows) and build the network."""
        series = X["series"]
        t = int(np.shape(series)[2])
        if self.cfg.periods is not None:
            periods = sorted({int(p) for p in self.cfg.periods if p <= t}) or [t]
            amplitudes = [1.0] * len(periods)
        else:
            periods, amplitudes = fft_periods(series, self.cfg.n_periods)
        c = self.cfg
        return MPTSNet(int(np.shape(series)[1]), n_outputs, periods, amplitudes, use_mask=c.use_mask,
                       d_model=c.d_model, n_heads=c.n_heads, n_layers=c.n_layers, dropout=c.dropout)

"""Deep sequence baselines trained from scratch with the shared Trainer: LSTM, 1-D CNN and Transformer.

Each reads the standardised series and its activity mask, stacked as ``2C`` input channels
(``[series_0..series_{C-1}, mask_0..mask_{C-1}]``), encodes them into one vector, and classifies it with a
small MLP head. When ``static`` and/or ``text`` are listed in ``inputs`` their vectors are concatenated
with the sequence encoding before the head (late fusion); ``image`` is not accepted. Defaults are small
(hidden size 64) so the models train in minutes on a CPU.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from hmspar.errors import HmsparError
from hmspar.models.layers.sequence import CNNEncoder, LSTMEncoder
from hmspar.models.torch_base import TorchClassifier
from hmspar.training.trainer import TrainConfig

_ACCEPTED_INPUTS = ("series", "static", "text")


def _default_inputs() -> list[str]:
    return ["series"]


@dataclasses.dataclass(frozen=True)
class _SequenceConfig:
    """Fields shared by the sequence baselines.

    Parameters
    ----------
    inputs : list of str
        Must contain ``series``; ``static`` and ``text`` are optional late-fusion extras.
    head_hidden : int
        Width of the MLP head.
    dropout : float
        Dropout in the encoder and head.
    train : TrainConfig
        Optimisation settings (nested ``train`` section).
    """

    inputs: list[str] = dataclasses.field(default_factory=_default_inputs)
    head_hidden: int = 64
    dropout: float = 0.1
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if "series" not in self.inputs:
            raise ValueError(f"inputs: must contain 'series', got {list(self.inputs)}")
        for m in self.inputs:
            if m not in _ACCEPTED_INPUTS:
                raise ValueError(f"inputs: {m!r} is not accepted by sequence models "
                                 f"(accepted: {', '.join(_ACCEPTED_INPUTS)})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise ValueError(f"{f.name}: must be a positive integer, got {value!r}")


_TEST_TRAIN = {"epochs": 25, "batch_size": 64, "lr": 3e-3, "patience": 6, "eval_batch_size": 256, "num_threads": 1}


# ------------------------------------------------------------------------------------------ networks
class SequenceNet(nn.Module):
    """Sequence encoder, optional late fusion of static/text vectors, MLP head.

    Parameters
    ----------
    encoder : nn.Module
        Maps (B, 2C, T) to (B, enc_dim).
    enc_dim : int
        Width of the encoder output.
    extras : list of str
        Modalities (``static``, ``text``) concatenated with the encoding, in this order.
    extra_dim : int
        Their total width.
    head_hidden : int
        Hidden width of the head.
    dropout : float
        Head dropout.
    n_outputs : int
        Logit columns (1 for binary).
    """

    def __init__(self, encoder: nn.Module, enc_dim: int, extras: list[str], extra_dim: int, head_hidden: int,
                 dropout: float, n_outputs: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.extras = list(extras)
        self.head = nn.Sequential(
            nn.Linear(enc_dim + extra_dim, head_hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(head_hidden, n_outputs),
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.cat([batch["series"], batch["mask"]], dim=1)  # (B, C, T) x2 -> (B, 2C, T)
        h = self.encoder(x)  # (B, 2C, T) -> (B, enc_dim)
        if self.extras:
            h = torch.cat([h] + [batch[m] for m in self.extras], dim=1)  # (B, enc_dim + F + D)
        return self.head(h)  # (B, enc_dim + extra_dim) -> (B, n_outputs)


def _wrap(encoder: nn.Module, enc_dim: int, X: dict[str, np.ndarray], cfg: Any, n_outputs: int) -> SequenceNet:
    extras = [m for m in ("static", "text") if m in cfg.inputs]
    extra_dim = sum(int(np.shape(X[m])[1]) for m in extras)
    return SequenceNet(encoder, enc_dim, extras, extra_dim, cfg.head_hidden, cfg.dropout, n_outputs)


class TransformerSeqEncoder(nn.Module):
    """Pre-norm Transformer over time steps with learned positions and a [CLS] token, (B, 2C, T) -> (B, d)."""

    def __init__(self, n_in: int, length: int, d_model: int, n_heads: int, num_layers: int,
                 dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.length = length
        self.proj = nn.Linear(n_in, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos = nn.Parameter(torch.zeros(1, length + 1, d_model))
        nn.init.normal_(self.cls, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != self.length:
            raise HmsparError(f"transformer: series have {x.shape[2]} periods, the model was built for {self.length}")
        h = self.proj(x.transpose(1, 2))  # (B, 2C, T) -> (B, T, 2C) -> (B, T, d)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1) + self.pos  # (B, T+1, d)
        h = self.encoder(h)  # (B, T+1, d) -> (B, T+1, d)
        return self.norm(h[:, 0])  # [CLS]: (B, T+1, d) -> (B, d)


# ------------------------------------------------------------------------------------------------ LSTM
@dataclasses.dataclass(frozen=True)
class LSTMConfig(_SequenceConfig):
    """``baselines.lstm``: hidden size, layers, direction (plus the shared fields)."""

    hidden: int = 64
    num_layers: int = 1
    bidirectional: bool = False


class LSTMModel(TorchClassifier):
    """LSTM over time steps; the final hidden state (both directions if bidirectional) feeds the head."""

    Config = LSTMConfig
    name = "lstm"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"hidden": 16, "head_hidden": 16, "train": dict(_TEST_TRAIN)}

    def build_module(self, X, n_outputs):
        c = self.cfg
        enc = LSTMEncoder(2 * int(np.shape(X["series"])[1]), c.hidden, c.num_layers, c.bidirectional, c.dropout)
        return _wrap(enc, enc.out_features, X, c, n_outputs)


# ----------------------------------------------------------------------------------------------- CNN1D
@dataclasses.dataclass(frozen=True)
class CNN1DConfig(_SequenceConfig):
    """``baselines.cnn1d``: channels, number of conv blocks, kernel size (plus the shared fields)."""

    hidden: int = 64
    num_layers: int = 3
    kernel_size: int = 3


class CNN1DModel(TorchClassifier):
    """Stacked ``Conv1d-BatchNorm-ReLU`` blocks ('same' padding), then global average and max pooling."""

    Config = CNN1DConfig
    name = "cnn1d"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"hidden": 16, "num_layers": 2, "head_hidden": 16, "train": dict(_TEST_TRAIN)}

    def build_module(self, X, n_outputs):
        c = self.cfg
        enc = CNNEncoder(2 * int(np.shape(X["series"])[1]), c.hidden, c.num_layers, c.kernel_size, c.dropout)
        return _wrap(enc, enc.out_features, X, c, n_outputs)


# ----------------------------------------------------------------------------------------- Transformer
@dataclasses.dataclass(frozen=True)
class TransformerConfig(_SequenceConfig):
    """``baselines.transformer``: model width, heads, layers, feed-forward width (plus the shared fields)."""

    d_model: int = 64
    n_heads: int = 4
    num_layers: int = 2
    dim_feedforward: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model: {self.d_model} is not divisible by n_heads {self.n_heads}")


class TransformerModel(TorchClassifier):
    """Transformer encoder over time steps; the [CLS] output feeds the head.

    Each time step's ``2C`` values are projected to ``d_model``; the positional table is sized to the
    training series length, so predictions need the same ``T``.
    """

    Config = TransformerConfig
    name = "transformer"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"d_model": 16, "n_heads": 2, "num_layers": 1, "dim_feedforward": 32, "head_hidden": 16,
                "train": dict(_TEST_TRAIN)}

    def build_module(self, X, n_outputs):
        c = self.cfg
        _, n_ch, length = np.shape(X["series"])
        enc = TransformerSeqEncoder(2 * int(n_ch), int(length), c.d_model, c.n_heads, c.num_layers,
                                    c.dim_feedforward, c.dropout)
        return _wrap(enc, c.d_model, X, c, n_outputs)

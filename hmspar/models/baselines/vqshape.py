"""VQShape baseline: shape tokens with a vector-quantised codebook, classified from code histograms.

A compact re-implementation, written from the paper, of VQShape (Wen et al., NeurIPS 2024, "Abstracted
Shapes as Tokens - A Generalizable and Interpretable Model for Time-series Classification"), trained
*from scratch* as a supervised classifier with the shared Trainer: no pretrained codebook or encoder is
loaded, and the pre-training objectives become auxiliary losses of the supervised fit. What is kept:

- every channel is encoded on its own: patch tokens (values and activity mask), a sinusoidal position
  embedding and a channel embedding feed a transformer encoder together with ``n_shapes`` learned query
  tokens, whose outputs are the *shape tokens*;
- each shape token is decoded into an attribute tuple (code, offset, scale, start position, length):
  the code vector is quantised to its nearest entry (cosine) of a learned codebook with the
  straight-through estimator; offset is free, scale positive (softplus), start and length in [0, 1]
  with ``start + length <= 1`` and ``length >= min_length``;
- a shape decoder maps the quantised code to a normalised shape of ``shape_len`` points; the token's
  reconstruction ``offset + scale * shape`` must match the series resampled (linear interpolation,
  differentiable in start and length) over the token's window;
- ``module.aux_loss = vq_weight * (codebook + beta * commitment) + rec_weight * reconstruction``;
- classification from the (soft) histogram of codes per channel together with the shape tokens'
  attributes, through a small MLP. The paper's whole-series decoder is left out.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.models.baselines.mptsnet import sinusoidal
from hmspar.models.torch_base import TorchClassifier
from hmspar.training.trainer import TrainConfig


def resample(x: torch.Tensor, start: torch.Tensor, length: torch.Tensor, n_points: int) -> torch.Tensor:
    """Linearly interpolate series at ``n_points`` evenly spaced positions of each window.

    Parameters
    ----------
    x : Tensor
        (N, T) series.
    start, length : Tensor
        (N, S) window start and length as fractions of the series, ``start + length <= 1``.
    n_points : int
        Points per window.

    Returns
    -------
    Tensor
        (N, S, n_points), differentiable with respect to ``start`` and ``length``.
    """
    n, t = x.shape
    s = start.shape[1]
    steps = torch.linspace(0.0, 1.0, n_points, device=x.device)  # (P,)
    pos = start[..., None] + length[..., None] * steps  # (N, S, P) in [0, 1]
    grid = torch.stack([pos * 2.0 - 1.0, torch.zeros_like(pos)], dim=-1).view(n, 1, s * n_points, 2)
    out = F.grid_sample(x.view(n, 1, 1, t), grid, mode="bilinear", padding_mode="border",
                        align_corners=True)  # (N, 1, 1, S P)
    return out.view(n, s, n_points)


class VQShapeNet(nn.Module):
    """VQShape style classifier network.

    Parameters
    ----------
    n_channels : int
        Channels ``C`` of the series.
    n_outputs : int
        Logit columns (1 for binary).
    patch_len, use_mask, d_model, n_heads, n_layers, n_shapes, codebook_size, d_code, shape_len,
    min_length, beta, vq_weight, rec_weight, tau, dropout
        See :class:`VQShapeConfig`.
    """

    def __init__(self, n_channels: int, n_outputs: int, patch_len: int = 4, use_mask: bool = True,
                 d_model: int = 64, n_heads: int = 4, n_layers: int = 2, n_shapes: int = 4,
                 codebook_size: int = 32, d_code: int = 8, shape_len: int = 16, min_length: float = 0.1,
                 beta: float = 0.25, vq_weight: float = 1.0, rec_weight: float = 1.0, tau: float = 0.1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.n_channels, self.patch_len, self.use_mask = n_channels, patch_len, use_mask
        self.n_shapes, self.shape_len, self.min_length = n_shapes, shape_len, min_length
        self.beta, self.vq_weight, self.rec_weight, self.tau = beta, vq_weight, rec_weight, tau
        self.embed = nn.Linear(patch_len * (2 if use_mask else 1), d_model)
        self.channel = nn.Embedding(n_channels, d_model)
        self.queries = nn.Parameter(torch.randn(n_shapes, d_model))  # distinct slots -> distinct codes
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.to_code = nn.Linear(d_model, d_code)
        self.to_attrs = nn.Linear(d_model, 4)  # offset, scale, start, length (before their links)
        self.codebook = nn.Parameter(torch.randn(codebook_size, d_code))
        self.decoder = nn.Sequential(nn.Linear(d_code, 4 * d_code), nn.GELU(), nn.Linear(4 * d_code, shape_len))
        n_feat = n_channels * (codebook_size + n_shapes * (d_code + 4))
        self.head = nn.Sequential(nn.LayerNorm(n_feat), nn.Dropout(dropout), nn.Linear(n_feat, d_model),
                                  nn.GELU(), nn.Linear(d_model, n_outputs))
        self.aux_loss: torch.Tensor | None = None

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Shape tokens of every channel.

        Returns
        -------
        dict of str to Tensor
            ``z_e`` (B C, S, D) normalised code vectors before quantisation, ``z_q`` the quantised ones
            (straight-through), ``codes`` (B C, S) codebook indices, ``sim`` (B C, S, K) cosine
            similarities, ``offset``, ``scale``, ``start``, ``length`` (B C, S), ``series`` (B C, T).
        """
        x = batch["series"]  # (B, C, T)
        b, c, t = x.shape
        p = self.patch_len
        n = math.ceil(t / p)
        parts = [x, batch["mask"]] if self.use_mask else [x]
        patches = torch.cat([F.pad(a, (n * p - t, 0)).reshape(b * c, n, p) for a in parts], dim=-1)  # (BC, N, kP)
        d = self.queries.shape[1]
        chan = self.channel(torch.arange(c, device=x.device)).repeat(b, 1)[:, None]  # (BC, 1, d)
        tokens = self.embed(patches) + sinusoidal(n, d, x.device) + chan  # (BC, N, d)
        queries = self.queries.expand(b * c, -1, -1) + chan  # (BC, S, d)
        h = self.encoder(torch.cat([tokens, queries], dim=1))[:, n:]  # shape tokens: (BC, S, d)
        h = self.norm(h)
        z_e = F.normalize(self.to_code(h), dim=-1)  # (BC, S, D)
        book = F.normalize(self.codebook, dim=-1)  # (K, D)
        sim = z_e @ book.T  # (BC, S, K)
        codes = sim.argmax(dim=-1)  # (BC, S)
        z_hard = book[codes]  # (BC, S, D)
        z_q = z_e + (z_hard - z_e).detach()  # straight-through estimator
        a = self.to_attrs(h)  # (BC, S, 4)
        length = self.min_length + (1.0 - self.min_length) * torch.sigmoid(a[..., 3])
        start = torch.sigmoid(a[..., 2]) * (1.0 - length)
        return {"z_e": z_e, "z_hard": z_hard, "z_q": z_q, "codes": codes, "sim": sim, "offset": a[..., 0],
                "scale": F.softplus(a[..., 1]), "start": start, "length": length,
                "series": x.reshape(b * c, t)}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        b = batch["series"].shape[0]
        enc = self.encode(batch)
        # Vector quantisation losses (codebook pulled to codes, codes committed to the codebook).
        codebook_loss = (enc["z_hard"] - enc["z_e"].detach()).pow(2).sum(-1).mean()
        commitment = (enc["z_e"] - enc["z_hard"].detach()).pow(2).sum(-1).mean()
        # Shape reconstruction of each token's window.
        shape = self.decoder(enc["z_q"])  # (BC, S, P)
        shape = (shape - shape.mean(-1, keepdim=True)) / (shape.std(-1, keepdim=True) + 1e-5)
        recon = enc["offset"][..., None] + enc["scale"][..., None] * shape  # (BC, S, P)
        target = resample(enc["series"], enc["start"], enc["length"], self.shape_len)  # (BC, S, P)
        rec_loss = F.mse_loss(recon, target)
        self.aux_loss = self.vq_weight * (codebook_loss + self.beta * commitment) + self.rec_weight * rec_loss
        # Classification features: soft code histogram per channel + shape attributes.
        hist = (enc["sim"] / self.tau).softmax(dim=-1).mean(dim=1)  # (BC, K)
        attrs = torch.cat([enc["z_q"], torch.stack([enc["offset"], enc["scale"], enc["start"],
                                                    enc["length"]], dim=-1)], dim=-1)  # (BC, S, D + 4)
        feats = torch.cat([hist, attrs.flatten(1)], dim=-1).view(b, -1)  # (B, C (K + S (D + 4)))
        return self.head(feats)  # (B, n_outputs)


def _small_train() -> TrainConfig:
    return TrainConfig(epochs=20, batch_size=256, lr=1e-3, patience=4)


@dataclasses.dataclass(frozen=True)
class VQShapeConfig:
    """Settings of :class:`VQShapeModel` (``baselines.vqshape`` in ``params.yaml``).

    Parameters
    ----------
    inputs : list of str
        Must be ``["series"]``.
    use_mask : bool
        Embed each patch's activity mask with its values.
    patch_len : int
        Time steps per patch token.
    d_model, n_heads, n_layers : int
        Encoder width, heads and layers.
    n_shapes : int
        Shape tokens per channel.
    codebook_size, d_code : int
        Codebook entries and their (low) dimension; codes are compared by cosine similarity.
    shape_len : int
        Points of a decoded shape (and of the resampled window it reconstructs).
    min_length : float
        Shortest window, as a fraction of the series.
    beta : float
        Commitment weight within the VQ loss.
    vq_weight, rec_weight : float
        Weights of the VQ loss and of the shape reconstruction loss in ``aux_loss``.
    tau : float
        Temperature of the soft code histogram.
    dropout : float
        Dropout in the encoder and the head.
    train : TrainConfig
        Optimisation settings for the shared Trainer.
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["series"])
    use_mask: bool = True
    patch_len: int = 4
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_shapes: int = 4
    codebook_size: int = 32
    d_code: int = 8
    shape_len: int = 16
    min_length: float = 0.1
    beta: float = 0.25
    vq_weight: float = 1.0
    rec_weight: float = 1.0
    tau: float = 0.1
    dropout: float = 0.1
    train: TrainConfig = dataclasses.field(default_factory=_small_train)

    def __post_init__(self) -> None:
        if list(self.inputs) != ["series"]:
            raise ValueError(f"inputs: VQShape reads the series only; expected ['series'], got {self.inputs!r}")
        for name in ("patch_len", "d_model", "n_heads", "n_layers", "n_shapes", "codebook_size", "d_code"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if isinstance(self.shape_len, bool) or not isinstance(self.shape_len, int) or self.shape_len < 2:
            raise ValueError(f"shape_len: must be an integer of at least 2, got {self.shape_len!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0 < self.min_length <= 1:
            raise ValueError(f"min_length: must be in (0, 1], got {self.min_length!r}")
        for name in ("beta", "vq_weight", "rec_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be non-negative, got {getattr(self, name)!r}")
        if not self.tau > 0:
            raise ValueError(f"tau: must be positive, got {self.tau!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")


class VQShapeModel(TorchClassifier):
    """VQShape style shape-token classifier, trained from scratch (no pretrained codebook or encoder).

    After ``fit``, ``code_histogram(X)`` gives the (n, C, K) hard code counts for interpretation.
    """

    Config = VQShapeConfig
    name = "vqshape"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"patch_len": 4, "d_model": 16, "n_heads": 2, "n_layers": 1, "n_shapes": 2, "codebook_size": 8,
                "d_code": 4, "shape_len": 8, "train": {"epochs": 12, "batch_size": 32, "lr": 3e-3, "patience": 4, "num_threads": 1}}

    def build_module(self, X: dict[str, np.ndarray], n_outputs: int) -> nn.Module:
        """Build the network for series of ``C = X['series'].shape[1]`` channels."""
        c = self.cfg
        return VQShapeNet(int(np.shape(X["series"])[1]), n_outputs, patch_len=c.patch_len, use_mask=c.use_mask,
                          d_model=c.d_model, n_heads=c.n_heads, n_layers=c.n_layers, n_shapes=c.n_shapes,
                          codebook_size=c.codebook_size, d_code=c.d_code, shape_len=c.shape_len,
                          min_length=c.min_length, beta=c.beta, vq_weight=c.vq_weight,
                          rec_weight=c.rec_weight, tau=c.tau, dropout=c.dropout)

    def code_histogram(self, X: dict[str, np.ndarray], batch_size: int = 1024) -> np.ndarray:
        """(n, C, K) counts of the codebook entries chosen by each channel's shape tokens."""
        self._check_fitted()
        from hmspar.training.trainer import batch_slices, to_tensor

        X = self.select_inputs(X)
        net = self.module_.eval()
        k = net.codebook.shape[0]
        out = []
        with torch.no_grad():
            for a, b in batch_slices(self.n_rows(X), batch_size):
                batch = {name: to_tensor(v[a:b], torch.device("cpu")) for name, v in X.items()}
                codes = net.encode(batch)["codes"]  # (B C, S)
                hist = F.one_hot(codes, k).sum(dim=1).view(b - a, net.n_channels, k)  # (B, C, K)
                out.append(hist.numpy())
        return np.concatenate(out, axis=0)

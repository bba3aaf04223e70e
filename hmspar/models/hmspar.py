"""HMSPAR: the project's multimodal classifier for sparse retail sequences.

One encoder per modality maps an entity to a ``d_model`` embedding; a Progressive Layered Extraction
(PLE) block fuses the embeddings and an MLP head gives the logits:

- ``series``: the standardised series and its activity mask, concatenated per time step, go through a
  :class:`~hmspar.models.layers.taylor_kan.TaylorKANEncoder` (polynomial KAN layers applied at every
  step, then temporal pooling) and a linear map to ``d_model``;
- ``image``: the ISA-GAF images ``(2C, S, S)`` go through a ResNet-10 (ResNet-18 with ``image.blocks: 2``;
  :mod:`hmspar.models.layers.resnet`, 3x3 stem without max-pool when ``S < 32``) whose ``fc`` maps to
  ``d_model``; optionally initialised from a local torchvision ResNet-18 checkpoint;
- ``text``: the sentence embedding goes through ``Linear -> GELU -> Dropout -> Linear``;
- ``static``: the static attributes go through the same kind of MLP.

Each embedding is layer-normalised, so the fusion gates compare vectors on one scale. The PLE load
balancing loss, weighted by ``fusion.load_balance_weight``, is exposed as ``module.aux_loss`` and added
to the classification loss by the shared Trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from hmspar.errors import HmsparError
from hmspar.models.base import MODALITIES
from hmspar.models.layers.ple import PLE
from hmspar.models.layers.resnet import load_torchvision_state_dict, resnet18
from hmspar.models.layers.sequence import CNNEncoder, LSTMEncoder
from hmspar.models.layers.taylor_kan import TaylorKANConvEncoder, TaylorKANEncoder
from hmspar.models.torch_base import TorchClassifier
from hmspar.training.trainer import TrainConfig

#: Modality dropout (``fusion.modality_dropout``) applies only to a fusion of at least this many modalities.
MIN_MODALITIES_FOR_DROPOUT = 3

#: Images smaller than this (in pixels per side) use the 3x3 stride-1 ResNet stem when ``small_input: auto``.
SMALL_IMAGE = 32


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")


def _dropout(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: must be in [0, 1), got {value!r}")


@dataclasses.dataclass(frozen=True)
class SeriesConfig:
    """``model.series``: the series encoder (Taylor-KAN, the paper's, by default).

    Parameters
    ----------
    encoder : {"conv", "pointwise", "lstm", "cnn"}
        ``conv``: :class:`~hmspar.models.layers.taylor_kan.TaylorKANConvEncoder`, Taylor-KAN
        convolutions over temporal windows (the default); ``pointwise``: the earlier
        :class:`~hmspar.models.layers.taylor_kan.TaylorKANEncoder`, Taylor-KAN layers applied at each
        step separately after a ``tanh`` of the inputs (kept to reproduce earlier results). ``lstm`` and
        ``cnn``: the encoders of the ``lstm`` and ``cnn1d`` baselines (:mod:`hmspar.models.layers.sequence`:
        one LSTM layer of ``hidden`` units; ``n_layers`` convolution blocks of ``hidden`` channels and width
        ``kernel_size`` with mean and max pooling) inside the same fusion, so that the ablation can tell
        what the fusion adds from what the Taylor-KAN encoder does. ``order``, ``dilation``, ``diff``,
        ``pooling`` and ``positional`` apply to the Taylor-KAN encoders only.
    hidden : int
        Width of the Taylor-KAN layers.
    n_layers : int
        Number of Taylor-KAN layers (``conv``: polynomial layers after the linear stem).
    order : int
        Highest power of each edge polynomial (3 = cubic; the constant is the bias).
    kernel_size, dilation : int
        ``conv`` only: window of each convolution; layer ``l`` (from 0) uses dilation ``dilation ** l``.
    diff : bool
        ``conv`` only: add the first difference of every series channel as an input channel.
    pooling : {"attention", "mean", "max", "meanmax"}
        Temporal pooling of the per-step features (``max`` and ``meanmax`` need ``conv``).
    dropout : float
        Dropout inside the encoder.
    positional : bool
        Feed the relative time position as an extra per-step input.
    """

    encoder: Literal["conv", "pointwise", "lstm", "cnn"] = "conv"
    hidden: int = 64
    n_layers: int = 3
    order: int = 3
    kernel_size: int = 3
    dilation: int = 2
    diff: bool = True
    pooling: Literal["attention", "mean", "max", "meanmax"] = "meanmax"
    dropout: float = 0.1
    positional: bool = True

    def __post_init__(self) -> None:
        for name in ("hidden", "n_layers", "order", "kernel_size", "dilation"):
            _positive(name, getattr(self, name))
        _dropout("dropout", self.dropout)
        if self.encoder not in ("conv", "pointwise", "lstm", "cnn"):
            raise ValueError(f"encoder: expected 'conv', 'pointwise', 'lstm' or 'cnn', got {self.encoder!r}")
        if self.pooling not in ("attention", "mean", "max", "meanmax"):
            raise ValueError(f"pooling: expected attention, mean, max or meanmax, got {self.pooling!r}")
        if self.encoder == "pointwise" and self.pooling not in ("attention", "mean"):
            raise ValueError(f"pooling: the pointwise encoder pools by 'attention' or 'mean', got {self.pooling!r}")


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """``model.image``: the ResNet image encoder (ResNet-10 by default, ResNet-18 with ``blocks: 2``).

    Parameters
    ----------
    width : int
        Channels of the first ResNet stage (64 = standard ResNet-18; 16 is about 16x cheaper).
    blocks : int
        Residual blocks per stage: 1 (ResNet-10, the default: the same four stages as ResNet-18 with half
        the convolutions, about half the image branch's time) or 2 (ResNet-18; ``pretrained_path`` needs 2).
    pretrained_path : str or None
        Local torchvision ``resnet18`` state-dict file to initialise from (needs ``width: 64, blocks: 2``);
        ``null`` trains from scratch.
    small_input : bool or "auto"
        The stem: ``true`` a 3x3 stride-1 convolution without max-pool, ``false`` the standard
        7x7 stride-2 convolution and 3x3 stride-2 max-pool; ``auto`` uses the small stem for images
        smaller than 32x32.
    norm : {"auto", "group", "batch", "frozen"}
        Normalisation layers: ``group`` (GroupNorm: per-sample statistics, train mode = eval mode),
        ``batch`` (BatchNorm with running statistics), ``frozen`` (the checkpoint's batch-norm
        statistics and affine maps, fixed); ``auto`` = ``frozen`` with ``pretrained_path``, else ``group``.
    """

    width: int = 16
    blocks: int = 1
    pretrained_path: str | None = None
    small_input: bool | Literal["auto"] = "auto"
    norm: Literal["auto", "group", "batch", "frozen"] = "auto"

    def __post_init__(self) -> None:
        _positive("width", self.width)
        _positive("blocks", self.blocks)
        if self.norm not in ("auto", "group", "batch", "frozen"):
            raise ValueError(f"norm: expected auto, group, batch or frozen, got {self.norm!r}")
        if self.norm == "group" and self.pretrained_path is not None:
            raise ValueError("norm: 'group' cannot load a batch-norm checkpoint (pretrained_path); "
                             "use 'frozen', 'batch' or 'auto'")
        if self.pretrained_path is not None and self.width != 64:
            raise ValueError(f"width: must be 64 to load torchvision weights from pretrained_path, "
                             f"got {self.width}")
        if self.pretrained_path is not None and self.blocks != 2:
            raise ValueError(f"blocks: must be 2 (ResNet-18) to load torchvision weights from pretrained_path, "
                             f"got {self.blocks}")


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """``model.static`` / ``model.head`` (and base of ``model.text``): a two-layer MLP.

    Parameters
    ----------
    hidden : int
        Hidden width.
    dropout : float
        Dropout after the hidden activation.
    """

    hidden: int = 64
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _positive("hidden", self.hidden)
        _dropout("dropout", self.dropout)


@dataclasses.dataclass(frozen=True)
class TextConfig(MLPConfig):
    """``model.text``: the text-embedding projection (an :class:`MLPConfig` with ``hidden=128``)."""

    hidden: int = 128


@dataclasses.dataclass(frozen=True)
class FusionConfig:
    """``model.fusion``: the PLE fusion block (see :mod:`hmspar.models.layers.ple`).

    Parameters
    ----------
    n_levels : int
        Extraction levels.
    n_shared : int
        Shared experts per level.
    n_specific : int
        Experts per modality per level.
    top_k : int
        0 = dense gates; k > 0 keeps the k largest gate logits (noisy top-k routing).
    noise : float
        Standard deviation of the gaussian noise added to gate logits while training.
    load_balance_weight : float
        Weight of the Switch-style load-balancing loss added to the training loss (0 disables it).
    dropout : float
        Dropout inside the experts.
    output : {"concat", "mean"}
        Concatenate or average the last level's modality and shared outputs.
    modality_dropout : float
        Training only: each sample's embedding of each modality is replaced by zeros with this
        probability (at least one modality is kept per sample), so the fused model cannot lean on one
        modality alone. Only with three or more modalities (:data:`MIN_MODALITIES_FOR_DROPOUT`): with
        two, a drop leaves the other modality alone, even when it carries no signal.
    aux_weight : float
        Weight of the auxiliary per-modality heads: a linear head on each modality embedding is trained
        with the task loss, weighted ``aux_weight`` (averaged over modalities), so every encoder learns
        to carry label information (0 disables the heads).
    """

    n_levels: int = 2
    n_shared: int = 2
    n_specific: int = 2
    top_k: int = 2
    noise: float = 0.1
    load_balance_weight: float = 0.01
    dropout: float = 0.3
    output: Literal["concat", "mean"] = "concat"
    modality_dropout: float = 0.1
    aux_weight: float = 0.3

    def __post_init__(self) -> None:
        _positive("n_levels", self.n_levels)
        for name in ("n_shared", "n_specific", "top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
        if self.n_shared + self.n_specific < 1:
            raise ValueError("n_shared: n_shared + n_specific must be at least 1")
        if self.noise < 0:
            raise ValueError(f"noise: must be non-negative, got {self.noise!r}")
        if self.load_balance_weight < 0:
            raise ValueError(f"load_balance_weight: must be non-negative, got {self.load_balance_weight!r}")
        _dropout("dropout", self.dropout)
        _dropout("modality_dropout", self.modality_dropout)
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight: must be non-negative, got {self.aux_weight!r}")


@dataclasses.dataclass(frozen=True)
class HMSPARConfig:
    """Settings of :class:`HMSPAR`: the ``model`` section of ``params.yaml`` plus the ``train`` section.

    Parameters
    ----------
    modalities : list of str
        Modalities to encode and fuse, in order (subset of ``series, image, text, static``). Dropping
        one removes its encoder (ablation). Every listed modality must be present in ``X``.
    d_model : int
        Size of every modality embedding and of every PLE expert.
    series, image, text, static, fusion, head
        Sub-sections; see :class:`SeriesConfig`, :class:`ImageConfig`, :class:`TextConfig`,
        :class:`MLPConfig` (static and head) and :class:`FusionConfig`.
    train : TrainConfig
        Optimisation settings. ``params.yaml`` keeps them in the top-level ``train:`` section; the
        train stage passes ``{**model_section, "train": train_section}`` (see
        :func:`hmspar.pipeline.train`).

    The base contract's ``inputs`` is a read-only alias of ``modalities``.
    """

    modalities: list[str] = dataclasses.field(default_factory=lambda: list(MODALITIES))
    d_model: int = 64
    series: SeriesConfig = dataclasses.field(default_factory=SeriesConfig)
    image: ImageConfig = dataclasses.field(default_factory=ImageConfig)
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    static: MLPConfig = dataclasses.field(default_factory=MLPConfig)
    fusion: FusionConfig = dataclasses.field(default_factory=FusionConfig)
    head: MLPConfig = dataclasses.field(default_factory=MLPConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        mods = list(self.modalities)
        if not mods:
            raise ValueError("modalities: list at least one of " + ", ".join(MODALITIES))
        for m in mods:
            if m not in MODALITIES:
                raise ValueError(f"modalities: unknown modality {m!r} (known: {', '.join(MODALITIES)})")
        if len(set(mods)) != len(mods):
            raise ValueError(f"modalities: listed twice in {mods!r}")
        _positive("d_model", self.d_model)

    @property
    def inputs(self) -> list[str]:
        """The base contract's name for :attr:`modalities`."""
        return list(self.modalities)


class MLPEncoder(nn.Module):
    """``Linear(d_in, hidden) -> GELU -> Dropout -> Linear(hidden, d_out)`` for vector modalities.

    Parameters
    ----------
    d_in, hidden, d_out : int
        Sizes.
    dropout : float
        Dropout after the activation.
    """

    def __init__(self, d_in: int, hidden: int, d_out: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, d_in) -> (B, d_out)``."""
        return self.net(x)


class SeriesEncoder(nn.Module):
    """Series and mask ``(B, C, T)`` each -> ``(B, d_model)`` via a Taylor-KAN (or the option's) encoder.

    ``encoder: conv`` runs a :class:`TaylorKANConvEncoder` over the channels ``[series, mask]``
    (``2C``, plus a first difference of each series channel with ``diff``); ``pointwise`` the
    per-step :class:`TaylorKANEncoder`; ``lstm`` and ``cnn`` the baselines' encoders over the same ``2C``
    channels. The encoder is the attribute ``kan`` whichever it is (the name saved models' state dicts use).

    Parameters
    ----------
    n_channels : int
        Series channels ``C``.
    d_model : int
        Output size.
    cfg : SeriesConfig
        Encoder settings.
    """

    def __init__(self, n_channels: int, d_model: int, cfg: SeriesConfig):
        super().__init__()
        self.conv = cfg.encoder != "pointwise"  # every encoder but the pointwise one reads (B, 2C, T)
        if cfg.encoder == "lstm":
            self.kan = LSTMEncoder(2 * n_channels, cfg.hidden, num_layers=1, bidirectional=False, dropout=cfg.dropout)
        elif cfg.encoder == "cnn":
            self.kan = CNNEncoder(2 * n_channels, cfg.hidden, cfg.n_layers, cfg.kernel_size, cfg.dropout)
        elif self.conv:
            self.kan = TaylorKANConvEncoder(2 * n_channels, cfg.hidden, cfg.n_layers, cfg.order, cfg.kernel_size,
                                            cfg.dilation, cfg.pooling, cfg.dropout,
                                            n_diff=n_channels if cfg.diff else 0, positional=cfg.positional)
        else:
            self.kan = TaylorKANEncoder(2 * n_channels, cfg.hidden, cfg.n_layers, cfg.order, cfg.pooling,
                                        cfg.dropout, cfg.positional)
        self.proj = nn.Linear(getattr(self.kan, "out_features", cfg.hidden), d_model)

    def forward(self, series: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, C, T), (B, C, T) -> (B, d_model)``."""
        z = torch.cat([series, mask], dim=1)  # (B, C, T) x 2 -> (B, 2C, T)
        if not self.conv:
            z = z.transpose(1, 2)  # (B, 2C, T) -> (B, T, 2C)
        return self.proj(self.kan(z))  # -> (B, hidden) -> (B, d_model)


class HMSPARNet(nn.Module):
    """The HMSPAR network: per-modality encoders, PLE fusion and an MLP head.

    Parameters
    ----------
    encoders : dict of str to nn.Module
        One encoder per modality, in fusion order; each maps its input to ``(B, d_model)``.
    d_model : int
        Embedding size.
    fusion : FusionConfig
        PLE settings, modality dropout and the auxiliary heads' weight.
    head : MLPConfig
        Head settings.
    n_outputs : int
        Logit columns (1 for binary tasks).

    Attributes
    ----------
    aux_loss : Tensor or None
        ``load_balance_weight * balance`` from the latest forward (a scalar).
    aux_logits : list of Tensor or None
        Training forwards with ``fusion.aux_weight > 0``: one ``(B, n_outputs)`` logit tensor per
        modality (linear heads on the embeddings); the Trainer adds ``aux_logits_weight`` times their
        mean loss.
    balance_ : Tensor or None
        The unweighted balance loss of the latest forward (1.0 = balanced routing).
    """

    def __init__(self, encoders: dict[str, nn.Module], d_model: int, fusion: FusionConfig, head: MLPConfig,
                 n_outputs: int):
        super().__init__()
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.norms = nn.ModuleDict({m: nn.LayerNorm(d_model) for m in encoders})
        self.fusion = PLE(len(encoders), d_model, fusion.n_levels, fusion.n_shared, fusion.n_specific,
                          fusion.top_k, fusion.noise, fusion.dropout, fusion.output)
        self.head = MLPEncoder(self.fusion.out_features, head.hidden, n_outputs, head.dropout)
        self.load_balance_weight = fusion.load_balance_weight
        self.modality_dropout = fusion.modality_dropout
        self.aux_logits_weight = fusion.aux_weight
        self.aux_heads = nn.ModuleDict({m: nn.Linear(d_model, n_outputs) for m in encoders}) \
            if fusion.aux_weight > 0 else None
        self.aux_loss: torch.Tensor | None = None
        self.aux_logits: list[torch.Tensor] | None = None
        self.balance_: torch.Tensor | None = None

    def embed(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Per-modality embeddings: ``M x (B, d_model)``, in :attr:`modalities` order."""
        out = []
        for m in self.modalities:
            enc = self.encoders[m]
            if m == "series":
                e = enc(batch["series"], batch["mask"])  # (B, C, T) x 2 -> (B, d)
            else:
                e = enc(batch[m])  # (B, K, S, S) | (B, D) | (B, F) -> (B, d)
            out.append(self.norms[m](e))  # (B, d) -> (B, d)
        return out

    def drop_modalities(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Training only: zero each sample's embedding of each modality with probability
        ``modality_dropout``, keeping at least one modality per sample (``M x (B, d)`` -> same).

        Applies only with at least :data:`MIN_MODALITIES_FOR_DROPOUT` modalities: with two, every drop
        leaves a single-modality sample (at p = 0.3 a quarter of the samples lose each modality), so on a
        dataset where one of the two carries the signal (a series import: series + image) a quarter of
        the training rows are fitted from the other one alone.
        """
        M = len(xs)
        if not self.training or self.modality_dropout <= 0 or M < MIN_MODALITIES_FOR_DROPOUT:
            return xs
        B = xs[0].shape[0]
        keep = torch.rand(B, M, device=xs[0].device) >= self.modality_dropout  # (B, M)
        none = ~keep.any(dim=1)  # (B,) samples that lost every modality keep one, drawn uniformly
        if none.any():
            pick = torch.randint(0, M, (B,), device=keep.device)
            keep = keep | (none[:, None] & (torch.arange(M, device=keep.device)[None, :] == pick[:, None]))
        return [x * keep[:, i:i + 1].to(x.dtype) for i, x in enumerate(xs)]  # M x (B, d)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``batch`` of modality tensors -> logits ``(B, n_outputs)``; sets :attr:`aux_loss` (and
        :attr:`aux_logits` in training)."""
        xs = self.embed(batch)  # M x (B, d)
        self.aux_logits = [self.aux_heads[m](x) for m, x in zip(self.modalities, xs)] \
            if self.aux_heads is not None and self.training else None  # M x (B, n_outputs)
        fused, balance = self.fusion(self.drop_modalities(xs))  # M x (B, d) -> (B, d_fused), ()
        self.balance_ = balance.detach()
        self.aux_loss = self.load_balance_weight * balance
        return self.head(fused)  # (B, d_fused) -> (B, n_outputs)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["aux_loss"] = None  # may hold an autograd graph
        state["aux_logits"] = None
        return state


class HMSPAR(TorchClassifier):
    """HMSPAR: Taylor-KAN series, ResNet ISA-GAF images, text and static encoders fused by PLE.

    Built from the ``model`` section of ``params.yaml`` with the top-level ``train`` section merged in as
    ``model.train`` by the train stage (``section = {**model_section, "train": train_section}``), so
    ``registry.make_model("hmspar", section, seed, where="model")`` gives a fully configured model.

    Parameters
    ----------
    cfg : HMSPARConfig
        Settings; ``cfg.modalities`` (alias ``inputs``) says which encoders exist.
    seed : int
        Seeds parameter initialisation, batch order, dropout and routing noise.
    """

    Config = HMSPARConfig
    name = "hmspar"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """A tiny configuration that trains in seconds on CPU."""
        return {
            "d_model": 16,
            "series": {"hidden": 16, "n_layers": 2, "order": 3},
            "image": {"width": 4},
            "text": {"hidden": 16},
            "static": {"hidden": 8},
            "fusion": {"n_levels": 1, "n_shared": 1, "n_specific": 1},
            "head": {"hidden": 16},
            # 100 steps: 12 (three epochs of 240 rows) left the learnable contract task at test ROC-AUC 0.58-0.76
            # over model seeds 0-5; 100 steps give 0.73-0.87 in 2-3 s
            "train": {"max_steps": 100, "patience_steps": 50, "batch_size": 64, "lr": 0.003},
        }

    def fit(self, X: dict[str, np.ndarray], y: np.ndarray,
            X_val: dict[str, np.ndarray] | None = None, y_val: np.ndarray | None = None) -> "HMSPAR":
        """Train as :meth:`TorchClassifier.fit`, then record the fusion's gate weights on the validation
        rows (the training rows without validation data) in :attr:`diagnostics_`.

        ``diagnostics_["gate_weights"]`` holds, per PLE level, the mean weight of the shared gate on
        each modality's experts and on the shared experts (eval mode: no noise; deterministic), so a
        fusion that collapses onto one modality is visible in each run's ``metrics.json``.
        """
        super().fit(X, y, X_val, y_val)
        self.diagnostics_ = {"gate_weights": self.gate_weights(X if X_val is None else X_val)}
        return self

    def fit_steps(self, X: dict[str, np.ndarray], y: np.ndarray, steps: int) -> "HMSPAR":
        """Train for exactly ``steps`` steps (:meth:`TorchClassifier.fit_steps`); gate weights recorded on ``X``."""
        super().fit_steps(X, y, steps)
        self.diagnostics_ = {"gate_weights": self.gate_weights(X)}
        return self

    def gate_weights(self, X: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        """Mean shared-gate weights per source on the rows of ``X``: ``{"level0": {"series": w, ...,
        "shared": w}, ...}``, rounded to 4 decimals (see :meth:`PLE.shared_gate_weights`)."""
        self._check_fitted()
        net: HMSPARNet = self.module_
        net.fusion.record_gates(True)
        try:
            self.predict_proba(X)
            levels = net.fusion.shared_gate_weights(net.modalities)
        finally:
            net.fusion.record_gates(False)
        return {f"level{i}": {k: round(v, 4) for k, v in level.items()} for i, level in enumerate(levels)}

    def build_module(self, X: dict[str, np.ndarray], n_outputs: int) -> nn.Module:
        """Build the encoders for the listed modalities from the array shapes in ``X``.

        Raises
        ------
        HmsparError
            If a listed modality is missing from ``X`` or has the wrong rank, or if the pretrained image
            checkpoint cannot be loaded. A ``text`` or ``static`` matrix without columns (a dataset
            without that modality) is skipped; the run code already drops modalities a dataset does not
            declare (:meth:`~hmspar.models.base.Model.restricted_to`), so no encoder is built for them.
        """
        cfg: HMSPARConfig = self.cfg
        encoders: dict[str, nn.Module] = {}
        for m in cfg.modalities:
            if m not in X:
                raise HmsparError(f"model.modalities lists {m!r}, but the data has no {m!r} array "
                                  f"(given: {', '.join(sorted(X))})")
        for m in cfg.modalities:
            shape = np.shape(X[m])
            if m == "series":
                if len(shape) != 3 or "mask" not in X or np.shape(X["mask"]) != shape:
                    raise HmsparError(f"HMSPAR: series must be (n, C, T) with a mask of the same shape, got "
                                      f"{shape} and {np.shape(X['mask']) if 'mask' in X else 'no mask'}")
                encoders[m] = SeriesEncoder(shape[1], cfg.d_model, cfg.series)
            elif m == "image":
                if len(shape) != 4:
                    raise HmsparError(f"HMSPAR: image must be (n, K, S, S), got {shape}")
                small = cfg.image.small_input
                if small == "auto":
                    small = min(shape[2], shape[3]) < SMALL_IMAGE
                norm = cfg.image.norm
                if norm == "auto":
                    norm = "frozen" if cfg.image.pretrained_path is not None else "group"
                net = resnet18(in_channels=shape[1], num_classes=cfg.d_model, small_input=bool(small),
                               width=cfg.image.width, norm=norm, blocks=cfg.image.blocks)
                if cfg.image.pretrained_path is not None:
                    load_torchvision_state_dict(net, cfg.image.pretrained_path)
                encoders[m] = net
            elif m in ("text", "static"):
                if len(shape) != 2:
                    raise HmsparError(f"HMSPAR: {m} must be (n, D), got {shape}")
                if shape[1] == 0:  # a dataset without this modality (e.g. a series import): no encoder
                    continue
                sub = cfg.text if m == "text" else cfg.static
                encoders[m] = MLPEncoder(shape[1], sub.hidden, cfg.d_model, sub.dropout)
        if not encoders:
            raise HmsparError("HMSPAR: no modality left to encode (model.modalities lists only empty ones)")
        return HMSPARNet(encoders, cfg.d_model, cfg.fusion, cfg.head, n_outputs)

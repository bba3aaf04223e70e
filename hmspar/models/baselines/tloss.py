"""T-Loss baseline: unsupervised causal-CNN representations (triplet loss) + a linear or SVM classifier.

A compact re-implementation, written from the paper, of Franceschi, Dieuleveut and Jaggi (NeurIPS 2019,
"Unsupervised Scalable Representation Learning for Multivariate Time Series"). No pretrained weights:
the encoder is learned on the *training series only*, without labels; then a classifier is fitted on its
frozen representations. What is kept from the paper:

- encoder: a stack of residual blocks of two causal convolutions (LeakyReLU) with exponentially growing
  dilation 1, 2, 4, ..., a 1x1 convolution on the residual path when widths differ, global max pooling
  over time and a final linear layer (weight normalisation of the paper is left out);
- triplet loss with time-based negative sampling, per step: a length ``l_pn`` in ``[1, T]`` and an anchor
  length in ``[l_pn, T]`` are drawn; the anchor is a random window of each series of the batch, the
  positive a random window of length ``l_pn`` inside the anchor, and ``n_negatives`` negatives random
  windows of length ``l_pn`` of randomly drawn training series. The loss is
  ``-log sigmoid(z_a . z_p) - mean_k log sigmoid(-z_a . z_n_k)``;
- the classifier on representations: an SVM with an RBF kernel as in the paper, or (default, faster on
  large sets) a class-balanced logistic regression, both after standardisation.

All randomness (initialisation inside ``torch.random.fork_rng``, window and batch sampling with a
``torch.Generator``) derives from the model seed, so fits are deterministic.
Validation data are not used (there is no early stopping in the unsupervised phase).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar import threads
from hmspar.errors import HmsparError
from hmspar.models.base import Model
from hmspar.models.torch_base import pack_modules, stratified_holdout, unpack_modules


# ---------------------------------------------------------------------------------------------- encoder
class CausalConv1d(nn.Conv1d):
    """1-D convolution padded on the left only, so output step t sees input steps <= t."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__(c_in, c_out, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C_in, L) -> (N, C_out, L)
        return super().forward(F.pad(x, (self.left, 0)))


class CausalBlock(nn.Module):
    """Two dilated causal convolutions with LeakyReLU and a residual connection."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = CausalConv1d(c_in, c_out, kernel_size, dilation)
        self.conv2 = CausalConv1d(c_out, c_out, kernel_size, dilation)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C_in, L) -> (N, C_out, L)
        h = F.leaky_relu(self.conv1(x))
        h = F.leaky_relu(self.conv2(h))
        return h + self.skip(x)


class CausalCNNEncoder(nn.Module):
    """Exponentially dilated causal CNN, global max pooling over time, linear projection.

    Parameters
    ----------
    c_in : int
        Input channels.
    channels : int
        Width of the hidden blocks.
    depth : int
        Number of hidden blocks (dilations 1, 2, ..., 2**(depth-1)); one more block of width
        ``reduced_size`` with dilation ``2**depth`` follows.
    reduced_size : int
        Channels before pooling.
    out_channels : int
        Representation size.
    kernel_size : int
        Convolution kernel size.
    """

    def __init__(self, c_in: int, channels: int = 32, depth: int = 3, reduced_size: int = 64,
                 out_channels: int = 64, kernel_size: int = 3) -> None:
        super().__init__()
        blocks, width = [], c_in
        for i in range(depth):
            blocks.append(CausalBlock(width, channels, kernel_size, 2 ** i))
            width = channels
        blocks.append(CausalBlock(width, reduced_size, kernel_size, 2 ** depth))
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(reduced_size, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)  # (N, C_in, L) -> (N, reduced, L)
        return self.linear(h.amax(dim=-1))  # (N, out_channels)


# ---------------------------------------------------------------------------------------------- loss
def _windows(x: torch.Tensor, begin: torch.Tensor, length: int) -> torch.Tensor:
    """Windows ``x[i, :, begin[i]:begin[i]+length]`` of (N, C, T) series -> (N, C, length)."""
    idx = begin[:, None] + torch.arange(length, device=x.device)[None]  # (N, length)
    return x.gather(2, idx[:, None, :].expand(-1, x.shape[1], -1))


def _rows_windows(x: torch.Tensor, rows: torch.Tensor, begin: torch.Tensor, length: int) -> torch.Tensor:
    """Windows ``x[rows[i], :, begin[i]:begin[i]+length]`` of (n, C, T) series -> (N, C, length)."""
    idx = begin[:, None] + torch.arange(length, device=x.device)[None]  # (N, length)
    return x[rows[:, None, None], torch.arange(x.shape[1], device=x.device)[None, :, None], idx[:, None, :]]


def triplet_loss(encoder: nn.Module, batch: torch.Tensor, train: torch.Tensor, n_negatives: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Triplet loss with time-based negative sampling (Franceschi et al., 2019) for one batch.

    Parameters
    ----------
    encoder : nn.Module
        Maps (N, C, L) windows to (N, D) representations, for any L >= 1.
    batch : Tensor
        (B, C, T) series of the batch (anchors and positives come from them).
    train : Tensor
        (n, C, T) all training series (negatives come from them).
    n_negatives : int
        Negative windows per anchor.
    generator : torch.Generator
        Source of every random draw.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    b, _, t = batch.shape
    g = generator
    len_pn = int(torch.randint(1, t + 1, (1,), generator=g))
    len_anchor = int(torch.randint(len_pn, t + 1, (1,), generator=g))
    begin_anchor = torch.randint(0, t - len_anchor + 1, (b,), generator=g)
    begin_pos = begin_anchor + torch.randint(0, len_anchor - len_pn + 1, (b,), generator=g)
    neg_rows = torch.randint(0, train.shape[0], (n_negatives * b,), generator=g)
    begin_neg = torch.randint(0, t - len_pn + 1, (n_negatives * b,), generator=g)
    z_a = encoder(_windows(batch, begin_anchor, len_anchor))  # (B, D)
    # Positives and negatives share the length l_pn: one forward pass over the (B + K*B) windows (the encoder
    # has no batch-dependent layer, so this equals encoding them apart); negatives are gathered window by
    # window from the training series, never copying whole rows.
    pn = torch.cat([_windows(batch, begin_pos, len_pn), _rows_windows(train, neg_rows, begin_neg, len_pn)])
    z_pn = encoder(pn)  # (B + K*B, C', l_pn) -> (B + K*B, D)
    z_p, z_n = z_pn[:b], z_pn[b:].view(n_negatives, b, -1)  # (B, D), (K, B, D)
    pos = F.logsigmoid((z_a * z_p).sum(-1)).mean()
    neg = F.logsigmoid(-(z_a[None] * z_n).sum(-1)).mean()  # mean over negatives and batch
    return -(pos + neg)


# ---------------------------------------------------------------------------------------------- model
def _torch_threads(n: int | str) -> contextlib.AbstractContextManager[None]:
    """Run with ``n`` threads (``"auto"``: :mod:`hmspar.threads`; ``0``: unchanged), restored afterwards."""
    return threads.limited(threads.resolve(n, "baselines.tloss.num_threads", allow_zero=True))


@dataclasses.dataclass(frozen=True)
class TLossConfig:
    """Settings of :class:`TLossModel` (``baselines.tloss`` in ``params.yaml``).

    Parameters
    ----------
    inputs : list of str
        Must be ``["series"]``.
    use_mask : bool
        Feed the activity mask as extra input channels.
    channels, depth, reduced_size, out_channels, kernel_size : int
        Encoder sizes (paper: 40, 10, 160, 320, 3 on UEA; smaller defaults suit short series).
    steps : int
        Optimisation steps of the unsupervised phase.
    batch_size : int
        Series per step.
    lr : float
        Adam learning rate.
    n_negatives : int
        Negative windows per anchor.
    classifier : {"logistic", "svm"}
        Class-balanced logistic regression, or a class-balanced RBF SVM (the paper's classifier) with
        Platt-scaled probabilities from 5-fold out-of-fold decision values.
    C : float
        Inverse regularisation of the classifier.
    max_svm_rows : int
        The SVM is fitted on at most this many training rows (stratified sample; its cost is quadratic).
    eval_batch_size : int
        Series per batch when computing representations.
    num_threads : int or "auto"
        Threads during fit and predict (restored afterwards); ``auto``: :mod:`hmspar.threads`; 0 leaves
        torch's default.
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["series"])
    use_mask: bool = True
    channels: int = 32
    depth: int = 3
    reduced_size: int = 64
    out_channels: int = 64
    kernel_size: int = 3
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    n_negatives: int = 5
    classifier: Literal["logistic", "svm"] = "logistic"
    C: float = 1.0
    max_svm_rows: int = 5000
    eval_batch_size: int = 1024
    num_threads: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        if list(self.inputs) != ["series"]:
            raise ValueError(f"inputs: T-Loss reads the series only; expected ['series'], got {self.inputs!r}")
        for name in ("channels", "depth", "reduced_size", "out_channels", "kernel_size", "steps", "batch_size",
                     "n_negatives", "max_svm_rows", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        threads.check(self.num_threads, "num_threads", allow_zero=True)
        if not self.lr > 0:
            raise ValueError(f"lr: must be positive, got {self.lr!r}")
        if not self.C > 0:
            raise ValueError(f"C: must be positive, got {self.C!r}")
        if self.classifier not in ("logistic", "svm"):
            raise ValueError(f"classifier: expected 'logistic' or 'svm', got {self.classifier!r}")


class TLossModel(Model):
    """Unsupervised triplet-loss encoder (Franceschi et al., 2019) with a classifier on its features.

    Not a supervised network: ``fit`` first trains the encoder on the training series without labels
    (``cfg.steps`` Adam steps of :func:`triplet_loss`), then fits ``cfg.classifier`` on the frozen,
    standardised representations. No pretrained weights.

    Attributes
    ----------
    encoder_ : CausalCNNEncoder
        The trained encoder (CPU, eval mode).
    classifier_ : sklearn Pipeline
        Standardiser + logistic regression or SVM, fitted on encoded labels 0..K-1.
    loss_history_ : list of float
        Triplet loss of every step.
    """

    TAGS = {**Model.TAGS, "torch": True}

    Config = TLossConfig
    name = "tloss"

    def __init__(self, cfg: TLossConfig, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.encoder_: CausalCNNEncoder | None = None
        self.classifier_: Any = None
        self.loss_history_: list[float] = []

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"channels": 8, "depth": 2, "reduced_size": 8, "out_channels": 8, "steps": 15, "batch_size": 16,
                "n_negatives": 2, "num_threads": 1}

    def _inputs(self, X: dict[str, np.ndarray]) -> np.ndarray:
        """(n, C', T) float32 encoder input: the series, with the mask stacked on when configured."""
        X = self.select_inputs(X)
        series = np.asarray(X["series"], dtype=np.float32)
        if series.ndim != 3:
            raise HmsparError(f"TLossModel: series must be (n, C, T), got shape {series.shape}")
        if self.cfg.use_mask:
            series = np.concatenate([series, np.asarray(X["mask"], dtype=np.float32)], axis=1)
        return series

    def fit(self, X: dict[str, np.ndarray], y: np.ndarray,
            X_val: dict[str, np.ndarray] | None = None, y_val: np.ndarray | None = None) -> "TLossModel":
        """Train the encoder on ``X['series']`` without labels, then the classifier on its features.

        ``X_val``/``y_val`` are accepted for the common contract and ignored.
        """
        series = self._inputs(X)
        codes = self._fit_classes(y)
        if series.shape[0] != codes.size:
            raise HmsparError(f"TLossModel: X has {series.shape[0]} rows but y has {codes.size}")
        cfg = self.cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # initialisation only; restored on exit
            encoder = CausalCNNEncoder(series.shape[1], cfg.channels, cfg.depth, cfg.reduced_size,
                                       cfg.out_channels, cfg.kernel_size)
        with _torch_threads(cfg.num_threads):
            self.encoder_, self.loss_history_ = self._train_encoder(encoder, torch.from_numpy(series))
            feats = self._encode(series)
        self.classifier_ = self._fit_classifier(feats, codes)
        return self

    def _train_encoder(self, encoder: CausalCNNEncoder, train: torch.Tensor) -> tuple[CausalCNNEncoder, list[float]]:
        cfg = self.cfg
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(encoder.parameters(), lr=cfg.lr)
        n = train.shape[0]
        bs = min(cfg.batch_size, n)
        order, pos, history = torch.randperm(n, generator=gen), 0, []
        encoder.train()
        for _ in range(cfg.steps):
            if pos + bs > n:  # new epoch: reshuffle
                order, pos = torch.randperm(n, generator=gen), 0
            batch = train[order[pos: pos + bs]]  # (B, C', T)
            pos += bs
            loss = triplet_loss(encoder, batch, train, cfg.n_negatives, gen)
            if not torch.isfinite(loss):
                raise HmsparError(f"TLossModel: triplet loss became {loss.item()}; try a lower baselines.tloss.lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
        return encoder.eval(), history

    def _encode(self, series: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad(), _torch_threads(self.cfg.num_threads):
            for a in range(0, series.shape[0], self.cfg.eval_batch_size):
                out.append(self.encoder_(torch.from_numpy(series[a: a + self.cfg.eval_batch_size])).numpy())
        if not out:
            return np.zeros((0, self.cfg.out_channels), dtype=np.float32)
        return np.concatenate(out, axis=0).astype(np.float64)

    def _fit_classifier(self, feats: np.ndarray, codes: np.ndarray) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        cfg = self.cfg
        if cfg.classifier == "logistic":
            clf = LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=2000)
        else:
            from sklearn.calibration import CalibratedClassifierCV

            # Platt scaling fitted on (deterministic, unshuffled) 5-fold out-of-fold decision values.
            clf = CalibratedClassifierCV(SVC(C=cfg.C, kernel="rbf", gamma="scale", class_weight="balanced"),
                                         method="sigmoid", cv=5, ensemble=False)
            if codes.size > cfg.max_svm_rows:
                _, keep = stratified_holdout(codes, cfg.max_svm_rows / codes.size, self.seed)
                feats, codes = feats[keep], codes[keep]
        return make_pipeline(StandardScaler(), clf).fit(feats, codes)

    def transform(self, X: dict[str, np.ndarray]) -> np.ndarray:
        """(n, out_channels) representations of the series from the trained encoder."""
        if self.encoder_ is None:
            raise HmsparError("TLossModel: transform called before fit")
        return self._encode(self._inputs(X))

    def predict_proba(self, X: dict[str, np.ndarray]) -> np.ndarray:
        """(n, K) class probabilities of the classifier on the encoder's representations."""
        self._check_fitted()
        proba = np.zeros((self.n_rows(self.select_inputs(X)), self.classes_.size))
        got = self.classifier_.predict_proba(self.transform(X))
        proba[:, self.classifier_.classes_.astype(int)] = got
        return proba / proba.sum(axis=1, keepdims=True)

    def __getstate__(self) -> dict[str, Any]:
        # The encoder is stored as canonical bytes (see torch_base.module_to_bytes): a plain pickle of
        # its tensors names their storages by memory address, so model.pkl would differ between
        # identical fits.
        return pack_modules(self.__dict__, "encoder_")

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(unpack_modules(state, "encoder_"))

"""ATHWE as its source builds it (seed 003, the HM4SR lineage), under the recommender contract.

The lab's :mod:`~hmspar.rec.models.athwe` keeps ATHWE's name and broad ideas but changes what makes it itself
(a wavelet along the feature axis, feed-forward experts routed by the state, an InfoNCE loss). This module
follows the public code (``recbole_model/ATHWE.py``), read beside the seed document; ``../shared/rec_fidelity.md``
lists what it does. The forward pass, for a history of up to ``train.max_len`` items:

1. **Item tokens, one stream per modality** (``inputs``, by default ID, text, picture): a learned ID embedding,
   and linear projections of the frozen MiniLM text embedding and of the frozen picture features
   (``vision: descriptor``, the fixed style descriptor, or ``vision: weights``, a local ``.npy`` array; both
   standardised on the training items). A learned position embedding (most recent = 0) is added to each.
2. **Wavelet fusion along time** (``fusion: wavelet``): each stream's token sequence (``d`` channels) is
   decomposed by an orthogonal multi-level DWT along the *sequence* axis (``wavelet: db4``, ``levels: 4``);
   every target modality's coefficients, band by band, are the sum over source modalities of
   ``sigmoid(G[t, s, band] c_s) * c_s`` (a learned ``d x d`` gate per target, source and band); the inverse
   DWT gives a fused sequence per modality, and each stream adds ``(fused - x) * w_m`` with ``w`` learned,
   starting at ``residual_id`` (0.1) for the ID stream and ``residual_content`` (1.0) for the others.
3. **Time-aware mixture of scaling experts** over the concatenated streams (``M d`` channels): each expert is
   a learned vector that scales the channels element-wise; ``n_shared_experts`` always apply, and ``top_k``
   of ``n_routed_experts`` are chosen per position by a router that sees only the time: the embedding of
   ``round(time_span * (1 - exp(-gap / time_scale)))``, ``gap`` the days since the *previous* interaction
   (0 at a history's first item), through ``ReLU(Linear(.))`` and dropout. The output is the input scaled
   by the sum of the chosen experts (no residual, as in the source). A cosine diversity loss between the
   experts' outputs pushes them apart.
4. **Three SASRec encoders**: per modality a layer norm and dropout, then ``layers`` causal transformer
   blocks with that modality's own weights (``heads``, feed-forward ``ff_mult * d``), and a final layer norm.
   Only the last position's state is read, so the encoders run a batch in length groups, each on its own
   columns, and the last block computes the last position alone (:meth:`ATHWEPaperNet.streams`): the same
   states as the whole batch's, at a third of the cost on fashion's short prefixes.
5. **Scoring**: each modality's state at the last position against that modality's catalogue table (ID
   embeddings, projected text, projected picture features), the three scores summed with
   ``softmax(fusion_weights)``. An item with no training interaction is ranked by its text and picture.
   ``item_age`` adds the lab's learned score of a candidate's age at the last history interaction
   (:class:`~hmspar.rec.train.ItemAge`), off by default as for every model.

Losses, each with its weight (the source uses 1 for all but the diversity loss, 0.9):

* cross-entropy of the next item against the whole catalogue;
* ``idcl``: UniSRec's sequence-item contrast: the ID stream's state against the target items' ID embeddings
  of the batch (temperature ``idcl_temperature``), other rows with the same target item left out;
* ``attr``: binary cross-entropy of each history item's category from its concatenated modality embeddings;
* ``cluster``: cross-entropy of each history item's text (picture) cluster from its projected text (picture)
  embedding; clusters are k-medoids (``n_clusters``) of the ZCA-whitened features of the training items
  (:func:`kmedoids`), every catalogue item assigned to its nearest medoid;
* ``tcl``: time-aware contrast: in each history ``floor(mask_rate * length)`` positions of the text and
  picture streams are replaced by a learned placeholder of that position's time embedding, the streams are
  encoded again, and the last states of the masked and unmasked sequences are contrasted (temperature
  ``tcl_temperature``, same-target rows left out);
* ``diversity``: the mean pairwise cosine similarity of the routed experts' outputs.

Training follows RecBole's sequential protocol: **one example per transition, predicted at the last position**
(``train.windows: prefixes``, :class:`hmspar.rec.train.Prefixes`). A wavelet along time is two-sided: every
fused position mixes later positions in, so the every-position training of the lab's other models would let
a position see the item it predicts; on a prefix the only position that is trained sees the past alone.
Any other ``windows`` setting is refused. Sequences are left-padded to a fixed frame of ``max_len`` rounded
up to a multiple of ``2 ** levels`` (periodised DWT), so a user's scores never depend on the other histories
of its batch.

Where this differs from the source, and why:

* the source's experts are held in plain Python lists, so its optimiser never updates them: here they are
  parameters (``train_experts: false`` keeps them frozen at their random start, as there);
* the source's time-aware contrast masks ``floor(0.2) = 0`` items (its mask rate is not multiplied by the
  length), so it contrasts two dropout draws of the same sequence: here ``floor(mask_rate * length)``
  (``mask_count: source`` restores the zero);
* the source's contrasts give other rows with the same target a logit of 0 (each still adds 1 to the
  denominator): here they are left out;
* no hub weights: 384-d MiniLM text and the lab's picture features stand for 768-d pretrained ones;
  categories are the catalogue's single category as a one-hot target; the medoids are searched on at most
  ``cluster_sample`` training items (k-medoids is quadratic), ZCA whitening and clusters use training items
  only; times are in days (``time_scale`` 173.6 days is the source's 1.5e7 seconds);
* padding positions are zero tokens (the source adds position embeddings to them), the encoders are
  pre-LN blocks with a final layer norm and without attention-probability dropout (RecBole's are post-LN);
* the periodised DWT stands in for ``pytorch_wavelets``' zero-padded one (an orthogonal matrix: exact
  inverse, no new dependency).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures
from hmspar.rec.models.common import (
    DWT,
    LOWPASS,
    MultiStreamBlock,
    check_prefix_training,
    check_vision,
    cut_padding,
    fast_dropout,
    frozen_tables,
    last_target,
    in_length_groups,
    small_embedding,
    train_items,
)
from hmspar.rec.train import RecTrainConfig, TorchSeqRecommender, init_embedding_, item_age_module

#: The item modalities the source encodes.
MODALITIES = ("id", "text", "image")

#: Length groups the encoders run a batch in (:func:`~hmspar.rec.models.common.length_groups`): a row's state
#: does not depend on them (only the speed and the dropout draws do).
LENGTH_GROUPS = 4


@dataclasses.dataclass(frozen=True)
class Config:
    """ATHWE as published (``rec.recommenders.athwe_paper``); the defaults are the source's where it has one.

    Parameters
    ----------
    inputs : list of str
        Item streams, a subset of ``id, text, image``.
    d, heads, layers : int
        Width, attention heads and transformer blocks of each stream's encoder (source 64, 2, 2).
    ff_mult : int
        Feed-forward width in multiples of ``d`` (source 4).
    dropout : float
        Dropout of the tokens, the encoders and the router (source 0.5).
    fusion : {"wavelet", "none"}
        The wavelet fusion along time, or none (the streams go to the experts as they are).
    wavelet : {"haar", "db2", "db4"}
        Wavelet of the fusion (source ``db4``).
    levels : int
        DWT levels (source 4).
    residual_id, residual_content : float
        Starting values of the learned residual weights of the fused ID stream and of the text and picture
        streams (source 0.1 and 1.0).
    time_span : int
        Time-embedding buckets minus one (source 200).
    time_scale : float
        Days of the saturating time map ``time_span * (1 - exp(-gap / time_scale))`` (source 1.5e7 s).
    n_shared_experts, n_routed_experts, top_k : int
        Scaling experts: always on, routed, routed per position (source 1, 8, 6).
    train_experts : bool
        Train the experts (the source's are never updated; false reproduces that).
    diversity_weight : float
        Weight of the experts' cosine diversity loss (source 0.9).
    idcl_weight, idcl_temperature : float
        Sequence-item contrast (source 1, 0.1); needs the ``id`` stream (ignored without it).
    attr_weight : float
        Category loss (source 1).
    cluster_weight : float
        Cluster loss of the text and picture embeddings (source 1).
    n_clusters : int
        k-medoids clusters per content modality (source 100).
    cluster_sample : int
        Most training items the medoids are searched on.
    tcl_weight, tcl_temperature : float
        Time-aware contrast (source 1, 1.0).
    mask_rate : float
        Share of a history's positions replaced by the time placeholder in the time-aware contrast (0.2).
    mask_count : {"rate", "source"}
        ``rate``: ``floor(mask_rate * length)`` positions; ``source``: ``floor(mask_rate)`` (0: the source's).
    vision : {"descriptor", "weights"}
        Picture features: the fixed style descriptor or the local array ``vision_features``.
    vision_features : str or None
        Path of an ``(n_items + 1, D)`` ``.npy`` array (``vision: weights``).
    item_age : bool
        Add the learned score of each candidate's age (:class:`~hmspar.rec.train.ItemAge`).
    train : RecTrainConfig
        The loop's settings; ``windows`` must be ``prefixes`` and ``request_time`` false.
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: list(MODALITIES))
    d: int = 64
    heads: int = 2
    layers: int = 2
    ff_mult: int = 4
    dropout: float = 0.5
    fusion: Literal["wavelet", "none"] = "wavelet"
    wavelet: Literal["haar", "db2", "db4"] = "db4"
    levels: int = 4
    residual_id: float = 0.1
    residual_content: float = 1.0
    time_span: int = 200
    time_scale: float = 173.6
    n_shared_experts: int = 1
    n_routed_experts: int = 8
    top_k: int = 6
    train_experts: bool = True
    diversity_weight: float = 0.9
    idcl_weight: float = 1.0
    idcl_temperature: float = 0.1
    attr_weight: float = 1.0
    cluster_weight: float = 1.0
    n_clusters: int = 100
    cluster_sample: int = 4000
    tcl_weight: float = 1.0
    tcl_temperature: float = 1.0
    mask_rate: float = 0.2
    mask_count: Literal["rate", "source"] = "rate"
    vision: Literal["descriptor", "weights"] = "descriptor"
    vision_features: str | None = None
    item_age: bool = False
    train: RecTrainConfig = dataclasses.field(
        default_factory=lambda: RecTrainConfig(windows="prefixes", batch_size=256, lr=1e-3))

    def __post_init__(self) -> None:
        mods = list(self.inputs)
        if not mods or any(m not in MODALITIES for m in mods) or len(set(mods)) != len(mods):
            raise ValueError(f"inputs must be distinct names among {', '.join(MODALITIES)}, got {self.inputs!r}")
        for name in ("d", "heads", "layers", "ff_mult", "levels", "time_span", "n_routed_experts", "n_clusters",
                     "cluster_sample"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.d % self.heads:
            raise ValueError(f"d must be divisible by heads={self.heads}, got {self.d!r}")
        if self.fusion not in ("wavelet", "none"):
            raise ValueError(f"fusion must be 'wavelet' or 'none', got {self.fusion!r}")
        if self.wavelet not in LOWPASS:
            raise ValueError(f"wavelet must be one of {', '.join(LOWPASS)}, got {self.wavelet!r}")
        if not 1 <= self.top_k <= self.n_routed_experts:
            raise ValueError(f"top_k must be between 1 and n_routed_experts={self.n_routed_experts}, got {self.top_k!r}")
        if self.n_shared_experts < 0:
            raise ValueError(f"n_shared_experts must be 0 or more, got {self.n_shared_experts!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.mask_rate <= 1.0:
            raise ValueError(f"mask_rate must be in [0, 1], got {self.mask_rate!r}")
        if self.mask_count not in ("rate", "source"):
            raise ValueError(f"mask_count must be 'rate' or 'source', got {self.mask_count!r}")
        for name in ("time_scale", "idcl_temperature", "tcl_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("diversity_weight", "idcl_weight", "attr_weight", "cluster_weight", "tcl_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or positive, got {getattr(self, name)!r}")
        check_vision(self.vision, self.vision_features)
        check_prefix_training(self.train, "the wavelet along time lets every position see later ones")

    @property
    def frame(self) -> int:
        """Padded sequence length: ``train.max_len`` rounded up to a multiple of ``2 ** levels``."""
        step = 2 ** self.levels
        return -(-self.train.max_len // step) * step


# ----------------------------------------------------------------------------------------------------
# Clusters of the content features (the cluster loss's targets)
# ----------------------------------------------------------------------------------------------------
def zca_whiten(x: np.ndarray, fit_rows: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """ZCA-whitened rows of ``x`` (mean and covariance of ``fit_rows`` only; eigenvalues floored at ``eps``)."""
    x = np.asarray(x, dtype=np.float64)
    ref = x[fit_rows]
    mu = ref.mean(0)
    cov = (ref - mu).T @ (ref - mu) / max(len(ref), 1)
    vals, vecs = np.linalg.eigh(cov)
    w = (vecs / np.sqrt(np.maximum(vals, eps))) @ vecs.T
    return (x - mu) @ w


def kmedoids(x: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 100) -> np.ndarray:
    """Indices of ``k`` medoids of the rows of ``x``: k-medoids++ seeding (each next medoid drawn with
    probability proportional to the squared distance to the nearest chosen one), then the "alternate" method
    (assign every row to its nearest medoid, move each medoid to the member with the least summed distance
    to its cluster) until no medoid moves or ``max_iter`` rounds; Euclidean distances.

    Parameters
    ----------
    x : np.ndarray
        (n, D) points, ``n >= k``.
    k : int
    rng : np.random.Generator

    Returns
    -------
    np.ndarray
        (k,) int64 distinct row indices.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise HmsparError(f"kmedoids: need 1 <= k <= {n} points, got k={k}")
    sq = (x ** 2).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))   # (n, n)
    medoids = [int(rng.integers(n))]
    near = dist[medoids[0]].copy()
    for _ in range(1, k):
        p = near ** 2
        total = p.sum()
        pick = int(rng.choice(n, p=p / total)) if total > 0 else int(rng.choice(np.setdiff1d(np.arange(n), medoids)))
        medoids.append(pick)
        near = np.minimum(near, dist[pick])
    med = np.array(medoids, dtype=np.int64)
    for _ in range(max_iter):
        label = dist[:, med].argmin(1)
        new = med.copy()
        for j in range(k):
            members = np.flatnonzero(label == j)
            if members.size:
                new[j] = members[dist[np.ix_(members, members)].sum(1).argmin()]
        if np.array_equal(new, med):
            break
        med = new
    return med


def content_clusters(values: np.ndarray, fit_rows: np.ndarray, k: int, sample: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(n_items + 1,) int64 cluster of every item: k-medoids of the ZCA-whitened features of at most ``sample``
    training items ``fit_rows``, every row assigned to its nearest medoid (row 0, padding, included)."""
    white = zca_whiten(values, fit_rows)
    pool = np.sort(rng.choice(fit_rows, min(sample, fit_rows.size), replace=False))
    med = pool[kmedoids(white[pool], min(k, pool.size), rng)]
    centres = white[med]
    d2 = (white ** 2).sum(1)[:, None] + (centres ** 2).sum(1)[None, :] - 2 * white @ centres.T
    return d2.argmin(1).astype(np.int64)


# ----------------------------------------------------------------------------------------------------
# Network parts
# ----------------------------------------------------------------------------------------------------
def _normal_(linear: nn.Linear, std: float = 0.02) -> nn.Linear:
    """The source's initialisation of its linear layers: N(0, std) weights, zero bias."""
    nn.init.normal_(linear.weight, std=std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


class TimeWaveletFusion(nn.Module):
    """Gated cross-modal mixing of DWT coefficients along the sequence axis (see the module docstring, step 2).

    Parameters
    ----------
    n_modalities, d, frame : int
        Streams, channels and the (fixed) sequence length.
    wavelet : str
    levels : int
    residual_init : list of float
        Starting residual weight of each stream.
    """

    def __init__(self, n_modalities: int, d: int, frame: int, wavelet: str, levels: int,
                 residual_init: list[float]) -> None:
        super().__init__()
        self.dwt = DWT(frame, wavelet, levels)
        nb = self.dwt.n_bands
        bands = self.dwt.bands.numpy()
        self.slices = [slice(int(np.flatnonzero(bands == b)[0]), int(np.flatnonzero(bands == b)[-1]) + 1)
                       for b in range(nb)]                                   # bands are contiguous rows
        self.gates = nn.Parameter(torch.randn(n_modalities, n_modalities, nb, d, d) * 0.02)  # (target, source, band, in, out)
        self.weight = nn.Parameter(torch.tensor(residual_init, dtype=torch.float32))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, M, T, d) streams -> (B, M, T, d) residuals ``(fused - x) * weight``.

        ``valid`` (B, T), when given, says where ``x`` may be nonzero (it must be exactly zero elsewhere, as the
        encoder's padding is). A coefficient whose filter touches no valid position is then exactly zero in every
        stream, and so is its gated mix (``g * 0``): the gates are computed on the other coefficients only, which
        gives the dense computation's values (to float rounding) at a fraction of its cost on short histories."""
        W = self.dwt.W                                                        # (T, T) orthogonal, c = W x
        c = torch.matmul(W, x)                                               # (B, M, T, d) coefficients
        if valid is None:
            parts = [self._mix(c[:, :, rows], b) for b, rows in enumerate(self.slices)]
        else:
            touched = (W != 0).to(x.dtype) @ valid.to(x.dtype).T > 0         # (T, B): coefficient q of row b
            parts = [self._mix_sparse(c[:, :, rows], b, touched[rows].T) for b, rows in enumerate(self.slices)]
        fused = torch.matmul(W.T, torch.cat(parts, 2))                       # inverse DWT: x = W^T c
        return (fused - x) * self.weight[None, :, None, None]

    def _mix(self, cb: torch.Tensor, band: int) -> torch.Tensor:
        """(B, S, n, d) coefficients of one band -> (B, M, n, d): each target's gated sum over the sources."""
        g = torch.sigmoid(torch.einsum("bsnd,tsde->btsne", cb, self.gates[:, :, band]))  # (B, M, S, n, d)
        return (g * cb[:, None]).sum(2)

    def _mix_sparse(self, cb: torch.Tensor, band: int, touched: torch.Tensor) -> torch.Tensor:
        """:meth:`_mix` on the (row, coefficient) pairs of ``touched`` (B, n) only; zero elsewhere."""
        rows, coef = touched.nonzero(as_tuple=True)
        mixed = self._mix(cb[rows, :, coef].unsqueeze(2), band)[:, :, 0]     # (K, S, 1, d) -> (K, M, d)
        B, _, n, d = cb.shape
        out = cb.new_zeros(B, n, self.gates.shape[0], d)
        out = out.index_put((rows, coef), mixed)                             # (B, n, M, d)
        return out.transpose(1, 2)


class ScalingMoE(nn.Module):
    """Element-wise scaling experts routed by the time alone (see the module docstring, step 3).

    Parameters
    ----------
    width : int
        Channels (``M * d``).
    n_shared, n_routed, top_k : int
    trainable : bool
        False keeps the experts fixed at their random start (the source's defect).
    """

    def __init__(self, width: int, n_shared: int, n_routed: int, top_k: int, trainable: bool) -> None:
        super().__init__()
        shared = torch.randn(n_shared, width) * 0.1
        routed = torch.randn(n_routed, width) * 0.1
        if trainable:
            self.shared, self.routed = nn.Parameter(shared), nn.Parameter(routed)
        else:
            self.register_buffer("shared", shared)
            self.register_buffer("routed", routed)
        self.router = _normal_(nn.Linear(width, n_routed))
        self.top_k = top_k
        self.diversity = torch.zeros(())

    def forward(self, x: torch.Tensor, routing: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, T, C) streams, (B, T, C) routing features, (B, T) valid -> (B, T, C); sets ``diversity``."""
        probs = torch.softmax(self.router(routing), -1)                     # (B, T, E)
        top_p, top_i = probs.topk(self.top_k, -1)                            # (B, T, k)
        top_p = top_p / top_p.sum(-1, keepdim=True).clamp(min=1e-6)
        weights = torch.zeros_like(probs).scatter(-1, top_i, top_p)          # (B, T, E), zero off the top k
        scale = self.shared.sum(0) + weights @ self.routed                   # (B, T, C)
        # cosine similarity of the routed experts' outputs x * e over the valid tokens, from the channel
        # energies q: <x e_a, x e_b> = sum_c q_c e_ac e_bc (no (E, N, C) tensor needed)
        q = (x.pow(2) * valid[..., None]).sum((0, 1))                        # (C,)
        g = (self.routed * q) @ self.routed.T                                # (E, E)
        norm = g.diagonal().clamp(min=1e-12).sqrt()
        cos = g / (norm[:, None] * norm[None, :])
        E = cos.shape[0]
        self.diversity = (cos.sum() - cos.diagonal().sum()) / max(E * (E - 1), 1)
        return x * scale


def seq_contrast(a: torch.Tensor, b: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of rows of ``a`` against the rows of ``b`` (row i the positive), other rows with the same target
    item as row i left out of its negatives; cosine similarities over ``temperature``."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature   # (B, B)
    same = (target[:, None] == target[None, :]) & ~torch.eye(len(target), dtype=torch.bool, device=a.device)
    logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(target), device=a.device))


class ATHWEPaperNet(nn.Module):
    """The network (see the module docstring)."""

    def __init__(self, cfg: Config, n_items: int, tables: dict[str, np.ndarray], category: np.ndarray,
                 clusters: dict[str, np.ndarray], age: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.mods = tuple(cfg.inputs)
        M, d = len(self.mods), cfg.d
        self.n_items, self.frame = n_items, cfg.frame
        self.content = tuple(m for m in self.mods if m != "id")
        if "id" in self.mods:
            self.id_emb = init_embedding_(nn.Embedding(n_items + 1, d, padding_idx=0))
        self.proj = nn.ModuleDict()
        for m in self.content:
            self.register_buffer(f"raw_{m}", torch.from_numpy(tables[m]))
            self.proj[m] = nn.Linear(tables[m].shape[1], d)
        self.pos = small_embedding(self.frame, d)
        self.time_emb = small_embedding(cfg.time_span + 1, d)
        self.fusion = (TimeWaveletFusion(M, d, self.frame, cfg.wavelet, cfg.levels,
                                         [cfg.residual_id if m == "id" else cfg.residual_content for m in self.mods])
                       if cfg.fusion == "wavelet" else None)
        self.route = _normal_(nn.Linear(d, M * d))
        self.moe = ScalingMoE(M * d, cfg.n_shared_experts, cfg.n_routed_experts, cfg.top_k, cfg.train_experts)
        self.in_ln = nn.ModuleList(nn.LayerNorm(d) for _ in self.mods)
        self.out_ln = nn.ModuleList(nn.LayerNorm(d) for _ in self.mods)
        self.blocks = nn.ModuleList(MultiStreamBlock(M, d, cfg.heads, cfg.dropout, cfg.ff_mult, rand_dropout=True)
                                    for _ in range(cfg.layers))
        self.fusion_weights = nn.Parameter(torch.ones(M))
        self.register_buffer("category", torch.from_numpy(np.asarray(category, dtype=np.int64)))
        self.attr_head = _normal_(nn.Linear(M * d, int(category.max()) + 1))
        self.cluster_head = nn.ModuleDict()
        for m in self.content:
            self.register_buffer(f"cluster_{m}", torch.from_numpy(clusters[m]))
            self.cluster_head[m] = _normal_(nn.Linear(d, int(clusters[m].max()) + 1))
        self.placeholder = nn.ModuleDict({m: _normal_(nn.Linear(d, d)) for m in self.content})
        self.age = age

    # -- item tables --------------------------------------------------------------------------------
    def item_embeddings(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """modality -> (..., d) embeddings of items ``idx`` (F.embedding: a deterministic backward on the CPU)."""
        out = {}
        if "id" in self.mods:
            out["id"] = self.id_emb(idx)
        for m in self.content:
            out[m] = self.proj[m](F.embedding(idx, getattr(self, f"raw_{m}")))
        return out

    def catalogue(self) -> dict[str, torch.Tensor]:
        """modality -> (n_items + 1, d) table of every item (row 0 padding)."""
        device = self.pos.weight.device
        return self.item_embeddings(torch.arange(self.n_items + 1, device=device))

    # -- encoder ------------------------------------------------------------------------------------
    def time_ids(self, times: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, T) bucket of the gap (days) to the previous interaction; 0 at first items and padding."""
        gap = torch.zeros_like(times)
        both = valid[:, 1:] & valid[:, :-1]
        gap[:, 1:] = torch.where(both, (times[:, 1:] - times[:, :-1]).clamp(min=0), gap[:, 1:])
        return torch.round(self.cfg.time_span * (1 - torch.exp(-gap / self.cfg.time_scale))).long()

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        """The model's dropout (``dropout``), drawn by :func:`~hmspar.rec.models.common.fast_dropout`."""
        return fast_dropout(x, self.cfg.dropout, self.training)

    def streams(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, M, T, d) expert outputs -> (B, M, d) encoder states at the last position (before the final layer
        norm): layer norm, dropout and the causal blocks, the last block at the last position only (no other
        position's output is read). Rows run in length groups, each on its own columns (the leading columns
        that are padding in all of its rows cut): masked keys, unread queries and right-aligned positions make
        a row's state independent of its group and of its padding's width."""
        return in_length_groups(valid, LENGTH_GROUPS,
                                lambda rows, start: self._streams(x[rows][:, :, start:], valid[rows][:, start:]))

    def _streams(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, M, T, d), (B, T) -> (B, M, d): the encoders of one group (see :meth:`streams`)."""
        B, M, T, d = x.shape
        h = torch.stack([ln(x[:, i]) for i, ln in enumerate(self.in_ln)], 1)
        h = self.drop(h).reshape(B, M * T, d)
        for blk in self.blocks[:-1]:
            h = blk(h, valid)
        return self.blocks[-1](h, valid, last=True)

    def encode(self, items: torch.Tensor, times: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode left-padded histories (B, L <= frame): ``states`` (B, M, d, the encoders' last position),
        ``experts`` (the expert outputs, B, M, T, d), ``time`` (B, T, d) time embeddings and ``valid`` (B, T); the
        wavelet runs on the whole frame, the rest on its last T columns (from the batch's first non-padding one)."""
        pad = self.frame - items.shape[1]
        if pad < 0:
            raise HmsparError(f"athwe_paper: histories of {items.shape[1]} columns exceed the frame of {self.frame}")
        items, times = F.pad(items, (pad, 0)), F.pad(times, (pad, 0))
        valid = items > 0
        B, T = items.shape
        emb = self.item_embeddings(items)
        pos = self.pos(torch.arange(T - 1, -1, -1, device=items.device))     # (T, d), most recent = 0
        x = torch.stack([emb[m] for m in self.mods], 1) + pos                 # (B, M, T, d)
        x = x * valid[:, None, :, None]
        if self.fusion is not None:
            x = (x + self.fusion(x, valid)) * valid[:, None, :, None]
        temb = self.time_emb(self.time_ids(times, valid))                    # (B, T, d)
        routing = self.drop(F.relu(self.route(temb)))                        # (B, T, M d)
        M, d = len(self.mods), x.shape[-1]
        z = self.moe(x.permute(0, 2, 1, 3).reshape(B, T, M * d), routing, valid)
        experts = z.view(B, T, M, d).permute(0, 2, 1, 3)                     # (B, M, T, d)
        # the encoders need no fixed frame: leading columns that are padding in every row are cut (masked keys,
        # unread queries and right-aligned positions make the states independent of the padding's width)
        start = cut_padding(valid)
        experts, temb, valid = experts[:, :, start:], temb[:, start:], valid[:, start:]
        return {"states": self.streams(experts, valid), "experts": experts, "time": temb, "valid": valid}

    def last_states(self, states: torch.Tensor) -> torch.Tensor:
        """(B, M, d) encoder states at the last position -> (B, M, d) after each stream's final layer norm."""
        return torch.stack([ln(states[:, i]) for i, ln in enumerate(self.out_ln)], 1)

    def scores(self, last: torch.Tensor, table: dict[str, torch.Tensor], ref_times: torch.Tensor) -> torch.Tensor:
        """(B, M, d) last states -> (B, n_items + 1): softmax(fusion_weights)-weighted per-modality scores."""
        w = torch.softmax(self.fusion_weights, 0)
        s = sum(w[i] * (last[:, i] @ table[m].T) for i, m in enumerate(self.mods))
        if self.age is not None:
            s = s + self.age(ref_times)
        return s

    # -- the recommender contract -------------------------------------------------------------------
    def score(self, items, times, target_times) -> torch.Tensor:
        """(B, n_items + 1) scores of the next item (``target_times`` is never read)."""
        enc = self.encode(items, times)
        return self.scores(self.last_states(enc["states"]), self.catalogue(), times[:, -1])

    def loss(self, items, times, next_items, next_times, generator) -> torch.Tensor:
        """The sum of the weighted losses (module docstring) for prefix examples (only ``next_items[:, -1]``
        is a target; ``next_times`` is never read)."""
        target = last_target(next_items, "athwe_paper")
        cfg = self.cfg
        enc = self.encode(items, times)
        table = self.catalogue()
        last = self.last_states(enc["states"])                              # (B, M, d)
        logits = self.scores(last, table, times[:, -1])
        logits[:, 0] = -1e9
        loss = F.cross_entropy(logits, target)
        if cfg.idcl_weight > 0 and "id" in self.mods and len(target) > 1:
            i = self.mods.index("id")
            loss = loss + cfg.idcl_weight * seq_contrast(last[:, i], F.embedding(target, table["id"]), target,
                                                         cfg.idcl_temperature)
        hist = items[items > 0]                                              # the batch's history items
        if hist.numel() and (cfg.attr_weight > 0 or cfg.cluster_weight > 0):
            emb = {m: F.embedding(hist, table[m]) for m in self.mods}        # (n, d) each
            if cfg.attr_weight > 0:
                onehot = F.one_hot(self.category[hist], self.attr_head.out_features).float()
                pred = self.attr_head(torch.cat([emb[m] for m in self.mods], -1))
                loss = loss + cfg.attr_weight * F.binary_cross_entropy_with_logits(pred, onehot)
            if cfg.cluster_weight > 0 and self.content:
                loss = loss + cfg.cluster_weight * sum(
                    F.cross_entropy(self.cluster_head[m](emb[m]), getattr(self, f"cluster_{m}")[hist])
                    for m in self.content)
        if cfg.tcl_weight > 0 and self.content and len(target) > 1:
            loss = loss + cfg.tcl_weight * self.time_contrast(enc, last, target, generator)
        if cfg.diversity_weight > 0:
            loss = loss + cfg.diversity_weight * self.moe.diversity
        return loss

    def time_mask(self, valid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, T) bool: the positions replaced by the time placeholder, ``floor(mask_rate * length)`` per row
        (``mask_count: source``: ``floor(mask_rate)``), drawn uniformly among the valid ones by ``generator``."""
        n = valid.sum(1)
        count = (torch.floor(self.cfg.mask_rate * n.float()) if self.cfg.mask_count == "rate"
                 else torch.full_like(n, math.floor(self.cfg.mask_rate), dtype=torch.float32)).long()
        keys = torch.rand(valid.shape, generator=generator, device=valid.device).masked_fill(~valid, 2.0)
        rank = keys.argsort(1).argsort(1)
        return rank < count[:, None]

    def time_contrast(self, enc: dict[str, torch.Tensor], last: torch.Tensor, target: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        """Mean over the text and picture streams of the contrast between their last states and those of the
        same histories with masked positions replaced by ``placeholder(time embedding)``."""
        masked = self.time_mask(enc["valid"], generator)[:, :, None]         # (B, T, 1)
        aug = []
        for i, m in enumerate(self.mods):
            x = enc["experts"][:, i]
            if m != "id":
                x = torch.where(masked, self.placeholder[m](enc["time"]), x)
            aug.append(x)
        states = self.last_states(self.streams(torch.stack(aug, 1), enc["valid"]))
        return sum(seq_contrast(last[:, i], states[:, i], target, self.cfg.tcl_temperature)
                   for i, m in enumerate(self.mods) if m != "id") / len(self.content)


class ATHWEPaper(TorchSeqRecommender):
    """ATHWE as published, under the recommender contract (see the module docstring)."""

    Config = Config
    name = "athwe_paper"

    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        cfg = self.cfg
        fit_rows = np.flatnonzero(train_items(train, items.n_items))
        if fit_rows.size == 0:
            raise HmsparError("athwe_paper: the training histories hold no item")
        tables = frozen_tables(items, fit_rows, cfg.inputs, cfg.vision, cfg.vision_features)
        rng = np.random.default_rng(self.seed)
        content = [m for m in ("text", "image") if m in tables]            # a fixed order of the seeded draws
        clusters = ({m: content_clusters(tables[m], fit_rows, cfg.n_clusters, cfg.cluster_sample, rng)
                     for m in content} if cfg.cluster_weight > 0 else
                    {m: np.zeros(items.n_items + 1, dtype=np.int64) for m in content})
        return ATHWEPaperNet(cfg, items.n_items, tables, np.asarray(items.category), clusters,
                             item_age_module(cfg.item_age, train, items))

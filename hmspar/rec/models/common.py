"""Shared parts of the torch recommenders: training settings, the fit loop with early stopping on
validation NDCG@10, item modality encoders, gap buckets and transformer blocks driven by attention masks.

Torch is imported at module level here: this module is only imported by the torch recommenders.
Randomness comes from the run seed only: batch order and negative samples from seeded
``torch.Generator`` objects, parameter initialisation and dropout inside ``torch.random.fork_rng``
seeded from the same seed, so the caller's global random state is untouched.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import math
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures, Recommender


@dataclasses.dataclass(frozen=True)
class RecTrainConfig:
    """Optimisation settings of a torch recommender (its nested ``train`` params section).

    Parameters
    ----------
    epochs : int
        Maximum passes over the training users.
    batch_size : int
        Users per training step (sequences are grouped by length, so little padding is computed).
    eval_batch_size : int
        Users per scoring batch.
    lr, weight_decay : float
        AdamW learning rate and decoupled weight decay.
    grad_clip : float
        Maximum global gradient norm; 0 disables clipping.
    patience : int
        Epochs without a better validation NDCG@10 before training stops.
    max_len : int
        Most recent interactions a model reads (longer histories are cut on the left).
    val_max_users : int
        Validation users scored per epoch for early stopping (a fixed, seeded subset); 0 = all.
    device : {"auto", "cpu", "cuda"}
        ``auto`` picks CUDA when available; the device is never hard-coded in a model.
    num_threads : int
        ``torch.set_num_threads`` during fit (0 leaves torch's default).
    """

    epochs: int = 20
    batch_size: int = 128
    eval_batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    patience: int = 3
    max_len: int = 50
    val_max_users: int = 3000
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "max_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience!r}")
        if self.val_max_users < 0:
            raise ValueError(f"val_max_users must be 0 (all) or positive, got {self.val_max_users!r}")


def validation_ndcg(score_fn, val: Histories, batch_size: int, k: int = 10) -> float:
    """Mean validation NDCG@k from the track's evaluation module: full ranking against the catalogue
    with the protocol's seen-item masking (``val.exclude_seen``), exactly as the evaluator ranks."""
    from hmspar.rec.evaluate import ndcg, rank_batched

    return float(ndcg(rank_batched(score_fn, val, batch_size=batch_size)["rank"], k).mean())


# ----------------------------------------------------------------------------------------------------
# Item modality tables
# ----------------------------------------------------------------------------------------------------
def style_descriptor(images: np.ndarray) -> np.ndarray:
    """Fixed (not learned) style features of product pictures: Gram matrices and means of colour and
    edge maps at two scales plus a 4x4 colour thumbnail.

    Parameters
    ----------
    images : np.ndarray
        (n, 3, S, S) uint8 pictures (S divisible by 4).

    Returns
    -------
    np.ndarray
        (n, 88) float32: per scale (S and S/2) the 5 map means and the 15 upper-triangle entries of
        the 5x5 Gram matrix of (R, G, B, |dx|, |dy|) maps, then 48 thumbnail values.
    """
    x = np.asarray(images, dtype=np.float32) / 255.0
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 4 or x.shape[3] % 4:
        raise HmsparError(f"item pictures must be (n, 3, S, S) with S divisible by 4, got {x.shape}")
    feats = []
    iu = np.triu_indices(5)
    for scale in (1, 2):
        if scale > 1:
            n, c, h, w = x.shape
            x = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
        gray = x.mean(1)
        dx = np.abs(np.diff(gray, axis=2, append=gray[:, :, -1:]))
        dy = np.abs(np.diff(gray, axis=1, append=gray[:, -1:, :]))
        maps = np.concatenate([x, dx[:, None], dy[:, None]], axis=1).reshape(x.shape[0], 5, -1)
        gram = np.einsum("nip,njp->nij", maps, maps) / maps.shape[2]
        feats += [maps.mean(2), gram[:, iu[0], iu[1]]]
    n, c, h, w = x.shape
    thumb = x.reshape(n, c, 4, h // 4, 4, w // 4).mean(axis=(3, 5)).reshape(n, -1)
    feats.append(thumb)
    return np.concatenate(feats, axis=1).astype(np.float32)


def _standardise(values: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Standardise columns with mean/std of ``fit_rows`` only; row 0 (padding) set to zero."""
    values = np.asarray(values, dtype=np.float32)
    ref = values[fit_rows]
    mu = ref.mean(0)
    sd = ref.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    out = (values - mu) / sd
    out[0] = 0.0
    return out.astype(np.float32)


def train_items(train: Histories, n_items: int) -> np.ndarray:
    """(n_items + 1,) bool: items that occur in the training histories (scalers are fitted on these)."""
    seen = np.zeros(n_items + 1, dtype=bool)
    seen[np.asarray(train.items).ravel()] = True
    seen[0] = False
    return seen


class ItemEmbedder(nn.Module):
    """Per-modality item embeddings of dimension ``d`` from fixed item tables held as buffers.

    Parameters
    ----------
    items : ItemFeatures
        The catalogue.
    modalities : sequence of str
        Subset of ``id, image, text, price, category``; ``image`` uses :func:`style_descriptor`.
    d : int
        Embedding size.
    fit_rows : np.ndarray
        Indices of the items whose statistics standardise the numeric tables (training items).
    """

    def __init__(self, items: ItemFeatures, modalities: tuple[str, ...], d: int, fit_rows: np.ndarray) -> None:
        super().__init__()
        n = items.n_items
        self.n_items = n
        self.modalities = tuple(modalities)
        if not self.modalities:
            raise HmsparError("a recommender needs at least one item modality in `inputs`")
        if "id" in self.modalities:
            self.id_emb = nn.Embedding(n + 1, d, padding_idx=0)
            nn.init.normal_(self.id_emb.weight, std=d ** -0.5)
            with torch.no_grad():
                self.id_emb.weight[0].zero_()
        if "image" in self.modalities:
            style = _standardise(style_descriptor(items.image), fit_rows)
            self.register_buffer("style", torch.from_numpy(style))
            self.image_proj = nn.Sequential(nn.Linear(style.shape[1], d), nn.GELU(), nn.Linear(d, d))
        if "text" in self.modalities:
            text = np.asarray(items.text, dtype=np.float32).copy()
            text[0] = 0.0
            self.register_buffer("text", torch.from_numpy(text))
            self.text_proj = nn.Sequential(nn.Linear(text.shape[1], d), nn.GELU(), nn.Linear(d, d))
        if "price" in self.modalities:
            price = _standardise(np.asarray(items.price, dtype=np.float32)[:, None], fit_rows)
            self.register_buffer("price", torch.from_numpy(price))
            self.price_proj = nn.Sequential(nn.Linear(1, d), nn.GELU(), nn.Linear(d, d))
        if "category" in self.modalities:
            cats = np.asarray(items.category, dtype=np.int64)
            self.register_buffer("category", torch.from_numpy(cats))
            self.cat_emb = nn.Embedding(int(cats.max()) + 1, d, padding_idx=0)
            nn.init.normal_(self.cat_emb.weight, std=d ** -0.5)

    def forward(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Embeddings of items ``idx`` per modality.

        Parameters
        ----------
        idx : Tensor
            (...) int64 item indices.

        Returns
        -------
        dict of str to Tensor
            modality -> (..., d); rows of the padding item are zero.
        """
        out: dict[str, torch.Tensor] = {}
        pad = (idx > 0).unsqueeze(-1).float()                     # (..., 1)
        if "id" in self.modalities:
            out["id"] = self.id_emb(idx)                           # (..., d)
        if "image" in self.modalities:
            out["image"] = self.image_proj(self.style[idx]) * pad  # (..., F) -> (..., d)
        if "text" in self.modalities:
            out["text"] = self.text_proj(self.text[idx]) * pad     # (..., 384) -> (..., d)
        if "price" in self.modalities:
            out["price"] = self.price_proj(self.price[idx]) * pad  # (..., 1) -> (..., d)
        if "category" in self.modalities:
            out["category"] = self.cat_emb(self.category[idx])     # (..., d)
        return out

    def catalogue(self) -> dict[str, torch.Tensor]:
        """Embeddings of every item (row 0 = padding) per modality, each (n_items + 1, d)."""
        device = next(self.parameters()).device
        return self(torch.arange(self.n_items + 1, device=device))


# ----------------------------------------------------------------------------------------------------
# Time gaps
# ----------------------------------------------------------------------------------------------------
def gaps(times: torch.Tensor, valid: torch.Tensor, next_times: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaps (days) before and after each position.

    Parameters
    ----------
    times : Tensor
        (B, L) interaction times in days (left-padded).
    valid : Tensor
        (B, L) bool, True where an item is present.
    next_times : Tensor or None
        (B, L) time of the interaction following each position (NaN where unknown), or None.

    Returns
    -------
    (Tensor, Tensor)
        ``prev`` (B, L): time since the previous interaction (NaN at the first one and on padding);
        ``next`` (B, L): time until the next interaction (NaN where unknown).
    """
    prev = torch.full_like(times, float("nan"))
    both = valid[:, 1:] & valid[:, :-1]
    prev[:, 1:] = torch.where(both, times[:, 1:] - times[:, :-1], prev[:, 1:])
    if next_times is None:
        nxt = torch.full_like(times, float("nan"))
    else:
        nxt = torch.where(valid, next_times - times, torch.full_like(times, float("nan")))
    return prev.clamp(min=0), nxt.clamp(min=0)


def gap_bucket(gap: torch.Tensor, edges: tuple[float, ...]) -> torch.Tensor:
    """Bucket index of gaps: 0 for unknown (NaN), 1 + number of ``edges`` (days) below the gap otherwise.

    >>> gap_bucket(torch.tensor([float('nan'), 0.0, 2.0, 100.0]), (1.0, 7.0)).tolist()
    [0, 1, 2, 3]
    """
    e = torch.tensor(edges, dtype=gap.dtype, device=gap.device)
    b = torch.bucketize(torch.nan_to_num(gap, nan=0.0), e, right=True) + 1
    return torch.where(torch.isnan(gap), torch.zeros_like(b), b)


# ----------------------------------------------------------------------------------------------------
# Transformer blocks
# ----------------------------------------------------------------------------------------------------
def small_embedding(n: int, d: int, std: float = 0.02) -> nn.Embedding:
    """An ``nn.Embedding`` initialised N(0, std): positions and gap buckets are added to item tokens,
    and torch's default N(0, 1) would drown the item embeddings at the start of training."""
    emb = nn.Embedding(n, d)
    nn.init.normal_(emb.weight, std=std)
    return emb


def causal_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, L, L) bool attention mask (True = may attend): earlier-or-same valid positions; a padded
    query attends to itself only, so no row is empty.

    Parameters
    ----------
    valid : Tensor
        (B, L) bool.
    """
    L = valid.shape[1]
    tri = torch.ones(L, L, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(L, dtype=torch.bool, device=valid.device)
    return (tri & valid[:, None, :]) | eye


class MultiStreamBlock(nn.Module):
    """Pre-LN transformer block over ``n_streams`` concatenated token segments of equal length, each
    segment with its own weights (layer norms, projections, feed-forward) and one attention call.

    With ``allowed`` given, tokens attend across segments as the (B, T, T) mask allows; without it each
    segment attends causally within itself only (computed per segment, no (T, T) mask materialised),
    or with ``token=True`` the last segment attends within its position (MTSTRec's shared token).
    Per-segment weights are stacked tensors applied with one batched matmul for all segments (faster
    on CPU than a loop of ``nn.Linear``). Dropout applies to the attention branch's output only.

    Parameters
    ----------
    n_streams : int
        Number of segments (modalities, plus the shared token segment where used).
    d, heads : int
        Width and attention heads (``d % heads == 0``).
    dropout : float
        Dropout on the attention branch before the residual sum.
    """

    def __init__(self, n_streams: int, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise HmsparError(f"embedding size {d} is not divisible by heads={heads}")
        self.n, self.d, self.h = n_streams, d, heads

        def weight(d_in: int, d_out: int) -> nn.Parameter:
            w = torch.empty(n_streams, d_in, d_out)
            bound = 1.0 / math.sqrt(d_in)
            return nn.Parameter(w.uniform_(-bound, bound))

        self.ln1_w, self.ln1_b = nn.Parameter(torch.ones(n_streams, 1, d)), nn.Parameter(torch.zeros(n_streams, 1, d))
        self.ln2_w, self.ln2_b = nn.Parameter(torch.ones(n_streams, 1, d)), nn.Parameter(torch.zeros(n_streams, 1, d))
        self.w_qkv, self.b_qkv = weight(d, 3 * d), nn.Parameter(torch.zeros(n_streams, 1, 3 * d))
        self.w_out, self.b_out = weight(d, d), nn.Parameter(torch.zeros(n_streams, 1, d))
        self.w_ff1, self.b_ff1 = weight(d, 2 * d), nn.Parameter(torch.zeros(n_streams, 1, 2 * d))
        self.w_ff2, self.b_ff2 = weight(2 * d, d), nn.Parameter(torch.zeros(n_streams, 1, d))
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]) * w + b

    def forward(self, x: torch.Tensor, valid: torch.Tensor, allowed: torch.Tensor | None = None,
                token: bool = False) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : Tensor
            (B, n_streams * L, d) tokens, segment ``s`` at columns ``s*L .. (s+1)*L - 1``.
        valid : Tensor
            (B, L) bool item presence (shared by all segments).
        allowed : Tensor or None
            (B, T, T) bool mask, T = n_streams * L; None = the structure chosen by ``token``.
        token : bool
            Without ``allowed``: the last segment is a per-position shared token that attends to the
            tokens of its own position in every segment (itself included), computed as a small
            attention per position; the other segments attend causally within themselves. Equal to
            passing MTSTRec's mask as ``allowed`` (tested), at a fraction of the cost.

        Returns
        -------
        Tensor
            (B, n_streams * L, d).
        """
        B, T, d = x.shape
        n, L, h = self.n, T // self.n, self.h
        dh = d // h
        xs = x.view(B, n, L, d).transpose(0, 1).reshape(n, B * L, d)        # (n, B*L, d)
        qkv = torch.baddbmm(self.b_qkv, self._ln(xs, self.ln1_w, self.ln1_b), self.w_qkv)  # (n, B*L, 3d)
        q, k, v = qkv.view(n, B, L, 3, h, dh).permute(3, 1, 0, 4, 2, 5)     # (B, n, h, L, dh) each
        if allowed is not None:
            qf, kf, vf = (t.transpose(1, 2).reshape(B, h, T, dh) for t in (q, k, v))  # (B, h, T, dh)
            a = F.scaled_dot_product_attention(qf, kf, vf, attn_mask=allowed[:, None])
            a = a.view(B, h, n, L, dh).transpose(1, 2)                      # (B, n, h, L, dh)
        else:
            # 4-D inputs throughout: torch's CPU attention is several times slower on 5-D ones
            m = n - 1 if token else n
            mask = causal_mask(valid)[:, None]                              # (B, 1, L, L)
            qs, ks, vs = (t[:, :m].reshape(B, m * h, L, dh) for t in (q, k, v))  # (B, m*h, L, dh)
            a = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask).view(B, m, h, L, dh)
            if token:
                qt = q[:, m].reshape(B * h, L, 1, dh)                       # (B*h, L, 1, dh)
                kt, vt = (t.permute(0, 2, 3, 1, 4).reshape(B * h, L, n, dh) for t in (k, v))
                at = F.scaled_dot_product_attention(qt, kt, vt)             # (B*h, L, 1, dh)
                a = torch.cat([a, at.view(B, 1, h, L, dh)], 1)              # (B, n, h, L, dh)
        a = a.permute(1, 0, 3, 2, 4).reshape(n, B * L, d)                   # (n, B*L, d)
        y = xs + self.drop(torch.baddbmm(self.b_out, a, self.w_out))        # (n, B*L, d)
        f = F.gelu(torch.baddbmm(self.b_ff1, self._ln(y, self.ln2_w, self.ln2_b), self.w_ff1))  # (n, B*L, 2d)
        y = y + torch.baddbmm(self.b_ff2, f, self.w_ff2)
        return y.view(n, B, L, d).transpose(0, 1).reshape(B, T, d)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of ``a`` and ``b`` (row i of each is the positive pair,
    every other row of the batch a negative).

    Parameters
    ----------
    a, b : Tensor
        (N, d) representations, N >= 2.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    logits = a @ b.T / temperature                                          # (N, N)
    labels = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


# ----------------------------------------------------------------------------------------------------
# Batches and the fit loop
# ----------------------------------------------------------------------------------------------------
def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; asking for CUDA without one raises a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise HmsparError("train.device: 'cuda' requested but no CUDA device is available")
    return torch.device(device)


def _trim(items: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop leading columns that are padding in every row (keeps at least one column)."""
    nz = (items > 0).any(0)
    start = int(np.argmax(nz)) if nz.any() else items.shape[1] - 1
    return (items[:, start:],) + tuple(o[:, start:] for o in others)


class TorchSeqRecommender(Recommender):
    """Base of the torch sequence recommenders: next-item training on every position of the training
    histories, early stopping on validation NDCG@10, scoring from the last position.

    Same protocol as :func:`hmspar.rec.train.fit_sequential` (crop to ``max_len + 1``, seeded batches,
    AdamW, clipping, validation NDCG@10 from the evaluation module, deep-copied best state), plus what
    the multimodal nets need: item features at build time, batches of similar-length histories (far
    less padding for multi-stream models), a seeded generator for sampled negatives, and a device.

    Subclasses implement :meth:`build_module`, returning a module with

    - ``loss(items, times, next_items, next_times, generator) -> Tensor`` (scalar; items (B, L) int64,
      times and next_times (B, L) float32 days, next_items (B, L) with 0 where there is no target);
    - ``score(items, times, target_times) -> Tensor`` (B, n_items + 1) for the next item after the
      last position (``target_times`` (B,) float32, NaN where unknown).

    Attributes
    ----------
    module_ : nn.Module
        The network with the best validation epoch's weights (kept on the CPU).
    history_ : list of dict
        Per-epoch ``epoch, loss, val_ndcg@10`` (validation NDCG@10 under the protocol's masking).
    report_ : dict
        ``best_epoch, best_val_ndcg@10, epochs_run, history`` (the recommend stage's ``fit.json``).
    best_epoch_ : int
        1-based epoch whose weights were kept (0 = the initial weights).
    callback : callable or None
        ``callback(epoch, row)`` after every epoch with the history row (e.g. DVCLive logging or a
        benchmark's timer); not pickled.
    """

    def __init__(self, cfg: Any, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.module_: nn.Module | None = None
        self.history_: list[dict[str, float]] = []
        self.best_epoch_ = 0
        self.report_: dict[str, Any] = {}
        self.callback = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["callback"] = None  # may hold an open logger
        return state

    @property
    def train_cfg(self) -> RecTrainConfig:
        return getattr(self.cfg, "train", None) or RecTrainConfig()

    @abc.abstractmethod
    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        """Build the network for this catalogue (sizes read from ``items``, statistics from ``train``)."""

    # -- data ---------------------------------------------------------------------------------------
    def _examples(self, train: Histories) -> tuple[np.ndarray, np.ndarray]:
        """Training windows: (U, max_len + 1) items and times of users with at least two interactions."""
        L = self.train_cfg.max_len + 1
        items = np.asarray(train.items, dtype=np.int64)[:, -L:]
        times = np.asarray(train.times, dtype=np.float64)[:, -L:]
        if items.shape[1] < L:
            pad = L - items.shape[1]
            items = np.pad(items, ((0, 0), (pad, 0)))
            times = np.pad(times, ((0, 0), (pad, 0)))
        keep = (items > 0).sum(1) >= 2
        return items[keep], times[keep]

    def _batches(self, lengths: np.ndarray, generator: torch.Generator) -> list[np.ndarray]:
        """Row indices per batch: rows sorted by length (ties in a seeded random order), cut into
        batches, the batch order shuffled with ``generator``."""
        bs = self.train_cfg.batch_size
        jitter = torch.rand(lengths.size, generator=generator).numpy()
        order = np.lexsort((jitter, lengths))
        chunks = [order[i:i + bs] for i in range(0, order.size, bs)]
        perm = torch.randperm(len(chunks), generator=generator).numpy()
        return [chunks[i] for i in perm]

    # -- fit ----------------------------------------------------------------------------------------
    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "TorchSeqRecommender":
        """Train on the training histories; ``val`` (validation targets) decides early stopping only.

        Without ``val`` the model trains for ``train.epochs`` epochs and keeps the last weights.
        """
        cfg = self.train_cfg
        self.n_items = items.n_items
        if val is not None and val.targets is None:
            raise HmsparError(f"{type(self).__name__}.fit: validation histories carry no targets")
        ex_items, ex_times = self._examples(train)
        if ex_items.shape[0] == 0:
            raise HmsparError(f"{type(self).__name__}.fit: no training user has two or more interactions")
        device = resolve_device(cfg.device)
        old_threads = torch.get_num_threads()
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        devices = [device.index or 0] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)  # initialisation and dropout; restored on leaving fork_rng
                module = self.build_module(train, items)
                self._fit_loop(module, ex_items, ex_times, val, device)
        finally:
            if cfg.num_threads > 0:
                torch.set_num_threads(old_threads)
        return self

    def _fit_loop(self, module: nn.Module, ex_items: np.ndarray, ex_times: np.ndarray,
                  val: Histories | None, device: torch.device) -> None:
        cfg = self.train_cfg
        module = module.to(device)
        gen = torch.Generator().manual_seed(self.seed)
        neg_gen = torch.Generator(device=device).manual_seed(self.seed + 1)
        optimiser = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad],
                                      lr=cfg.lr, weight_decay=cfg.weight_decay)
        if val is not None and cfg.val_max_users and len(val) > cfg.val_max_users:
            pick = np.sort(torch.randperm(len(val), generator=torch.Generator().manual_seed(self.seed + 2))
                           .numpy()[:cfg.val_max_users])
            val = val.subset(pick)
        lengths = (ex_items > 0).sum(1)
        best, best_state, bad = -math.inf, None, 0
        self.history_ = []
        self.module_ = module
        for epoch in range(1, cfg.epochs + 1):
            module.train()
            total, steps = 0.0, 0
            for rows in self._batches(lengths, gen):
                it, tm = _trim(ex_items[rows], ex_times[rows])
                it_t = torch.from_numpy(it).to(device)
                tm_t = torch.from_numpy(tm.astype(np.float32)).to(device)
                loss = module.loss(it_t[:, :-1], tm_t[:, :-1], it_t[:, 1:], tm_t[:, 1:], neg_gen)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                optimiser.step()
                total += float(loss.detach())
                steps += 1
            row: dict[str, float] = {"epoch": epoch, "loss": total / max(steps, 1)}
            if val is not None:
                row["val_ndcg@10"] = validation_ndcg(lambda h: self._score(h, device), val, cfg.eval_batch_size)
                if row["val_ndcg@10"] > best:
                    best, bad = row["val_ndcg@10"], 0
                    best_state = copy.deepcopy(module.state_dict())  # a copy, not a live reference
                    self.best_epoch_ = epoch
                else:
                    bad += 1
            self.history_.append(row)
            if self.callback is not None:
                self.callback(epoch, row)
            if val is not None and bad >= cfg.patience:
                break
        if best_state is not None:
            module.load_state_dict(best_state)
        else:
            self.best_epoch_ = len(self.history_)
        self.module_ = module.cpu().eval()
        # what the recommend stage stores in fit.json (same keys as hmspar.rec.train; no timings)
        self.report_ = {"best_epoch": self.best_epoch_, "best_val_ndcg@10": best if val is not None else None,
                        "epochs_run": len(self.history_), "history": self.history_}

    # -- score --------------------------------------------------------------------------------------
    def _score(self, histories: Histories, device: torch.device) -> np.ndarray:
        cfg = self.train_cfg
        module = self.module_
        module.eval()
        L = cfg.max_len
        items = np.asarray(histories.items, dtype=np.int64)[:, -L:]
        times = np.asarray(histories.times, dtype=np.float64)[:, -L:]
        if histories.target_times is None:
            tt = np.full(len(histories), np.nan)
        else:
            tt = np.asarray(histories.target_times, dtype=np.float64)
        out = np.empty((len(histories), self.n_items + 1), dtype=np.float32)
        order = np.argsort((items > 0).sum(1), kind="stable")  # similar lengths share a batch: less padding
        with torch.no_grad():
            for a in range(0, len(histories), cfg.eval_batch_size):
                rows = order[a:a + cfg.eval_batch_size]
                it, tm = _trim(items[rows], times[rows])
                s = module.score(torch.from_numpy(it).to(device),
                                 torch.from_numpy(tm.astype(np.float32)).to(device),
                                 torch.from_numpy(tt[rows].astype(np.float32)).to(device))
                out[rows] = s.float().cpu().numpy()
        out[:, 0] = -np.inf
        return out

    def score(self, histories: Histories) -> np.ndarray:
        """(B, n_items + 1) float32 scores of every item as the next one; column 0 is ``-inf``."""
        if self.module_ is None:
            raise HmsparError(f"{type(self).__name__}: score called before fit")
        if np.asarray(histories.items).shape[1] == 0:
            raise HmsparError(f"{type(self).__name__}: histories have no columns")
        device = resolve_device(self.train_cfg.device)
        self.module_.to(device)
        try:
            return self._score(histories, device)
        finally:
            self.module_.cpu()


def full_softmax_loss(h: torch.Tensor, item_emb: torch.Tensor, next_items: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the next item against the whole catalogue at every position with a target.

    Parameters
    ----------
    h : Tensor
        (B, L, d) user states.
    item_emb : Tensor
        (n_items + 1, d) output item embeddings (row 0 = padding, never a valid class).
    next_items : Tensor
        (B, L) next item, 0 where there is none.
    """
    m = next_items > 0
    logits = h[m] @ item_emb.T                                              # (P, n_items + 1)
    logits[:, 0] = -1e9
    return F.cross_entropy(logits, next_items[m])

"""Model parts shared by the multimodal recommenders: item modality encoders (with the fixed picture
style descriptor), time-gap buckets, the optional ``request_time`` input, the orthogonal wavelet transform
of both ATHWE models, transformer blocks driven by attention masks and InfoNCE.

Every ``nn.Embedding`` of these models (item IDs, categories, positions, gap buckets, modality types) starts
from :func:`hmspar.rec.train.init_embedding_`: truncated N(0, 0.02) on [-0.04, 0.04], padding row zero, as
SASRec/BERT4Rec initialise theirs.

The training loop they all use is :class:`hmspar.rec.train.TorchSeqRecommender`. Torch is imported at
module level here: this module is only imported by the torch recommenders.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures
from hmspar.rec.train import ItemAge, RequestGap, init_embedding_


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


def load_vision_features(path: str, n_rows: int) -> np.ndarray:
    """A local ``(n_rows, D)`` array of frozen picture features, with a clear error when absent or mis-shaped
    (``vision: weights`` of the seed-004 model and ATHWE as published; nothing is ever downloaded)."""
    if not os.path.isfile(path):
        raise HmsparError(f"vision_features: no file at {path!r} (give a local (n_items + 1, D) .npy array of "
                          "frozen picture features, or vision: descriptor; nothing is downloaded)")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # not a .npy array
        raise HmsparError(f"vision_features: {path!r} is not a .npy array: {exc}") from None
    if arr.ndim != 2 or arr.shape[0] != n_rows or not np.issubdtype(arr.dtype, np.number):
        raise HmsparError(f"vision_features: {path!r} must be a numeric ({n_rows}, D) array (one row per item "
                          f"and the padding row 0), got {arr.dtype} {arr.shape}")
    return arr.astype(np.float32)


def picture_features(items: ItemFeatures, vision: str, path: str | None) -> np.ndarray:
    """(n_items + 1, D) raw picture features: the fixed :func:`style_descriptor` (``vision: descriptor``) or
    the local array at ``path`` (``vision: weights``)."""
    if vision == "descriptor":
        return style_descriptor(items.image)
    return load_vision_features(path, items.n_items + 1)


def frozen_tables(items: ItemFeatures, fit_rows: np.ndarray, modalities, vision: str = "descriptor",
                  vision_features: str | None = None) -> dict[str, np.ndarray]:
    """The frozen item tables of the modalities ``image``, ``text`` and ``price`` among ``modalities``, each
    standardised per column on the training items ``fit_rows`` (row 0, padding, zero): the picture features
    of ``vision`` (:func:`picture_features`), the MiniLM text (:func:`standardised_text`) and the log price as
    one column (the published models that read frozen features: pixelrec_paper, athwe_paper, mtstrec_paper)."""
    out: dict[str, np.ndarray] = {}
    if "image" in modalities:
        out["image"] = standardise_rows(picture_features(items, vision, vision_features), fit_rows)
    if "text" in modalities:
        out["text"] = standardised_text(items, fit_rows)
    if "price" in modalities:
        out["price"] = standardise_rows(np.asarray(items.price, dtype=np.float32)[:, None], fit_rows)
    return out


def check_vision(vision: str, vision_features: str | None) -> None:
    """Config validation of ``vision`` / ``vision_features`` (ValueError naming the key)."""
    if vision not in ("descriptor", "weights"):
        raise ValueError(f"vision must be 'descriptor', 'weights' or 'lab' (the lab's picture encoder, resolved "
                         f"by the recommend stage), got {vision!r}")
    if vision == "weights" and not vision_features:
        raise ValueError("vision_features must name a local .npy file when vision is 'weights'")


def standardise_rows(values: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
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
    seen[train.whole().items] = True
    seen[0] = False
    return seen


def standardised_text(items: ItemFeatures, fit_rows: np.ndarray) -> np.ndarray:
    """(n_items + 1, D) float32 text embeddings standardised per dimension on the training items ``fit_rows``
    (MiniLM's dimensions have a standard deviation near 0.04: unscaled, a text branch starts almost
    silent); row 0 (padding) zero. As the classification track scales its text features on the training
    split only."""
    return standardise_rows(np.asarray(items.text, dtype=np.float32), fit_rows)


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
            self.id_emb = init_embedding_(nn.Embedding(n + 1, d, padding_idx=0))
        if "image" in self.modalities:
            style = standardise_rows(style_descriptor(items.image), fit_rows)
            self.register_buffer("style", torch.from_numpy(style))
            self.image_proj = nn.Sequential(nn.Linear(style.shape[1], d), nn.GELU(), nn.Linear(d, d))
        if "text" in self.modalities:
            text = standardised_text(items, fit_rows)
            self.register_buffer("text", torch.from_numpy(text))
            self.text_proj = nn.Sequential(nn.Linear(text.shape[1], d), nn.GELU(), nn.Linear(d, d))
        if "price" in self.modalities:
            price = standardise_rows(np.asarray(items.price, dtype=np.float32)[:, None], fit_rows)
            self.register_buffer("price", torch.from_numpy(price))
            self.price_proj = nn.Sequential(nn.Linear(1, d), nn.GELU(), nn.Linear(d, d))
        if "category" in self.modalities:
            cats = np.asarray(items.category, dtype=np.int64)
            self.register_buffer("category", torch.from_numpy(cats))
            self.cat_emb = init_embedding_(nn.Embedding(int(cats.max()) + 1, d, padding_idx=0))

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
# Item age: :class:`~hmspar.rec.train.ItemAge`, ``item_arrivals`` and ``item_age_module`` live in the shared
# loop (hmspar/rec/train.py), since the ID-only peers take the same input.
# ----------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------
# Scoring candidates (``output``)
# ----------------------------------------------------------------------------------------------------
#: How a user state scores the catalogue: ``id`` = its ID embedding alone (content never reaches a
#: candidate); ``sum`` = the sum of the item's modality embeddings; ``heads`` = one linear head of the user
#: state per modality, each scoring that modality's item embedding, the scores summed (MTSTRec's
#: per-modality heads); ``weighted`` = the per-modality scores weighted by a learned softmax (ATHWE's
#: weighted sum of ID, text and picture scores).
OUTPUTS = ("id", "sum", "heads", "weighted")


def check_output(output: str, modalities: tuple[str, ...]) -> None:
    """Raise ValueError for an unknown ``output`` or ``id`` without an ID stream (config validation)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if output == "id" and "id" not in modalities:
        raise ValueError("output 'id' needs id among the item modalities; use sum, heads or weighted without it")


class CandidateScorer(nn.Module):
    """Scores of every catalogue item for user states, by the model's ``output`` rule (:data:`OUTPUTS`),
    plus the item-age score when the model has that input.

    Parameters
    ----------
    output : str
        One of :data:`OUTPUTS`.
    modalities : tuple of str
        The item modalities of the model's catalogue table, in order.
    d : int
        State and embedding width.
    age : ItemAge or None
        The ``item_age`` input (None: off).
    """

    def __init__(self, output: str, modalities: tuple[str, ...], d: int, age: ItemAge | None = None) -> None:
        super().__init__()
        try:
            check_output(output, tuple(modalities))
        except ValueError as exc:
            raise HmsparError(str(exc)) from None
        self.output, self.modalities = output, tuple(modalities)
        if output == "heads":  # identity at the start: the heads begin as ``sum``
            self.heads = nn.Parameter(torch.eye(d).repeat(len(self.modalities), 1, 1))     # (M, d, d)
        elif output == "weighted":
            self.mix = nn.Parameter(torch.zeros(len(self.modalities)))                     # softmax logits
        self.age = age

    def modality_weights(self) -> torch.Tensor | None:
        """(M,) softmax weights of the per-modality scores under ``weighted``, else None."""
        return torch.softmax(self.mix, 0) if self.output == "weighted" else None

    def forward(self, h: torch.Tensor, table: dict[str, torch.Tensor],
                ref_times: torch.Tensor | None = None) -> torch.Tensor:
        """(P, d) user states -> (P, n_items + 1) scores; ``table`` maps modality -> (n_items + 1, d);
        ``ref_times`` (P,) is the time of the last interaction each state has seen (needed with the age
        input only)."""
        if self.output == "id":
            s = h @ table["id"].T
        elif self.output == "sum":
            s = h @ torch.stack([table[m] for m in self.modalities], 0).sum(0).T
        elif self.output == "heads":
            u = torch.einsum("pd,mde->pme", h, self.heads).reshape(h.shape[0], -1)        # (P, M*d)
            s = u @ torch.cat([table[m] for m in self.modalities], 1).T                    # (P, n_items + 1)
        else:
            w = torch.softmax(self.mix, 0)
            s = h @ sum(w[i] * table[m] for i, m in enumerate(self.modalities)).T
        if self.age is not None:
            if ref_times is None:
                raise HmsparError("the item-age score needs the time of each state's last interaction")
            s = s + self.age(ref_times)
        return s

    def loss(self, h: torch.Tensor, table: dict[str, torch.Tensor], next_items: torch.Tensor,
             times: torch.Tensor) -> torch.Tensor:
        """Full-catalogue cross-entropy of the next item at every position with a target (h (B, L, d),
        next_items and times (B, L)); the same computation as :func:`~hmspar.rec.train.full_softmax_loss`."""
        m = next_items > 0
        logits = self(h[m], table, times[m])                                # (P, n_items + 1)
        logits[:, 0] = -1e9
        return F.cross_entropy(logits, next_items[m])


# ----------------------------------------------------------------------------------------------------
# Time gaps
# ----------------------------------------------------------------------------------------------------
def gaps(times: torch.Tensor, valid: torch.Tensor,
         next_times: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
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
# Models whose every position sees later ones (two-sided encoders): trained on prefixes, last position only
# ----------------------------------------------------------------------------------------------------
def check_prefix_training(train: object, why: str) -> None:
    """Refuse a loop setting a two-sided model cannot train under.

    Parameters
    ----------
    train : RecTrainConfig
        The model's loop settings.
    why : str
        What in the model lets a position see later ones (it completes the error message).

    Raises
    ------
    ValueError
        ``train.windows`` is not ``prefixes`` (every position of a window would be a target, and an earlier
        target would see the later ones), or ``train.request_time`` is on (these models read the history's
        own times only).
    """
    if train.windows != "prefixes":
        raise ValueError(f"train.windows must be 'prefixes': {why}, so only the last position of an example "
                         f"may be trained (got {train.windows!r})")
    if train.request_time:
        raise ValueError("train.request_time must be false: the model reads the history's own times only")


def last_target(next_items: torch.Tensor, model: str) -> torch.Tensor:
    """The one target of each prefix example, ``next_items[:, -1]``.

    Raises
    ------
    HmsparError
        An earlier position holds a target too: the batch came from windows, not prefixes, and training it
        would let those targets be seen by the two-sided encoder.
    """
    if bool((next_items[:, :-1] != 0).any()):
        raise HmsparError(f"{model} trains the last position of each example only: set train.windows: prefixes")
    return next_items[:, -1]


# ----------------------------------------------------------------------------------------------------
# The optional request_time input (the same for every sequential model)
# ----------------------------------------------------------------------------------------------------
def request_time_on(cfg: object) -> bool:
    """Whether a model config's ``train.request_time`` is set (False when the loop has no such setting)."""
    return bool(getattr(getattr(cfg, "train", None), "request_time", False))


def request_gap_module(cfg: object, d: int) -> RequestGap | None:
    """A :class:`~hmspar.rec.train.RequestGap` of width ``d`` when ``cfg.train.request_time`` is on, else
    None: with it off no module is built, so no parameter and no code path can read a request's time."""
    return RequestGap(d) if request_time_on(cfg) else None


def add_request_gap(rg: RequestGap | None, h: torch.Tensor, items: torch.Tensor, times: torch.Tensor,
                    request_times: torch.Tensor) -> torch.Tensor:
    """Add the request-gap embedding to user states (identity when ``rg`` is None).

    Parameters
    ----------
    rg : RequestGap or None
        The model's module (None with ``request_time`` off: ``h`` is returned untouched, ``request_times``
        is never read).
    h : Tensor
        (B, L, d) states at every position (training: each predicts the next interaction) or (B, d) last
        states (scoring).
    items, times : Tensor
        (B, L) or (B,) history items and their times (days), aligned with ``h``.
    request_times : Tensor
        Same shape as ``items``: time of the interaction each state predicts (``next_times`` in training,
        ``target_times`` at scoring); NaN where unknown.

    Returns
    -------
    Tensor
        ``h`` plus the embedding of the bucketed gap ``request_times - times`` (days); padding positions
        and unknown times get the "unknown" bucket, i.e. are left unchanged.
    """
    if rg is None:
        return h
    gap = torch.where(items > 0, request_times - times, torch.full_like(times, float("nan")))
    return rg(h, gap)


# ----------------------------------------------------------------------------------------------------
# A differentiable discrete wavelet transform (Haar, db2, db4) as an orthogonal matrix.
# With periodic extension, a multi-level DWT of a length-n signal is an orthogonal n x n linear map:
# dwt_matrix builds it once in numpy, DWT applies it along the last axis (forward x @ W.T, inverse
# c @ W), so gradients flow through both directions at the cost of one matmul. Coefficients are ordered
# like PyWavelets' wavedec, [cA_J, cD_J, ..., cD_1] (Haar values equal PyWavelets' "periodization"
# ones; db2 and db4 may differ from them by circular shifts). No new dependency: the filters are written out.
# ----------------------------------------------------------------------------------------------------
_S3 = math.sqrt(3.0)
#: Decomposition low-pass filters (orthonormal: sum of squares 1, sum sqrt 2).
LOWPASS = {
    "haar": np.array([1.0, 1.0]) / math.sqrt(2.0),
    "db2": np.array([1 + _S3, 3 + _S3, 3 - _S3, 1 - _S3]) / (4 * math.sqrt(2.0)),
    # PyWavelets' db4 rec_lo (ATHWE's published wavelet; four vanishing moments)
    "db4": np.array([0.2303778133088965, 0.7148465705529157, 0.6308807679298589, -0.027983769416859854,
                     -0.18703481171909309, 0.030841381835560764, 0.0328830116668852, -0.010597401785069032]),
}


def _one_level(n: int, wavelet: str) -> np.ndarray:
    """(n, n) orthogonal single-level analysis matrix: rows 0..n/2-1 approximation, then detail."""
    h = LOWPASS[wavelet]
    # quadrature mirror high-pass, sign chosen to match PyWavelets (haar: cD = (x0 - x1) / sqrt 2)
    g = np.array([(-1) ** k * h[len(h) - 1 - k] for k in range(len(h))])
    half = n // 2
    W = np.zeros((n, n))
    for i in range(half):
        for k in range(len(h)):
            W[i, (2 * i + k) % n] += h[k]
            W[half + i, (2 * i + k) % n] += g[k]
    return W


def dwt_matrix(n: int, wavelet: str = "haar", levels: int = 1) -> np.ndarray:
    """Orthogonal (n, n) matrix of a ``levels``-level periodised DWT.

    Parameters
    ----------
    n : int
        Signal length, divisible by ``2 ** levels``.
    wavelet : {"haar", "db2", "db4"}
    levels : int
        Decomposition levels (>= 1).

    Returns
    -------
    np.ndarray
        ``W`` with ``coeffs = W @ x`` ordered ``[cA_J, cD_J, ..., cD_1]`` and ``x = W.T @ coeffs``.

    Raises
    ------
    HmsparError
        On an unknown wavelet or a length not divisible by ``2 ** levels``.
    """
    if wavelet not in LOWPASS:
        raise HmsparError(f"wavelet: unknown wavelet {wavelet!r} (known: {', '.join(LOWPASS)})")
    if levels < 1 or n % (2 ** levels):
        raise HmsparError(f"wavelet levels: length {n} is not divisible by 2**{levels}")
    W = np.eye(n)
    m = n
    for _ in range(levels):
        step = np.eye(n)
        step[:m, :m] = _one_level(m, wavelet)
        W = step @ W
        m //= 2
    return W


def band_index(n: int, levels: int) -> np.ndarray:
    """(n,) band of each coefficient: 0 = approximation cA_J, j = detail cD_{J-j+1} (coarse to fine)."""
    out = np.zeros(n, dtype=np.int64)
    start = n // (2 ** levels)
    size = start
    for j in range(1, levels + 1):
        out[start:start + size] = j
        start += size
        size *= 2
    return out


class DWT(nn.Module):
    """Multi-level DWT along the last axis of a tensor (differentiable, exact inverse).

    Parameters
    ----------
    n : int
        Length of the last axis.
    wavelet : {"haar", "db2", "db4"}
    levels : int
    """

    def __init__(self, n: int, wavelet: str = "haar", levels: int = 1) -> None:
        super().__init__()
        self.register_buffer("W", torch.from_numpy(dwt_matrix(n, wavelet, levels)).float())
        self.register_buffer("bands", torch.from_numpy(band_index(n, levels)))
        self.n_bands = levels + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., n) signal -> (..., n) coefficients ``[cA_J, cD_J, ..., cD_1]``."""
        return x @ self.W.T

    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """(..., n) coefficients -> (..., n) signal."""
        return c @ self.W


# ----------------------------------------------------------------------------------------------------
# Transformer blocks
# ----------------------------------------------------------------------------------------------------
def small_embedding(n: int, d: int, std: float = 0.02) -> nn.Embedding:
    """An ``nn.Embedding`` initialised by :func:`~hmspar.rec.train.init_embedding_` (truncated N(0, std)):
    positions and gap buckets are added to item tokens, and torch's default N(0, 1) would drown the item
    embeddings at the start of training."""
    return init_embedding_(nn.Embedding(n, d), std=std)


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout from ``torch.rand_like`` (the global generator, seeded by the loop): on the CPU about
    2.5 times faster than ``F.dropout``'s Bernoulli draw, the same distribution (another draw of it)."""
    if not training or p == 0.0:
        return x
    return x * (torch.rand_like(x) >= p) * (1.0 / (1.0 - p))


def length_groups(valid: torch.Tensor, n_groups: int) -> list[torch.Tensor]:
    """Rows of a left-padded batch in at most ``n_groups`` groups of similar length, for encoders whose output
    of a row does not depend on the other rows or on the width of its padding (a model that reads only the last
    position of each row can then run each group on its own columns: the batch's long rows no longer make every
    short row pay for their width).

    Rows are sorted by their number of valid positions (ties in row order) and cut into groups of equal count;
    the split depends on the lengths alone, so it is deterministic.

    Parameters
    ----------
    valid : Tensor
        (B, L) bool, valid positions right-aligned.
    n_groups : int
        At most this many groups (fewer for small batches); 1 keeps the batch whole.

    Returns
    -------
    list of Tensor
        Non-empty int64 index tensors, together a permutation of ``0 .. B - 1``, shortest rows first.
    """
    if n_groups < 1:
        raise HmsparError(f"length_groups: n_groups must be at least 1, got {n_groups!r}")
    B = valid.shape[0]
    order = torch.argsort(valid.sum(1), stable=True)
    k = max(1, min(n_groups, B))
    return [g for g in torch.tensor_split(order, k) if g.numel()]


def cut_padding(valid: torch.Tensor) -> int:
    """First column of a left-padded (B, L) ``valid`` that holds a valid position in some row (L - 1 when
    none does): the columns before it are padding in every row."""
    any_valid = valid.any(0)
    return int(any_valid.float().argmax()) if bool(any_valid.any()) else valid.shape[1] - 1


def in_length_groups(valid: torch.Tensor, n_groups: int, run) -> torch.Tensor:
    """The outputs of a batch computed group by group (:func:`length_groups`), back in row order.

    Parameters
    ----------
    valid : Tensor
        (B, L) bool, valid positions right-aligned.
    n_groups : int
    run : callable
        ``run(rows, start)`` -> (len(rows), ...) outputs of the rows ``rows``, whose columns before ``start``
        (:func:`cut_padding` of the group) are padding in all of them.

    Returns
    -------
    Tensor
        (B, ...) the groups' outputs, row ``i`` of the batch at position ``i``.
    """
    outs, order = [], []
    for rows in length_groups(valid, n_groups):
        outs.append(run(rows, cut_padding(valid[rows])))
        order.append(rows)
    order = torch.cat(order)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return torch.cat(outs)[inverse]


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
    ff_mult : int
        Width of the feed-forward layer in multiples of ``d`` (2 by default; RecBole's SASRec uses 4).
    rand_dropout : bool
        Draw the dropout mask with :func:`fast_dropout` (``torch.rand_like``) rather than ``nn.Dropout``'s
        Bernoulli draw: the same distribution, a different draw, several times cheaper on the CPU.
    """

    def __init__(self, n_streams: int, d: int, heads: int, dropout: float, ff_mult: int = 2,
                 rand_dropout: bool = False) -> None:
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
        self.w_ff1, self.b_ff1 = weight(d, ff_mult * d), nn.Parameter(torch.zeros(n_streams, 1, ff_mult * d))
        self.w_ff2, self.b_ff2 = weight(ff_mult * d, d), nn.Parameter(torch.zeros(n_streams, 1, d))
        self.drop = nn.Dropout(dropout)
        self.rand_dropout = rand_dropout

    @staticmethod
    def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]) * w + b

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.drop.p, self.training) if self.rand_dropout else self.drop(x)

    def _out_and_ff(self, xs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(n, N, d) block inputs and attention outputs -> (n, N, d): the output projection with dropout and the
        residual, then the pre-LN feed-forward with its residual."""
        y = xs + self._dropout(torch.baddbmm(self.b_out, a, self.w_out))
        f = F.gelu(torch.baddbmm(self.b_ff1, self._ln(y, self.ln2_w, self.ln2_b), self.w_ff1))  # (n, N, ff_mult*d)
        return y + torch.baddbmm(self.b_ff2, f, self.w_ff2)

    def forward(self, x: torch.Tensor, valid: torch.Tensor, allowed: torch.Tensor | None = None,
                token: bool = False, last: bool = False) -> torch.Tensor:
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
        last : bool
            Causal segments only (no ``allowed``, no ``token``): compute the output of each segment's last
            position alone (its keys and values still come from every position), for a final block whose
            other outputs nobody reads. Equal to the last column of the full output (tested).

        Returns
        -------
        Tensor
            (B, n_streams * L, d), or with ``last`` (B, n_streams, d).
        """
        B, T, d = x.shape
        n, L, h = self.n, T // self.n, self.h
        dh = d // h
        xs = x.view(B, n, L, d).transpose(0, 1).reshape(n, B * L, d)        # (n, B*L, d)
        qkv = torch.baddbmm(self.b_qkv, self._ln(xs, self.ln1_w, self.ln1_b), self.w_qkv)  # (n, B*L, 3d)
        q, k, v = qkv.view(n, B, L, 3, h, dh).permute(3, 1, 0, 4, 2, 5)     # (B, n, h, L, dh) each
        if last:
            if allowed is not None or token:
                raise HmsparError("MultiStreamBlock: last=True needs causal segments (no allowed mask, no token)")
            # the last query of each segment sees every valid position (and itself, as causal_mask's diagonal)
            mask = (valid | (torch.arange(L, device=valid.device) == L - 1))[:, None, None, :]   # (B, 1, 1, L)
            qs = q[..., -1:, :].reshape(B, n * h, 1, dh)
            ks, vs = (t.reshape(B, n * h, L, dh) for t in (k, v))
            a = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask)  # (B, n*h, 1, dh)
            a = a.view(B, n, d).transpose(0, 1)                              # (n, B, d)
            return self._out_and_ff(xs.view(n, B, L, d)[:, :, -1], a).transpose(0, 1)   # (B, n, d)
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
        return self._out_and_ff(xs, a).view(n, B, L, d).transpose(0, 1).reshape(B, T, d)


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

"""PixelRec-style two-tower recommender: an item tower that reads only item content (picture through a
small CNN, MiniLM text embedding, price, category) and a user tower over the history of item vectors.

Because no item ID is needed (``id`` in ``inputs`` is optional and gives items unseen in training a
zero ID vector), items that never occur in training, cold items, are scored from their content alone.
Training uses binary cross-entropy of the next item against sampled negatives (drawn from a seeded
``torch.Generator``, accidental hits ignored) plus an optional picture-text InfoNCE loss over the items
of the batch. The picture CNN may start from a local state-dict file (``image_weights``; ``lab``: the lab's
pretrained encoder, stage ``rec_pictures``), fine-tuned or kept fixed (``freeze_image``); nothing is
downloaded. Text embeddings are standardised per dimension on the training items. With ``item_age`` every
candidate's score adds a learned weight of its age at the last history interaction
(:class:`~hmspar.rec.train.ItemAge`). Re-ranking (MMR) is not part of the model: see :mod:`hmspar.rec.rerank`.

The user tower reads item vectors and positions only, no time. With ``train.request_time: true`` the
loop-wide :class:`~hmspar.rec.train.RequestGap` adds the gap to the predicted interaction to the user
state (one per position, after the tower's layer norm), as for every sequential model.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures
from hmspar.rec.models.common import (
    MultiStreamBlock,
    add_request_gap,
    info_nce,
    request_gap_module,
    request_time_on,
    small_embedding,
    standardise_rows,
    standardised_text,
    train_items,
)
from hmspar.rec.train import RecTrainConfig, TorchSeqRecommender, init_embedding_, item_age_module, trim_left

CONTENT = ("image", "text", "price", "category")


@dataclasses.dataclass(frozen=True)
class Config:
    """Two-tower settings (``rec.recommenders.pixelrec``).

    Parameters
    ----------
    inputs : list of str
        Item-tower branches among ``image, text, price, category, id``; at least one content modality.
    d, heads, layers : int
        Width of both towers; attention heads and layers of the user tower.
    dropout : float
    fusion : {"concat", "gated", "attention"}
        How the item tower fuses its branches: a linear map of their concatenation, a softmax-gated sum,
        or a self-attention layer over the branch vectors read at a summary token.
    cnn_channels : list of int
        Channels of the picture CNN's stride-2 convolutions.
    image_weights : str or None
        Path of a torch state dict for the picture CNN (same ``cnn_channels`` and ``d``); None trains from
        scratch. ``lab`` (resolved by the recommend stage) is the lab's pretrained encoder
        (:mod:`hmspar.rec.picture_encoder`).
    freeze_image : bool
        Keep the loaded CNN fixed: every item's picture vector is computed once, and only a linear map of it
        is learned (cheaper than fine-tuning; needs ``image_weights``).
    n_negatives : int
        Negatives sampled uniformly from the catalogue per training step (shared by its positions).
    contrastive_weight, temperature : float
        Weight (0 disables) and temperature of the picture-text InfoNCE loss.
    item_age : bool
        Add a learned score of each candidate's age at the last history interaction
        (:class:`~hmspar.rec.train.ItemAge`).
    train : RecTrainConfig
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["image", "text", "price", "category"])
    d: int = 64
    heads: int = 2
    layers: int = 1
    dropout: float = 0.2
    fusion: Literal["concat", "gated", "attention"] = "gated"
    cnn_channels: list[int] = dataclasses.field(default_factory=lambda: [8, 16, 32])
    image_weights: str | None = None
    freeze_image: bool = False
    n_negatives: int = 128
    contrastive_weight: float = 0.1
    temperature: float = 0.2
    item_age: bool = False
    train: RecTrainConfig = dataclasses.field(default_factory=RecTrainConfig)

    def __post_init__(self) -> None:
        if not any(m in CONTENT for m in self.inputs):
            raise ValueError(f"inputs must hold at least one content modality ({', '.join(CONTENT)}), "
                             f"got {self.inputs!r}")
        if self.n_negatives < 1:
            raise ValueError(f"n_negatives must be positive, got {self.n_negatives!r}")
        if not self.cnn_channels or min(self.cnn_channels) < 1:
            raise ValueError(f"cnn_channels must be a non-empty list of positive integers, got {self.cnn_channels!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        if self.freeze_image and not self.image_weights:
            raise ValueError("freeze_image needs image_weights (a frozen CNN trained from nothing reads nothing)")


class PictureCNN(nn.Module):
    """Small CNN: stride-2 3x3 convolutions with ReLU, global average pooling, a linear map to ``d``."""

    def __init__(self, channels: list[int], d: int) -> None:
        super().__init__()
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.ReLU()]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, d)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) uint8 -> (N, d)."""
        x = img.float() / 127.5 - 1.0                                       # (N, 3, S, S) in [-1, 1]
        return self.head(self.conv(x).mean((2, 3)))                         # (N, C) -> (N, d)


def encode_pictures(cnn: PictureCNN, images: np.ndarray, batch: int = 1024) -> np.ndarray:
    """(n_items + 1, d) float32 vectors of every picture by ``cnn`` (in eval mode, no gradient), in chunks of
    ``batch``; row 0 (padding) zero."""
    cnn.eval()
    out = []
    with torch.no_grad():
        for a in range(0, images.shape[0], batch):
            out.append(cnn(torch.from_numpy(np.ascontiguousarray(images[a:a + batch]))).numpy())
    feats = np.concatenate(out).astype(np.float32)
    feats[0] = 0.0
    return feats


def load_picture_weights(cnn: PictureCNN, path: str) -> None:
    """Load a local state dict into the picture CNN, with a clear error when it is absent or mismatched."""
    if not os.path.isfile(path):
        raise HmsparError(f"image_weights: no file at {path!r} (give a torch state dict of the picture CNN, "
                          "or null to train it from scratch; nothing is downloaded)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        cnn.load_state_dict(state)
    except Exception as exc:  # a wrong file or a different architecture
        raise HmsparError(f"image_weights: {path!r} is not a state dict of this picture CNN "
                          f"(cnn_channels must match): {exc}") from None


class ItemTower(nn.Module):
    """Item vectors from content branches fused by concat / gated sum / attention."""

    def __init__(self, items: ItemFeatures, cfg: Config, fit_rows: np.ndarray, known: np.ndarray) -> None:
        super().__init__()
        d = cfg.d
        self.mods = tuple(dict.fromkeys(cfg.inputs))
        self.fusion = cfg.fusion
        self.n_items = items.n_items
        if "image" in self.mods:
            self.register_buffer("image", torch.from_numpy(np.ascontiguousarray(items.image, dtype=np.uint8)))
            cnn = PictureCNN(list(cfg.cnn_channels), d)
            if cfg.image_weights:
                load_picture_weights(cnn, cfg.image_weights)
            if cfg.freeze_image:
                # the fixed CNN's vector of every picture, once, standardised on the training items; a learned
                # linear map adapts it
                feats = standardise_rows(encode_pictures(cnn, items.image), fit_rows)
                self.register_buffer("image_feats", torch.from_numpy(feats))
                self.image_adapter = nn.Linear(d, d)
            else:
                self.cnn = cnn
        if "text" in self.mods:
            text = standardised_text(items, fit_rows)
            self.register_buffer("text", torch.from_numpy(text))
            self.text_mlp = nn.Sequential(nn.Linear(text.shape[1], d), nn.GELU(), nn.Linear(d, d))
        if "price" in self.mods:
            price = standardise_rows(np.asarray(items.price, dtype=np.float32)[:, None], fit_rows)
            self.register_buffer("price", torch.from_numpy(price))
            self.price_mlp = nn.Sequential(nn.Linear(1, d), nn.GELU(), nn.Linear(d, d))
        if "category" in self.mods:
            cats = torch.from_numpy(np.asarray(items.category, dtype=np.int64))
            self.register_buffer("category", cats)
            self.cat_emb = small_embedding(int(cats.max()) + 1, d)
        if "id" in self.mods:
            # items unseen in training map to row 0, a zero vector: their score comes from content only
            id_map = np.where(known, np.arange(known.size), 0)
            self.register_buffer("id_map", torch.from_numpy(id_map.astype(np.int64)))
            self.id_emb = init_embedding_(nn.Embedding(known.size, d, padding_idx=0))
        k = len(self.mods)
        if cfg.fusion == "concat":
            self.fuse = nn.Linear(k * d, d)
        elif cfg.fusion == "gated":
            self.gate = nn.Linear(k * d, k)
            self.fuse = nn.Linear(d, d)
        else:
            self.mod_type = small_embedding(k + 1, d)
            self.attn = MultiStreamBlock(1, d, cfg.heads, cfg.dropout)
        self.ln = nn.LayerNorm(d)

    def branches(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-branch vectors of items ``idx`` ((N,) int64) -> modality -> (N, d)."""
        out = {}
        if "image" in self.mods:
            if hasattr(self, "image_feats"):
                out["image"] = self.image_adapter(self.image_feats[idx])    # frozen (N, d) -> (N, d)
            else:
                out["image"] = self.cnn(self.image[idx])                    # (N, 3, S, S) -> (N, d)
        if "text" in self.mods:
            out["text"] = self.text_mlp(self.text[idx])                     # (N, D) -> (N, d)
        if "price" in self.mods:
            out["price"] = self.price_mlp(self.price[idx])                  # (N, 1) -> (N, d)
        if "category" in self.mods:
            out["category"] = self.cat_emb(self.category[idx])              # (N, d)
        if "id" in self.mods:
            out["id"] = self.id_emb(self.id_map[idx])                       # (N, d)
        return out

    def fuse_branches(self, br: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fuse branch vectors (modality -> (N, d)) into item vectors (N, d)."""
        vs = [br[m] for m in self.mods]
        if self.fusion == "concat":
            out = self.fuse(torch.cat(vs, -1))                              # (N, k*d) -> (N, d)
        elif self.fusion == "gated":
            g = torch.softmax(self.gate(torch.cat(vs, -1)), -1)             # (N, k)
            out = self.fuse((torch.stack(vs, 1) * g[..., None]).sum(1))     # (N, d)
        else:
            N = vs[0].shape[0]
            summary = torch.zeros_like(vs[0])[:, None]                      # (N, 1, d) summary token
            tok = torch.cat([summary, torch.stack(vs, 1)], 1) + self.mod_type.weight  # (N, k+1, d)
            valid = torch.ones(N, tok.shape[1], dtype=torch.bool, device=tok.device)
            full = torch.ones(N, tok.shape[1], tok.shape[1], dtype=torch.bool, device=tok.device)
            out = self.attn(tok, valid, full)[:, 0]                         # (N, d)
        return self.ln(out)

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Item vectors of ``idx`` (any shape, int64) computed once per distinct item.

        Returns
        -------
        (Tensor, dict)
            (..., d) item vectors (padding item 0 -> zeros) and the distinct items' branch vectors.
        """
        uniq, inv = torch.unique(idx, return_inverse=True)
        br = self.branches(uniq)
        vec = self.fuse_branches(br) * (uniq > 0)[:, None].float()          # (U, d)
        # F.embedding, not vec[inv]: the backward of advanced indexing accumulates repeated rows in an order
        # that varies with the thread schedule on the CPU (different bytes per run); embedding's does not.
        return F.embedding(inv, vec), {**br, "_items": uniq}


class TwoTowerNet(nn.Module):
    """User tower (causal transformer over item vectors) and item tower."""

    def __init__(self, tower: ItemTower, cfg: Config, age: nn.Module | None = None) -> None:
        super().__init__()
        self.tower = tower
        d = cfg.d
        self.pos = small_embedding(cfg.train.max_len, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(MultiStreamBlock(1, d, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(d)
        self.n_neg = cfg.n_negatives
        self.cw, self.temperature = cfg.contrastive_weight, cfg.temperature
        self.contrast = "image" in tower.mods and "text" in tower.mods and cfg.contrastive_weight > 0
        if self.contrast:
            self.proj_img, self.proj_txt = nn.Linear(d, d), nn.Linear(d, d)
        self.request_gap = request_gap_module(cfg, d)                       # None unless train.request_time
        self.age = age                                                      # None unless item_age

    def user(self, vec: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, L, d) history item vectors, (B, L) items -> (B, L, d) user states."""
        B, L, _ = vec.shape
        valid = items > 0
        h = self.drop(vec + self.pos(torch.arange(L - 1, -1, -1, device=vec.device)))
        for blk in self.blocks:
            h = blk(h, valid)                                               # causal
        return self.ln(h)

    def last_state(self, cat: torch.Tensor, items: torch.Tensor, times: torch.Tensor,
                   target_times: torch.Tensor) -> torch.Tensor:
        """(B, d) user state after the last position, from catalogue vectors ``cat`` (n_items + 1, d) and
        (B, L) items and times; ``target_times`` (B,) is read only with ``train.request_time``."""
        h = self.user(cat[items], items)[:, -1]                             # (B, d)
        return add_request_gap(self.request_gap, h, items[:, -1], times[:, -1], target_times)

    def loss(self, items, times, next_items, next_times, generator) -> torch.Tensor:
        """Sampled-negative BCE of the next item at every position (+ picture-text InfoNCE); ``next_times``
        is read only with ``train.request_time``."""
        B, L = items.shape
        n = self.tower.n_items
        neg = torch.randint(1, n + 1, (self.n_neg,), generator=generator, device=items.device)  # (K,)
        allv, br = self.tower(torch.cat([items.reshape(-1), next_items.reshape(-1), neg]))
        hist = allv[:B * L].view(B, L, -1)
        pos = allv[B * L:2 * B * L].view(B, L, -1)
        negv = allv[2 * B * L:]                                             # (K, d)
        h = self.user(hist, items)                                          # (B, L, d)
        h = add_request_gap(self.request_gap, h, items, times, next_times)
        m = next_items > 0
        hp = h[m]                                                           # (P, d)
        lp = (hp * pos[m]).sum(-1)                                          # (P,)
        ln = hp @ negv.T                                                    # (P, K)
        if self.age is not None:
            ref = times[m]                                                  # last interaction each state saw
            lp = lp + self.age(ref, next_items[m][:, None])[:, 0]
            ln = ln + self.age(ref, neg)
        keep = (neg[None, :] != next_items[m][:, None]).float()             # accidental hits ignored
        loss = F.softplus(-lp).mean() + (F.softplus(ln) * keep).sum() / keep.sum().clamp(min=1)
        if self.contrast:
            real = br["_items"] > 0
            if int(real.sum()) >= 2:
                loss = loss + self.cw * info_nce(self.proj_img(br["image"][real]), self.proj_txt(br["text"][real]),
                                                 self.temperature)
        return loss

    def catalogue(self, chunk: int = 1024) -> torch.Tensor:
        """(n_items + 1, d) vectors of every item (row 0 zeros)."""
        idx = torch.arange(self.tower.n_items + 1, device=self.pos.weight.device)
        return torch.cat([self.tower(idx[a:a + chunk])[0] for a in range(0, idx.numel(), chunk)])

    def score(self, items, times, target_times) -> torch.Tensor:
        """(B, n_items + 1) scores of every item as the next one."""
        cat = self.catalogue()
        return self.scores(self.last_state(cat, items, times, target_times), cat, times[:, -1])

    def scores(self, h: torch.Tensor, cat: torch.Tensor, ref_times: torch.Tensor) -> torch.Tensor:
        """(B, d) user states, (n_items + 1, d) catalogue vectors, (B,) time of each state's last interaction
        -> (B, n_items + 1) scores (plus the item-age score with ``item_age``)."""
        s = h @ cat.T
        return s if self.age is None else s + self.age(ref_times)


class PixelRecTwoTower(TorchSeqRecommender):
    """PixelRec-style multimodal two-tower recommender (see the module docstring)."""

    Config = Config
    name = "pixelrec"

    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        known = train_items(train, items.n_items)
        fit_rows = np.flatnonzero(known)
        if fit_rows.size == 0:
            raise HmsparError("pixelrec: the training histories hold no item")
        return TwoTowerNet(ItemTower(items, self.cfg, fit_rows, known), self.cfg,
                           item_age_module(self.cfg.item_age, train, items))

    def _score(self, histories: Histories, device: torch.device) -> np.ndarray:
        # the catalogue vectors are computed once per scoring call, not once per batch
        module = self.module_
        module.eval()
        cfg = self.train_cfg
        items = np.asarray(histories.items, dtype=np.int64)[:, -cfg.max_len:]
        times = np.asarray(histories.times, dtype=np.float64)[:, -cfg.max_len:]
        # the request's time reaches the module only with train.request_time (as in the loop's _score)
        if histories.target_times is None or not request_time_on(self.cfg):
            tt = np.full(len(histories), np.nan)
        else:
            tt = np.asarray(histories.target_times, dtype=np.float64)
        out = np.empty((len(histories), self.n_items + 1), dtype=np.float32)
        order = np.argsort((items > 0).sum(1), kind="stable")  # similar lengths share a batch
        with torch.no_grad():
            cat = module.catalogue()
            for a in range(0, len(histories), cfg.eval_batch_size):
                rows = order[a:a + cfg.eval_batch_size]
                it, tm = trim_left(items[rows], times[rows])
                it_t = torch.from_numpy(it).to(device)
                tm_t = torch.from_numpy(tm.astype(np.float32)).to(device)
                h = module.last_state(cat, it_t, tm_t, torch.from_numpy(tt[rows].astype(np.float32)).to(device))
                out[rows] = module.scores(h, cat, tm_t[:, -1]).float().cpu().numpy()
        out[:, 0] = -np.inf
        return out

    def item_vectors(self) -> np.ndarray:
        """(n_items + 1, d) fused item-tower vectors (for diversity measures and MMR)."""
        if self.module_ is None:
            raise HmsparError("pixelrec: item_vectors called before fit")
        with torch.no_grad():
            return self.module_.eval().catalogue().numpy()


"""MTSTRec: one transformer stream per item modality (ID, picture style, text, price) and a
time-aligned shared token per position that fuses the modalities of that position in the last layers.

Layout of the tokens in a batch: ``M`` modality segments of length ``L`` followed (with ``use_token``)
by the shared-token segment. Stream layers let each modality token attend causally within its own
stream only (own weights per stream). Fusion layers follow the mask of :func:`mtst_attention_mask`:
modality tokens keep attending causally within their stream, and the shared token of position ``t``
attends to the ``M`` modality tokens of position ``t`` and to itself, never to another position. The
layers compute exactly this mask's attention in factorised form (per-stream causal attention plus a
small attention per position), which a test checks against the explicit (T, T) mask. The shared token
at the last position is the user state. How it scores the catalogue is ``output``
(:class:`common.CandidateScorer`): ``heads`` (the default) gives the state one linear head per stream, each
scoring that stream's item embedding, and sums the scores, as the paper scores candidates by per-modality
heads, so an item without any training interaction is ranked by its picture, text and price; ``id``
scores by the ID embedding alone (the original code's ID head: content never reaches a candidate);
``sum`` by the summed stream embeddings; ``weighted`` by a learned softmax mix of the per-stream scores.
With ``item_age`` the score of each item adds a learned weight of its age at the last history
interaction (:class:`~hmspar.rec.train.ItemAge`).

Time enters only as the bucketed gap to the *previous* interaction, embedded into every token of a
position; the time of the interaction being predicted is never read. With ``train.request_time: true``
the loop-wide :class:`~hmspar.rec.train.RequestGap` adds the gap to it to the user state (the shared
token's final state, one per position, after the output layer norm), as for every sequential model.

Differences from the public code, on purpose: the style feature of the last item is kept (the
original zeroes it), and the device comes from ``train.device`` (the original hard-codes it). The
picture style is a fixed Gram/colour descriptor of each picture (:func:`common.style_descriptor`) with
a learned projection, instead of VGG Gram features, which need pretrained weights.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures
from hmspar.rec.models.common import (
    CandidateScorer,
    ItemEmbedder,
    MultiStreamBlock,
    check_output,
    add_request_gap,
    gap_bucket,
    gaps,
    request_gap_module,
    small_embedding,
    train_items,
)
from hmspar.rec.train import RecTrainConfig, TorchSeqRecommender, item_age_module

#: MTSTRec's modality switches and the item modality each one controls.
SWITCHES = {"use_style": "image", "use_text": "text", "use_price": "price"}


@dataclasses.dataclass(frozen=True)
class Config:
    """MTSTRec settings (``rec.recommenders.mtstrec``).

    Parameters
    ----------
    inputs : list of str
        Item modalities available to the model, each one stream (``image`` is the picture style).
    use_token : bool
        Fuse streams with the time-aligned shared token; False averages the stream states (late fusion).
    use_style, use_text, use_price : bool
        Switch the picture-style, text and price streams off without editing ``inputs`` (as in the
        original's command line).
    d, heads : int
        Width and attention heads.
    stream_layers, fusion_layers : int
        Layers where streams attend within themselves only, then layers with the shared token.
    dropout : float
    gap_edges : list of float
        Edges (days) of the buckets of the time since the previous interaction, embedded into every
        token of a position.
    output : {"heads", "id", "sum", "weighted"}
        How the user state scores candidates (:data:`common.OUTPUTS`): per-stream heads (the paper's), the
        ID embedding alone (the original code's; needs the ``id`` stream), the summed stream embeddings, or
        a learned softmax mix of the per-stream scores.
    item_age : bool
        Add a learned score of each candidate's age at the last history interaction
        (:class:`~hmspar.rec.train.ItemAge`; arrival = the catalogue date, else the first training interaction).
    train : RecTrainConfig
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id", "image", "text", "price"])
    use_token: bool = True
    use_style: bool = True
    use_text: bool = True
    use_price: bool = True
    d: int = 32
    heads: int = 2
    stream_layers: int = 1
    fusion_layers: int = 1
    dropout: float = 0.2
    gap_edges: list[float] = dataclasses.field(default_factory=lambda: [0.04, 1.0, 7.0, 30.0])
    output: Literal["heads", "id", "sum", "weighted"] = "heads"
    item_age: bool = False
    train: RecTrainConfig = dataclasses.field(default_factory=RecTrainConfig)

    def __post_init__(self) -> None:
        if not self.streams:
            raise ValueError("inputs leave no stream switched on")
        check_output(self.output, self.streams)
        if self.stream_layers < 0 or self.fusion_layers < 0 or self.stream_layers + self.fusion_layers == 0:
            raise ValueError("fusion_layers and stream_layers must be >= 0 with at least one layer")
        if list(self.gap_edges) != sorted(self.gap_edges):
            raise ValueError(f"gap_edges must be increasing, got {self.gap_edges!r}")

    @property
    def streams(self) -> tuple[str, ...]:
        """Modalities with a stream: ``inputs`` minus those switched off."""
        off = {m for sw, m in SWITCHES.items() if not getattr(self, sw)}
        return tuple(m for m in dict.fromkeys(self.inputs) if m not in off)


def mtst_attention_mask(valid: torch.Tensor, n_streams: int, use_token: bool) -> torch.Tensor:
    """Attention mask of MTSTRec's fusion layers (True = may attend).

    Parameters
    ----------
    valid : Tensor
        (B, L) bool item presence.
    n_streams : int
        Number of modality streams ``M``.
    use_token : bool
        Append the shared-token segment.

    Returns
    -------
    Tensor
        (B, T, T) bool with T = (M + use_token) * L: a modality token (m, i) attends to (m, j) for valid
        j <= i and to itself; a shared token (S, i) attends to (m, i) for every m and to itself only.
    """
    B, L = valid.shape
    n_seg = n_streams + int(use_token)
    T = n_seg * L
    idx = torch.arange(T, device=valid.device)
    seg, pos = idx // L, idx % L
    key_valid = valid[:, pos]                                               # (B, T)
    same_seg = seg[:, None] == seg[None, :]
    causal = pos[None, :] <= pos[:, None]
    stream_rows = (seg < n_streams)[:, None]
    allowed = (stream_rows & same_seg & causal)[None] & key_valid[:, None, :]
    if use_token:
        token_rows = (seg == n_streams)[:, None]
        allowed = allowed | (token_rows & (pos[:, None] == pos[None, :]))[None]
    return allowed | torch.eye(T, dtype=torch.bool, device=valid.device)[None]


class MTSTRecNet(nn.Module):
    """The MTSTRec network (see the module docstring)."""

    def __init__(self, embedder: ItemEmbedder, cfg: Config, age: nn.Module | None = None) -> None:
        super().__init__()
        self.embedder = embedder
        self.streams = cfg.streams
        self.use_token = cfg.use_token
        self.edges = tuple(float(e) for e in cfg.gap_edges)
        d, M = cfg.d, len(self.streams)
        self.pos = small_embedding(cfg.train.max_len, d)
        self.stream_type = small_embedding(M, d)
        self.gap_emb = small_embedding(len(self.edges) + 2, d)
        self.token0 = nn.Parameter(nn.init.trunc_normal_(torch.empty(d), std=0.02, a=-0.04, b=0.04))
        self.drop = nn.Dropout(cfg.dropout)
        self.stream_blocks = nn.ModuleList(MultiStreamBlock(M, d, cfg.heads, cfg.dropout)
                                           for _ in range(cfg.stream_layers))
        n_fuse = M + int(cfg.use_token)
        self.fusion_blocks = nn.ModuleList(MultiStreamBlock(n_fuse, d, cfg.heads, cfg.dropout)
                                           for _ in range(cfg.fusion_layers))
        self.ln_out = nn.LayerNorm(d)
        self.request_gap = request_gap_module(cfg, d)                       # None unless train.request_time
        self.scorer = CandidateScorer(cfg.output, self.streams, d, age)      # last: the other inits keep their draws

    def inputs(self, items: torch.Tensor, times: torch.Tensor,
               table: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Initial tokens from the catalogue's modality embeddings ``table`` (m -> (n_items + 1, d)).

        Returns
        -------
        (Tensor, Tensor or None, Tensor)
            stream tokens (B, M, L, d), shared tokens (B, L, d) or None, valid (B, L).
        """
        B, L = items.shape
        valid = items > 0
        prev, _ = gaps(times, valid, None)
        pos = self.pos(torch.arange(L - 1, -1, -1, device=items.device))  # (L, d) most recent = 0
        time_tok = self.gap_emb(gap_bucket(prev, self.edges)) + pos         # (B, L, d)
        # F.embedding rather than table[m][items]: a deterministic backward on the CPU (see pixelrec.py)
        x = torch.stack([F.embedding(items, table[m]) for m in self.streams], 1)  # (B, M, L, d)
        x = x + self.stream_type.weight[None, :, None, :] + time_tok[:, None]
        shared = (self.token0 + time_tok) if self.use_token else None       # (B, L, d)
        return self.drop(x), (self.drop(shared) if shared is not None else None), valid

    def encode(self, x: torch.Tensor, shared: torch.Tensor | None, valid: torch.Tensor,
               explicit_mask: bool = False) -> torch.Tensor:
        """User states at every position.

        Parameters
        ----------
        x : Tensor
            (B, M, L, d) stream tokens.
        shared : Tensor or None
            (B, L, d) initial shared tokens (with ``use_token``).
        valid : Tensor
            (B, L) bool.
        explicit_mask : bool
            Run the fusion layers with the full (T, T) mask of :func:`mtst_attention_mask` instead of
            the equivalent factorised attention (slower; for tests).

        Returns
        -------
        Tensor
            (B, L, d): the shared token's final state, or the mean of the stream states without token.
        """
        B, M, L, d = x.shape
        h = x.reshape(B, M * L, d)                                          # (B, M*L, d)
        for blk in self.stream_blocks:
            h = blk(h, valid)                                               # causal within each stream
        if self.use_token:
            h = torch.cat([h, shared], 1)                                   # (B, (M+1)*L, d)
            mask = mtst_attention_mask(valid, M, True) if explicit_mask else None  # (B, T, T)
            for blk in self.fusion_blocks:
                h = blk(h, valid, mask, token=True)
            out = h.view(B, M + 1, L, d)[:, M]                              # (B, L, d) shared tokens
        else:
            for blk in self.fusion_blocks:
                h = blk(h, valid)
            out = h.view(B, M, L, d).mean(1)                                # (B, L, d)
        return self.ln_out(out)

    def loss(self, items, times, next_items, next_times, generator) -> torch.Tensor:
        """Full-catalogue cross-entropy of the next item at every position (items (B, L)); ``next_times``
        is read only with ``train.request_time``."""
        table = self.embedder.catalogue()                                   # m -> (n_items + 1, d), once
        x, shared, valid = self.inputs(items, times, table)
        h = self.encode(x, shared, valid)                                   # (B, L, d)
        h = add_request_gap(self.request_gap, h, items, times, next_times)
        return self.scorer.loss(h, table, next_items, times)

    def score(self, items, times, target_times) -> torch.Tensor:
        """(B, n_items + 1) scores of the next item after the last position (``target_times`` read only
        with ``train.request_time``)."""
        table = self.embedder.catalogue()
        x, shared, valid = self.inputs(items, times, table)
        h = self.encode(x, shared, valid)[:, -1]                            # (B, d)
        h = add_request_gap(self.request_gap, h, items[:, -1], times[:, -1], target_times)
        return self.scorer(h, table, times[:, -1])


class MTSTRec(TorchSeqRecommender):
    """MTSTRec under the recommender contract (see the module docstring)."""

    Config = Config
    name = "mtstrec"

    def __init__(self, cfg: Config, seed: int = 0) -> None:
        super().__init__(cfg, seed)

    @property
    def uses(self) -> tuple[str, ...]:
        return self.cfg.streams

    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        fit_rows = np.flatnonzero(train_items(train, items.n_items))
        if fit_rows.size == 0:
            raise HmsparError("mtstrec: the training histories hold no item")
        return MTSTRecNet(ItemEmbedder(items, self.cfg.streams, self.cfg.d, fit_rows), self.cfg,
                          item_age_module(self.cfg.item_age, train, items))

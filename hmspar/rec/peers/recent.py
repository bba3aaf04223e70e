"""Recent: a repeat- and session-aware heuristic over the shared features of :mod:`hmspar.rec.peers.features`.

The score of a candidate item is a fixed weighted sum (weights in the config, no fitting beyond the item
statistics)::

    w_rebuy * rebuy_repeat        the user's own, recency-weighted purchases of it, scaled by how often its
                                  buyers buy it again (consumables up, durables down)
  + w_rebuy_new * rebuy_repeat_new  the same when the request opens a new session (re-buys rarely happen
                                  within one)
  + w_seen * seen                 a flat term for items already in the history (a negative weight demotes
                                  durables bought once; 0 by default; moot when the protocol masks seen items)
  + w_session_seen * session_seen items already bought in the current session (negative: rarely bought twice)
  + w_same_cat * same_cat_last    the intent: the last item's category, more so within a session
  + w_same_cat_session * same_cat_session
  + w_cat_share * cat_share       the recent intent: share of the last ``last_k`` items in the item's category
  + w_pop * log_pop + w_recent_pop * recent_pop
  + w_transition * transition     what followed the last item in training

It is a peer against which the sequence models' gains over repeat and session habits can be measured,
needing no fitting. The default weights are round numbers, chosen by a small grid on *validation* NDCG@10 of a
small simulated shop (``hmspar/rec/shop.py``, seed 5, 3000 users, 600 items) and of the tests' tiny logs
(``tests/rec_tiny.py`` and the repeat-and-session log of ``tests/test_rec_feature_peers.py``); no test split was
looked at. ``rec.recommenders.recent`` may override them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.rec.base import Histories, ItemFeatures, Recommender
from hmspar.rec.peers.features import FeatureConfig, ItemStats, linear_scores


@dataclasses.dataclass(frozen=True)
class RecentConfig:
    """``rec.recommenders.recent``: the heuristic's weights (see the module docstring) and the features.

    Attributes
    ----------
    inputs : list of str
        ``id`` and ``category`` (without categories in the data the category terms are 0).
    w_rebuy, w_rebuy_new, w_seen, w_session_seen, w_same_cat, w_same_cat_session : float
        Weights of the terms (see the module docstring).
    w_cat_share, w_pop, w_recent_pop, w_transition : float
        Weights of the terms.
    features : FeatureConfig
        Decay of the repeat weight, re-buy smoothing, ``last_k``, recent window, transition smoothing.
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id", "category"])
    w_rebuy: float = 2.0
    w_rebuy_new: float = 8.0
    w_seen: float = 0.0
    w_session_seen: float = -4.0
    w_same_cat: float = 1.0
    w_same_cat_session: float = 2.0
    w_cat_share: float = 1.0
    w_pop: float = 4.0
    w_recent_pop: float = 0.5
    w_transition: float = 5.0
    features: FeatureConfig = FeatureConfig()


class Recent(Recommender):
    """Repeat- and session-aware heuristic: own re-buys, the last items' categories, popularity, transitions."""

    Config = RecentConfig
    name = "recent"

    def weights(self) -> dict[str, float]:
        """Feature name -> weight."""
        c = self.cfg
        return {"rebuy_repeat": c.w_rebuy, "rebuy_repeat_new": c.w_rebuy_new, "seen": c.w_seen,
                "session_seen": c.w_session_seen,
                "same_cat_last": c.w_same_cat, "same_cat_session": c.w_same_cat_session, "cat_share": c.w_cat_share,
                "log_pop": c.w_pop, "recent_pop": c.w_recent_pop, "transition": c.w_transition}

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "Recent":
        self.n_items = items.n_items
        category = items.category if "category" in self.uses else None
        self.stats_ = ItemStats.fit(train.whole(), items.n_items, category, self.cfg.features)
        return self

    def score(self, histories: Histories) -> np.ndarray:
        return linear_scores(histories, self.stats_, self.weights())

"""Every registered recommender, on a tiny log: the contract of hmspar.rec.base.Recommender.

New entries in hmspar/rec/registry.py are picked up automatically (models with a ``train`` section are
trained for two short passes (8 steps), see ``rec_tiny.tiny_config``).
"""

from __future__ import annotations

import numpy as np
import pytest

from hmspar.rec.base import ITEM_MODALITIES, Recommender
from hmspar.rec.evaluate import accuracy, rank_batched
from hmspar.rec.registry import MULTIMODAL, REGISTRY, module_path, recommender_class
from rec_tiny import tiny_config, tiny_log

NAMES = sorted(REGISTRY)


@pytest.fixture(scope="module")
def data():
    return tiny_log()


@pytest.fixture(scope="module")
def fitted(data):
    models = {}
    for name in NAMES:
        cls = recommender_class(name)
        models[name] = cls(tiny_config(cls), seed=0).fit(data.train, data.items, data.val)
    return models


@pytest.mark.parametrize("name", NAMES)
def test_registered_class_follows_the_contract(name):
    cls = recommender_class(name)
    assert issubclass(cls, Recommender)
    # dvc.yaml's recommend stage depends on hmspar/rec/peers/${item.model}.py, recommend_mm on
    # hmspar/rec/models/${item.model}.py: one file per model
    folder = "models" if name in MULTIMODAL else "peers"
    assert module_path(name) == f"hmspar/rec/{folder}/{name}.py", f"put the model in hmspar/rec/{folder}/<name>.py"
    assert set(cls(tiny_config(cls)).uses) <= set(ITEM_MODALITIES)


@pytest.mark.parametrize("name", NAMES)
def test_scores_cover_the_catalogue(name, data, fitted):
    scores = fitted[name].score(data.test.subset(np.arange(17)))
    assert scores.shape == (17, data.n_items + 1)
    assert np.issubdtype(scores.dtype, np.floating)
    assert np.isfinite(scores[:, 1:]).all()


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_scores_and_save_load(name, data, fitted, tmp_path):
    cls = recommender_class(name)
    again = cls(tiny_config(cls), seed=0).fit(data.train, data.items, data.val)
    h = data.test.subset(np.arange(30))
    np.testing.assert_array_equal(fitted[name].score(h), again.score(h))
    path = tmp_path / f"{name}.pkl"
    fitted[name].save(path)
    np.testing.assert_array_equal(cls.load(path).score(h), fitted[name].score(h))


@pytest.mark.parametrize("name", NAMES)
def test_batch_composition_does_not_change_a_users_scores(name, data, fitted):
    whole = fitted[name].score(data.test.subset(np.arange(40)))
    part = fitted[name].score(data.test.subset(np.arange(10, 20)))
    np.testing.assert_allclose(part, whole[10:20], rtol=1e-5, atol=1e-5)


def test_learning_models_beat_popularity_on_the_structured_log(data, fitted):
    """The tiny log's next item follows a cyclic order: ItemKNN/EASE must see it, MostPop cannot."""
    nd = {n: accuracy(rank_batched(fitted[n].score, data.test)["rank"], [10])["ndcg@10"] for n in fitted}
    assert nd["itemknn"] > nd["mostpop"] + 0.05
    assert nd["ease"] > nd["mostpop"] + 0.05


def test_itemknn_without_shrinkage_scores_unseen_items_zero_not_nan():
    from hmspar.rec.peers.itemknn import ItemKNN, ItemKNNConfig
    from hmspar.rec.data import cooccurrence

    data = tiny_log(n_users=30, n_items=200)
    co = cooccurrence(data.train, data.n_items)
    unseen = np.flatnonzero(np.diag(co)[1:] == 0) + 1
    assert unseen.size > 0                                   # the case under test is present
    model = ItemKNN(ItemKNNConfig(shrink=0.0, neighbours=0), seed=0).fit(data.train, data.items)
    assert np.isfinite(model.sim_).all() and not model.sim_[unseen].any() and not model.sim_[:, unseen].any()
    i, j = np.argwhere(np.triu(co[1:, 1:], 1) > 0)[0] + 1    # a co-bought pair: plain cosine
    assert model.sim_[i, j] == pytest.approx(co[i, j] / np.sqrt(co[i, i] * co[j, j]), rel=1e-6)
    scores = model.score(data.test.subset(np.arange(10)))
    assert np.isfinite(scores).all()
    with pytest.raises(ValueError, match="shrink must be 0 or positive"):
        ItemKNNConfig(shrink=-1.0)

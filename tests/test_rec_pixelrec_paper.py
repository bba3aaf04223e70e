"""The seed-004 recommender as published (hmspar/rec/models/pixelrec_paper.py): a pointwise user-item scorer.

What is checked: the ranking path (item projections once per catalogue, pairs in chunks) gives the same logits
as the network's own forward pass; unseen items and users map to the zero ID row and a cold item is scored
from its content; gradients reach every parameter; each switch changes what the model reads; bad settings and
files fail with errors that name the key or file; the fit is reproducible and learns the tiny log's structure.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hmspar.config import build  # noqa: E402
from hmspar.errors import HmsparError  # noqa: E402
from hmspar.rec.base import Histories  # noqa: E402
from hmspar.rec.evaluate import ndcg, rank_batched  # noqa: E402
from hmspar.rec.models import pixelrec_paper  # noqa: E402
from hmspar.rec.models.pixelrec_paper import PixelRecPaper  # noqa: E402
from rec_tiny import assert_cold_item_follows_its_content, assert_seeded, tiny_log, without_items  # noqa: E402

TRAIN = {"max_steps": 200, "min_steps": 0, "eval_every": 50, "batch_size": 64, "eval_batch_size": 64,
         "device": "cpu", "patience": 2, "num_threads": 1, "lr": 0.003}


def make(seed: int = 0, **over) -> PixelRecPaper:
    # no dropout: the source's 0.3 slows learning on a log this small (200 steps: val NDCG@10 0.15 against 0.42)
    section = {"d": 16, "heads": 2, "fusion_hidden": [32, 16], "dropout": 0.0, "attention_dropout": 0.0,
               "train": TRAIN, **over}
    return PixelRecPaper(build(pixelrec_paper.Config, section, "rec.recommenders.pixelrec_paper"), seed=seed)


@pytest.fixture(scope="module")
def data():
    return tiny_log(n_users=120, n_items=40)


@pytest.fixture(scope="module")
def fitted(data):
    return make().fit(data.train, data.items, data.val)


def test_ranking_path_equals_the_forward_pass(data, fitted):
    h = data.test.subset(np.arange(7))
    scores = fitted.score(h)
    net = fitted.module_.eval()
    users = torch.from_numpy(fitted._user_rows(h.users, len(h)))
    items = torch.arange(1, data.n_items + 1)
    with torch.no_grad():
        for b in range(len(h)):
            direct = net(users[b].repeat(items.numel()), items, torch.from_numpy(fitted.item_ids_)[items])
            np.testing.assert_allclose(scores[b, 1:], direct.numpy(), rtol=1e-5, atol=1e-5)
    assert np.isneginf(scores[:, 0]).all()
    # the chunk size is a memory setting only
    small = make(score_chunk=7).fit(data.train, data.items, data.val)
    np.testing.assert_allclose(small.score(h), scores, rtol=1e-5, atol=1e-6)


def test_ranking_path_without_ids_equals_the_forward_pass(data):
    model = make(inputs=["image", "text", "price"], heads=4, train={**TRAIN, "max_steps": 10}).fit(data.train, data.items)
    h = data.test.subset(np.arange(3))
    items = torch.arange(1, data.n_items + 1)
    with torch.no_grad():
        direct = model.module_.eval()(torch.zeros_like(items), items, torch.zeros_like(items))
    np.testing.assert_allclose(model.score(h)[:, 1:], np.repeat(direct.numpy()[None], 3, 0), rtol=1e-5, atol=1e-5)


def test_same_seed_same_bytes_and_seed_changes_them(data):
    assert_seeded(make, data)


def test_learns_the_tiny_log(data, fitted):
    """Users walk one category each: after training, the items of a user's own category outrank the others
    (the untrained network ranks at chance)."""
    h = data.test
    scores = fitted.score(h)
    own = data.items.category[np.asarray(h.items)[:, -1]]
    same = data.items.category[None, 1:] == own[:, None]
    mean_same, mean_other = scores[:, 1:][same].mean(), scores[:, 1:][~same].mean()
    assert mean_same > mean_other + 0.5
    test_ndcg = ndcg(rank_batched(fitted.score, h)["rank"], 10).mean()
    assert test_ndcg > 0.2  # chance: about 0.07 for 40 items


def test_unseen_items_and_users_take_the_zero_id_row_and_a_cold_item_is_scored_by_content(data):
    # drop every interaction with items 1 and 2 from training: they become new items
    model = make(train={**TRAIN, "max_steps": 10}).fit(without_items(data.train, [1, 2]), data.items, None)
    assert model.item_ids_[1] == 0 and model.item_ids_[2] == 0 and model.item_ids_[3] == 3
    assert torch.count_nonzero(model.module_.item_emb.weight[0]) == 0
    # a cold item's score moves with its content (the standardised texts of items 1 and 3 swapped); the user's
    # ID is what a pointwise scorer reads of the history, so any history will do
    assert_cold_item_follows_its_content(model, data.test, model.module_.text)
    # a user without training interactions maps to row 0 and still gets finite scores
    h = data.test.subset(np.arange(5))
    unknown = Histories(np.asarray(h.items), np.asarray(h.times), users=np.array([10_000, 0, 1, 2, 3]))
    rows = model._user_rows(unknown.users, 5)
    assert rows[0] == 0 and (rows[1:] > 0).all()
    assert np.isfinite(model.score(unknown)[:, 1:]).all()


def test_gradients_reach_every_parameter(data):
    model = make()
    model.users_ = np.unique(np.asarray(data.train.users))
    net = model.build_module(data.train, data.items)
    net.train()
    users = torch.arange(1, 33)
    cand = torch.arange(1, 33)
    logits = net(users, cand, torch.from_numpy(model.item_ids_)[cand])
    torch.nn.functional.binary_cross_entropy_with_logits(logits, (torch.arange(32) % 2).float()).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


@pytest.mark.parametrize("inputs, tokens", [(["id", "image", "text", "price"], 5), (["image", "text"], 2),
                                            (["id", "text"], 3)])
def test_inputs_switch_the_tokens(data, inputs, tokens):
    model = make(inputs=inputs)
    model.users_ = np.unique(np.asarray(data.train.users))
    net = model.build_module(data.train, data.items)
    assert net.n_tokens == tokens
    assert hasattr(net, "user_emb") == ("id" in inputs)
    assert hasattr(net, "vision") == ("image" in inputs) and hasattr(net, "price") == ("price" in inputs)


def test_without_ids_every_user_gets_the_same_ranking(data):
    model = make(inputs=["image", "text", "price"], train={**TRAIN, "max_steps": 10}).fit(data.train, data.items)
    s = model.score(data.test.subset(np.arange(6)))
    np.testing.assert_array_equal(s, np.repeat(s[:1], 6, 0))


def test_vision_features_file(data, tmp_path):
    n_rows = data.n_items + 1
    with pytest.raises(HmsparError, match="vision_features: no file at"):
        make(vision="weights", vision_features=str(tmp_path / "absent.npy")).build_module(data.train, data.items)
    np.save(tmp_path / "bad.npy", np.zeros((n_rows - 1, 4), np.float32))
    with pytest.raises(HmsparError, match=r"vision_features: .*bad.npy.* must be a numeric"):
        make(vision="weights", vision_features=str(tmp_path / "bad.npy")).build_module(data.train, data.items)
    feats = np.random.default_rng(0).normal(size=(n_rows, 6)).astype(np.float32)
    np.save(tmp_path / "good.npy", feats)
    net = make(vision="weights", vision_features=str(tmp_path / "good.npy")).build_module(data.train, data.items)
    assert tuple(net.vision.shape) == (n_rows, 6)
    # the descriptor is the default: 88 fixed style features
    assert tuple(make().build_module(data.train, data.items).vision.shape) == (n_rows, 88)


@pytest.mark.parametrize("switch", [{"id_dropout": 0.5}, {"n_negatives": 2}, {"batch_norm": False}])
def test_each_switch_changes_the_model(data, fitted, switch):
    h = data.test.subset(np.arange(10))
    other = make(**switch).fit(data.train, data.items, data.val)
    assert not np.array_equal(other.score(h), fitted.score(h))


def test_train_item_negatives_never_draw_an_unseen_item(data, monkeypatch):
    """With negatives: train_items the loss never sees an item without training interactions (when every
    item occurs in training, the two draws are the same by construction)."""
    train = without_items(data.train, [1, 2, 3])
    seen: list[torch.Tensor] = []
    original = pixelrec_paper.PointwiseNet.forward

    def spy(self, users, items, item_ids):
        seen.append(items.detach().clone())
        return original(self, users, items, item_ids)

    monkeypatch.setattr(pixelrec_paper.PointwiseNet, "forward", spy)
    make(negatives="train_items", train={**TRAIN, "max_steps": 20}).fit(train, data.items)
    drawn = torch.cat(seen)
    assert drawn.numel() > 1000 and not torch.isin(drawn, torch.tensor([1, 2, 3])).any()
    seen.clear()
    make(train={**TRAIN, "max_steps": 20}).fit(train, data.items)     # the published draw: the whole catalogue
    assert torch.isin(torch.cat(seen), torch.tensor([1, 2, 3])).any()


@pytest.mark.parametrize("section, message", [
    ({"inputs": ["id", "category"]}, r"pixelrec_paper.inputs: must be a non-empty list"),
    ({"d": 10, "heads": 4}, r"pixelrec_paper.d: must be a positive multiple of heads"),
    ({"fusion_hidden": []}, r"pixelrec_paper.fusion_hidden: must be a non-empty list"),
    ({"vision": "weights"}, r"pixelrec_paper.vision_features: must name a local .npy file"),
    ({"dropout": 1.0}, r"pixelrec_paper.dropout: must be in"),
    ({"n_negatives": 0}, r"pixelrec_paper.n_negatives: must be a positive integer"),
    ({"negatives": "all"}, r"pixelrec_paper.negatives: expected one of"),
    ({"id_dropout": 1.5}, r"pixelrec_paper.id_dropout: must be in"),
    ({"hiden": [8]}, "hiden"),
])
def test_bad_settings_name_the_key(section, message):
    with pytest.raises(HmsparError, match=message):
        build(pixelrec_paper.Config, section, "rec.recommenders.pixelrec_paper")


def test_histories_without_users_are_refused(data, fitted):
    h = data.test.subset(np.arange(3))
    with pytest.raises(HmsparError, match="carry no user indices"):
        fitted.score(Histories(np.asarray(h.items), np.asarray(h.times)))
    with pytest.raises(HmsparError, match="training histories carry no user indices"):
        make().fit(Histories(np.asarray(data.train.items), np.asarray(data.train.times)), data.items)

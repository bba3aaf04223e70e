"""ATHWE as published (hmspar/rec/models/athwe_paper.py) and the prefix examples it trains on.

What is checked: prefix examples hold one transition each with nothing after it; the wavelet along time
reconstructs exactly and mixes later positions into earlier ones (why only prefixes may be trained); a user's
scores do not depend on the rest of its batch; the experts' diversity loss equals its definition; gradients
reach every expert and auxiliary head (and none reach frozen experts); a cold item is scored by its content;
each switch changes what the model says; k-medoids finds separated clusters; bad settings name the key; the
fit is reproducible and learns the tiny log.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hmspar.config import build  # noqa: E402
from hmspar.errors import HmsparError  # noqa: E402
from hmspar.rec.base import Sequences  # noqa: E402
from hmspar.rec.evaluate import ndcg, rank_batched  # noqa: E402
from hmspar.rec.models import athwe_paper  # noqa: E402
from hmspar.rec.models.athwe_paper import ATHWEPaper, ScalingMoE, TimeWaveletFusion, kmedoids  # noqa: E402
from hmspar.rec.train import training_prefixes  # noqa: E402
from rec_tiny import (  # noqa: E402
    assert_cold_item_follows_its_content,
    assert_seeded,
    assert_switch_changes_scores,
    tiny_log,
    without_items,
)

TRAIN = {"windows": "prefixes", "max_steps": 150, "min_steps": 0, "eval_every": 50, "batch_size": 64,
         "eval_batch_size": 64, "device": "cpu", "patience": 2, "num_threads": 1, "lr": 0.005, "max_len": 12}


def make(seed: int = 0, **over) -> ATHWEPaper:
    train = {**TRAIN, **over.pop("train", {})}
    section = {"d": 16, "heads": 2, "layers": 1, "dropout": 0.1, "levels": 2, "n_clusters": 4, "train": train, **over}
    return ATHWEPaper(build(athwe_paper.Config, section, "rec.recommenders.athwe_paper"), seed=seed)


@pytest.fixture(scope="module")
def data():
    return tiny_log(n_users=120, n_items=40)


@pytest.fixture(scope="module")
def fitted(data):
    return make().fit(data.train, data.items, data.val)


def prefix_batch(data, n: int = 48, max_len: int = 12):
    pre = training_prefixes(data.train.whole(), max_len)
    it, tm, tg = pre.batch(np.arange(n))
    return torch.from_numpy(it[:, :-1]), torch.from_numpy(tm[:, :-1]), torch.from_numpy(tg[:, 1:])


# ---------------------------------------------------------------- prefix examples
def test_prefixes_hold_one_transition_each_and_nothing_after_it():
    seqs = Sequences(np.array([5, 6, 7, 8, 1, 2, 9]), np.arange(7.0), np.array([0, 4, 5, 7]))  # lengths 4, 1, 2
    pre = training_prefixes(seqs, max_len=2)
    assert len(pre) == 3 + 0 + 1                                         # one per transition
    items, times, targets = pre.batch(np.arange(len(pre)))
    # user 0 newest first: [6 7 | 8], [5 6 | 7], [. 5 | 6]; user 2: [. 2 | 9]
    np.testing.assert_array_equal(items, [[6, 7, 8], [5, 6, 7], [0, 5, 6], [0, 2, 9]])
    np.testing.assert_array_equal(targets, [[0, 0, 8], [0, 0, 7], [0, 0, 6], [0, 0, 9]])
    np.testing.assert_array_equal(times[0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(pre.lengths, [3, 3, 2, 2])
    np.testing.assert_array_equal(pre.user, [0, 0, 0, 2])
    # a batch is as wide as its longest example: nothing but padding is added
    it, _, _ = pre.batch(np.array([2, 3]))
    assert it.shape == (2, 2)


def test_the_loss_refuses_examples_with_earlier_targets(data, fitted):
    items, times, targets = prefix_batch(data)
    targets = targets.clone()
    targets[:, 0] = items[:, 0]
    with pytest.raises(HmsparError, match="set train.windows: prefixes"):
        fitted.module_.loss(items, times, targets, None, torch.Generator())


# ---------------------------------------------------------------- the wavelet along time
def test_time_wavelet_reconstructs_exactly_and_mixes_bands_linearly():
    """With zero gates every sigmoid is 1/2, so each target's fused coefficients are half the sum over sources:
    the inverse DWT must then give half the sum of the inputs (exact reconstruction through every band)."""
    torch.manual_seed(0)
    fusion = TimeWaveletFusion(3, 8, 16, "db4", 3, [0.1, 1.0, 1.0])
    with torch.no_grad():
        fusion.gates.zero_()
    x = torch.randn(2, 3, 16, 8, dtype=torch.float32)
    expected = (0.5 * x.sum(1, keepdim=True) - x) * torch.tensor([0.1, 1.0, 1.0])[None, :, None, None]
    torch.testing.assert_close(fusion(x), expected, rtol=1e-5, atol=1e-5)
    W = fusion.dwt.W
    torch.testing.assert_close(W @ W.T, torch.eye(16), rtol=0, atol=1e-6)


def test_time_wavelet_on_touched_coefficients_only_equals_the_dense_mix():
    """Given where the (left-padded) histories are valid, the gates run only on coefficients whose filter touches
    a valid position: the same output as the dense mix, the same gradients to float rounding, and fewer
    coefficients gated on short histories."""
    torch.manual_seed(0)
    fusion = TimeWaveletFusion(3, 8, 32, "db4", 3, [0.1, 1.0, 1.0])
    with torch.no_grad():
        fusion.gates.normal_(0, 0.5)
    lengths = torch.tensor([1, 3, 7, 32, 12, 0])
    valid = torch.arange(32)[None, :] >= (32 - lengths)[:, None]
    x = torch.randn(6, 3, 32, 8) * valid[:, None, :, None]
    dense_x, sparse_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    dense, sparse = fusion(dense_x), fusion(sparse_x, valid)
    torch.testing.assert_close(sparse, dense, rtol=1e-6, atol=1e-6)
    assert sparse[5].abs().max() == 0                                    # an empty history stays zero
    dense.square().sum().backward()
    grad_dense = fusion.gates.grad.clone()
    fusion.gates.grad = None
    sparse.square().sum().backward()
    torch.testing.assert_close(fusion.gates.grad, grad_dense, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sparse_x.grad, dense_x.grad, rtol=1e-5, atol=1e-5)
    touched = ((fusion.dwt.W != 0).float() @ valid.float().T > 0).T      # (B, T)
    assert touched[3].all() and not touched[5].any() and touched[0].sum() < touched[2].sum() < 32
    # a coefficient left out is exactly zero in the dense transform: nothing is dropped
    c = torch.matmul(fusion.dwt.W, x)
    assert c.permute(0, 2, 1, 3)[~touched].abs().max() == 0


def test_time_wavelet_is_two_sided_so_only_prefixes_may_be_trained():
    torch.manual_seed(0)
    fusion = TimeWaveletFusion(2, 4, 16, "db4", 2, [1.0, 1.0])
    x = torch.randn(1, 2, 16, 4)
    later = x.clone()
    later[:, :, 12] += 1.0                                               # change position 12 only
    moved = (fusion(later) - fusion(x)).abs().sum((0, 1, 3))
    assert moved[:12].max() > 1e-3                                       # earlier positions see it
    with pytest.raises(HmsparError, match="train.windows must be 'prefixes'"):
        make(train={"windows": "all"})


def test_a_users_scores_do_not_depend_on_its_batch(data, fitted):
    """Fixed frame: the periodic DWT sees the same padding whatever the batch's longest history."""
    h = data.test
    lengths = (np.asarray(h.items) > 0).sum(1)
    short, long = int(np.argmin(lengths)), int(np.argmax(lengths))
    assert lengths[short] < lengths[long]
    alone = fitted.score(h.subset(np.array([short])))
    beside = fitted.score(h.subset(np.array([short, long])))[:1]
    np.testing.assert_allclose(alone, beside, rtol=1e-5, atol=1e-5)


def test_encoders_in_length_groups_at_the_last_position_equal_the_whole_batch(data, fitted):
    """The encoders run a batch in length groups, each on its own columns, and their last block at the last
    position only: the states equal those of every block run on the whole batch, read at the last position."""
    net = fitted.module_.eval()
    items, times, _ = prefix_batch(data, n=48)
    assert len(set((items > 0).sum(1).tolist())) > athwe_paper.LENGTH_GROUPS   # the groups differ in length
    with torch.no_grad():
        enc = net.encode(items, times)
        x, valid = enc["experts"], enc["valid"]
        B, M, T, d = x.shape
        h = torch.stack([ln(x[:, i]) for i, ln in enumerate(net.in_ln)], 1).reshape(B, M * T, d)
        for blk in net.blocks:
            h = blk(h, valid)
        whole = h.view(B, M, T, d)[:, :, -1]
        torch.testing.assert_close(enc["states"], whole, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(net.streams(x, valid), whole, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- experts
def test_diversity_loss_is_the_mean_cosine_between_the_experts_outputs():
    torch.manual_seed(0)
    moe = ScalingMoE(6, 1, 4, 2, trainable=True)
    x, routing = torch.randn(3, 5, 6), torch.randn(3, 5, 6)
    valid = torch.rand(3, 5) > 0.3
    out = moe(x, routing, valid)
    flat = torch.stack([(x[valid] * e).reshape(-1) for e in moe.routed])  # (E, N*C) outputs on valid tokens
    cos = torch.nn.functional.normalize(flat, dim=1) @ torch.nn.functional.normalize(flat, dim=1).T
    expected = (cos.sum() - cos.diagonal().sum()) / 12
    torch.testing.assert_close(moe.diversity, expected, rtol=1e-5, atol=1e-6)
    # each position is the input scaled by the shared expert plus its top-k routed experts
    probs = torch.softmax(moe.router(routing), -1)
    p, i = probs.topk(2, -1)
    scale = moe.shared.sum(0) + (p / p.sum(-1, keepdim=True))[..., None].mul(moe.routed[i]).sum(-2)
    torch.testing.assert_close(out, x * scale, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("train_experts", [True, False])
def test_gradients_reach_every_expert_and_auxiliary_head(data, train_experts):
    model = make(train_experts=train_experts)
    net = model.build_module(data.train, data.items).train()
    items, times, targets = prefix_batch(data)
    net.loss(items, times, targets, None, torch.Generator().manual_seed(0)).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
    names = dict(net.named_parameters())
    assert ("moe.routed" in names) == train_experts and ("moe.shared" in names) == train_experts
    for head in ("attr_head.weight", "cluster_head.text.weight", "cluster_head.image.weight",
                 "placeholder.text.weight", "placeholder.image.weight", "fusion.gates", "route.weight"):
        assert head in names


# ---------------------------------------------------------------- content and switches
def test_a_cold_item_is_scored_by_its_content(data):
    model = make(train={"max_steps": 20}).fit(without_items(data.train, [1, 2]), data.items, None)
    assert_cold_item_follows_its_content(model, data.test, model.module_.raw_text)
    weights = torch.softmax(model.module_.fusion_weights, 0)
    assert weights.shape == (3,) and torch.all(weights > 0.05)


def test_time_mask_counts(data):
    valid = torch.zeros(3, 20, dtype=torch.bool)
    valid[0, -10:] = True
    valid[1, -4:] = True
    valid[2, -20:] = True
    gen = torch.Generator().manual_seed(0)
    rate = make().build_module(data.train, data.items).time_mask(valid, gen)
    assert rate.sum(1).tolist() == [2, 0, 4] and not (rate & ~valid).any()
    source = make(mask_count="source").build_module(data.train, data.items).time_mask(valid, gen)
    assert not source.any()                                              # the source's floor(0.2) = 0


@pytest.mark.parametrize("switch", [{"fusion": "none"}, {"train_experts": False}, {"mask_count": "source"},
                                    {"idcl_weight": 0.0}, {"attr_weight": 0.0}, {"cluster_weight": 0.0},
                                    {"tcl_weight": 0.0}, {"diversity_weight": 0.0}, {"inputs": ["id", "text"]}])
def test_each_switch_changes_the_model(data, switch):
    assert_switch_changes_scores(make, data, switch)


def test_same_seed_same_bytes_and_seed_changes_them(data):
    assert_seeded(make, data)


def test_learns_the_tiny_log(data, fitted):
    test_ndcg = ndcg(rank_batched(fitted.score, data.test)["rank"], 10).mean()
    assert test_ndcg > 0.2                                               # chance: about 0.07 for 40 items
    assert fitted.report_["best_val_ndcg@10"] > 0.2


# ---------------------------------------------------------------- clusters and settings
def test_kmedoids_finds_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(scale=0.5, size=(30, 2)) for c in centres])
    med = kmedoids(x, 3, np.random.default_rng(1))
    assert sorted(int(m) // 30 for m in med) == [0, 1, 2]                # one medoid per blob, each a member
    np.testing.assert_array_equal(kmedoids(x, 3, np.random.default_rng(1)), med)
    with pytest.raises(HmsparError, match="kmedoids"):
        kmedoids(x[:2], 3, rng)


@pytest.mark.parametrize("section, message", [
    ({"train": {"windows": "last"}}, r"athwe_paper: train.windows must be 'prefixes'"),
    ({"train": {"windows": "prefixes", "request_time": True}}, r"athwe_paper: train.request_time must be false"),
    ({"inputs": ["id", "price"]}, r"athwe_paper.inputs: must be distinct names"),
    ({"top_k": 9}, r"athwe_paper.top_k: must be between 1 and n_routed_experts"),
    ({"wavelet": "sym4"}, r"athwe_paper.wavelet"),
    ({"mask_count": "all"}, r"athwe_paper.mask_count"),
    ({"vision": "weights"}, r"athwe_paper.vision_features: must name a local .npy file"),
    ({"d": 10, "heads": 4}, r"athwe_paper.d: .*divisible by heads"),
    ({"levels": 0}, r"athwe_paper.levels: must be a positive integer"),
    ({"wavlet": "db4"}, "wavlet"),
])
def test_bad_settings_name_the_key(section, message):
    with pytest.raises(HmsparError, match=message):
        build(athwe_paper.Config, section, "rec.recommenders.athwe_paper")

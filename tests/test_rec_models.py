"""Tests of the multimodal recommenders (MTSTRec, ATHWE, PixelRec-style two-tower), their building
blocks (wavelet transform, attention masks, experts) and MMR re-ranking, on a tiny synthetic log."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hmspar.config import build  # noqa: E402
from hmspar.errors import HmsparError  # noqa: E402
from hmspar.rec.base import Histories, Recommender  # noqa: E402
from hmspar.rec.models import athwe, common, mtstrec, pixelrec  # noqa: E402
from hmspar.rec.models.common import DWT, band_index, dwt_matrix  # noqa: E402
from hmspar.rec.rerank import intra_list_diversity, mmr, mmr_tradeoff, plot_mmr_tradeoff, top_k  # noqa: E402
from hmspar.rec.toy import leave_one_out, toy_log  # noqa: E402
from hmspar.rec.train import validation_ndcg  # noqa: E402

# num_threads 1 keeps these fits fast; refits are bitwise equal at 2 threads as well since the item rows are
# gathered with F.embedding (tests/test_every_model_bytes.py reproduces the models at the defaults' 2 threads)
SMALL_TRAIN = {"max_steps": 6, "min_steps": 0, "eval_every": 3, "batch_size": 64, "eval_batch_size": 128,
               "max_len": 20, "device": "cpu", "patience": 2, "num_threads": 1}
MODELS = {
    "mtstrec": (mtstrec.MTSTRec, {"d": 16, "train": SMALL_TRAIN}),
    "athwe": (athwe.ATHWE, {"d": 16, "expert_hidden": 16, "train": SMALL_TRAIN}),
    "pixelrec": (pixelrec.PixelRecTwoTower, {"d": 16, "cnn_channels": [4, 8], "n_negatives": 16,
                                              "train": SMALL_TRAIN}),
}


@pytest.fixture(scope="module")
def log():
    seqs, times, items = toy_log(n_users=160, n_items=60, mean_len=9, seed=3, cold_fraction=0.2)
    train, val, test = leave_one_out(seqs, times)
    return train, val, test, items


def make(name: str, seed: int = 0, **over) -> Recommender:
    cls, section = MODELS[name]
    section = {**section, **over}
    return cls(build(cls.Config, section, f"rec.recommenders.{name}"), seed=seed)


@pytest.fixture(scope="module")
def fitted(log):
    train, val, _, items = log
    return {name: make(name).fit(train, items, val) for name in MODELS}


# ---------------------------------------------------------------- contract: shape, determinism, save/load
@pytest.mark.parametrize("name", list(MODELS))
def test_scores_shape_finite_and_deterministic(name, log, fitted):
    train, val, test, items = log
    s = fitted[name].score(test)
    assert s.shape == (len(test), items.n_items + 1) and s.dtype == np.float32
    assert np.isfinite(s[:, 1:]).all() and np.isneginf(s[:, 0]).all()
    again = make(name).fit(train, items, val).score(test)
    np.testing.assert_array_equal(s, again)
    other = make(name, seed=1).fit(train, items, val).score(test)
    assert not np.allclose(s, other)
    assert fitted[name].history_ and all(np.isfinite(h["loss"]) for h in fitted[name].history_)
    assert fitted[name].report_["steps_run"] == fitted[name].history_[-1]["step"]


@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_gives_same_scores(name, log, fitted, tmp_path):
    _, _, test, _ = log
    path = tmp_path / f"{name}.pkl"
    fitted[name].save(path)
    loaded = type(fitted[name]).load(path)
    np.testing.assert_array_equal(loaded.score(test), fitted[name].score(test))


@pytest.mark.parametrize("name", list(MODELS))
def test_models_beat_random_ranking(name, log, fitted):
    """After a few passes every model ranks validation targets far better than chance."""
    _, val, _, items = log
    ndcg = validation_ndcg(fitted[name].score, val, 512)
    chance = np.mean([1 / np.log2(r + 2) for r in range(10)]) * 10 / items.n_items
    assert ndcg > 1.5 * chance, (name, ndcg, chance)


def test_score_before_fit_and_fit_without_pairs_raise(log):
    _, val, _, items = log
    with pytest.raises(HmsparError, match="before fit"):
        make("mtstrec").score(val)
    one = Histories(np.array([[0, 3], [0, 5]]), np.array([[0.0, 1.0], [0.0, 2.0]]))
    with pytest.raises(HmsparError, match="two or more interactions"):
        make("athwe").fit(one, items)


def test_early_stopping_keeps_the_best_evaluation(log):
    train, val, _, items = log
    model = make("mtstrec", train={**SMALL_TRAIN, "max_steps": 18, "patience": 1})
    model.fit(train, items, val)
    scores = [h["val_ndcg@10"] for h in model.history_]
    assert model.best_step_ == model.history_[int(np.argmax(scores))]["step"]
    kept = validation_ndcg(model.score, val, 512)
    assert kept == pytest.approx(max(scores))


# ---------------------------------------------------------------- configs
def test_config_errors_name_the_key():
    with pytest.raises(HmsparError, match=r"rec.recommenders.athwe.n_experts: unknown key"):
        build(athwe.Config, {"n_experts": 3}, "rec.recommenders.athwe")
    with pytest.raises(HmsparError, match=r"rec.recommenders.athwe.levels: must be >= 1 with d=48"):
        build(athwe.Config, {"d": 48, "levels": 5}, "rec.recommenders.athwe")
    with pytest.raises(HmsparError, match=r"rec.recommenders.mtstrec.train.max_len: expected an integer"):
        build(mtstrec.Config, {"train": {"max_len": "50"}}, "rec.recommenders.mtstrec")
    with pytest.raises(HmsparError, match=r"pixelrec.fusion: expected one of"):
        build(pixelrec.Config, {"fusion": "sum"}, "pixelrec")
    with pytest.raises(HmsparError, match="unknown item modality 'audio'"):
        make("athwe", inputs=["id", "audio"])


def test_mtstrec_switches_select_streams():
    cfg = build(mtstrec.Config, {"use_text": False, "use_price": False}, "m")
    assert cfg.streams == ("id", "image")
    with pytest.raises(HmsparError, match="no stream"):
        build(mtstrec.Config, {"inputs": ["text"], "use_text": False}, "m")


def test_missing_picture_weights_give_a_clear_error(log, tmp_path):
    train, val, _, items = log
    model = make("pixelrec", image_weights=str(tmp_path / "absent.pt"))
    with pytest.raises(HmsparError, match=r"image_weights: no file at .*absent\.pt"):
        model.fit(train, items, val)
    # a state dict of the same CNN loads and is used as the starting point
    cnn = pixelrec.PictureCNN([4, 8], 16)
    torch.save(cnn.state_dict(), tmp_path / "cnn.pt")
    net = make("pixelrec", image_weights=str(tmp_path / "cnn.pt")).build_module(train, items)
    torch.testing.assert_close(net.tower.cnn.head.weight, cnn.head.weight)
    torch.save({"bad": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(HmsparError, match="not a state dict of this picture CNN"):
        make("pixelrec", image_weights=str(tmp_path / "bad.pt")).build_module(train, items)


# ---------------------------------------------------------------- MTSTRec: the shared token's attention
def test_mtstrec_mask_shared_token_attends_within_its_position():
    valid = torch.tensor([[False, True, True, True]])
    M, L = 3, 4
    mask = mtstrec.mtst_attention_mask(valid, M, use_token=True)[0]
    assert mask.shape == (16, 16)
    for i in range(L):
        row = mask[M * L + i]
        allowed = {int(j) for j in torch.nonzero(row)}
        assert allowed == {m * L + i for m in range(M + 1)}
    # modality tokens: causal within their own stream, valid keys (plus themselves)
    for m in range(M):
        for i in range(L):
            allowed = {int(j) for j in torch.nonzero(mask[m * L + i])}
            expect = {m * L + j for j in range(L) if j <= i and bool(valid[0, j])} | {m * L + i}
            assert allowed == expect


def test_mtstrec_factorised_fusion_equals_the_explicit_mask(log):
    """The fusion layers' fast attention computes exactly the attention of the explicit (T, T) mask."""
    net = _mtst_net(log, stream_layers=1, fusion_layers=2, dropout=0.0)
    g = torch.Generator().manual_seed(2)
    B, M, L, d = 3, len(net.streams), 6, 16
    x = torch.randn(B, M, L, d, generator=g)
    shared = torch.randn(B, L, d, generator=g)
    valid = torch.tensor([[True] * 6, [False, False, True, True, True, True], [False] * 5 + [True]])
    fast = net.encode(x, shared, valid)
    slow = net.encode(x, shared, valid, explicit_mask=True)
    torch.testing.assert_close(fast[valid], slow[valid], atol=1e-5, rtol=1e-5)


def _mtst_net(log, **over):
    train, _, _, items = log
    model = make("mtstrec", **over)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = model.build_module(train, items).eval()
    return net


def test_mtstrec_shared_token_sees_only_its_position(log):
    """With one fusion layer and no stream layer, the shared token at t depends on the modality tokens
    at t only: changing every other position's modality tokens leaves it unchanged."""
    net = _mtst_net(log, stream_layers=0, fusion_layers=1, dropout=0.0)
    B, M, L, d = 3, len(net.streams), 6, 16
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, M, L, d, generator=g)
    shared = torch.randn(B, L, d, generator=g)
    valid = torch.ones(B, L, dtype=torch.bool)
    t = 3
    base = net.encode(x, shared, valid)
    x2 = x.clone()
    others = [s for s in range(L) if s != t]
    x2[:, :, others] += torch.randn(B, M, len(others), d, generator=g)
    shared2 = shared.clone()
    shared2[:, others] += torch.randn(B, len(others), d, generator=g)
    out = net.encode(x2, shared2, valid)
    torch.testing.assert_close(out[:, t], base[:, t])
    assert not torch.allclose(out[:, t + 1], base[:, t + 1])
    x3 = x.clone()
    x3[:, 1, t] += torch.randn(B, d, generator=g)                           # another modality, same position
    assert not torch.allclose(net.encode(x3, shared, valid)[:, t], base[:, t])


def test_mtstrec_is_causal_and_ignores_other_shared_tokens(log):
    """With stream layers, the state at t ignores later positions of every modality and the shared
    tokens of all other positions."""
    net = _mtst_net(log, stream_layers=1, fusion_layers=2, dropout=0.0)
    B, M, L, d = 2, len(net.streams), 7, 16
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, M, L, d, generator=g)
    shared = torch.randn(B, L, d, generator=g)
    valid = torch.ones(B, L, dtype=torch.bool)
    base = net.encode(x, shared, valid)
    t = 4
    x2 = x.clone()
    x2[:, :, t + 1:] += torch.randn(B, M, L - t - 1, d, generator=g)
    shared2 = shared.clone()
    shared2[:, [s for s in range(L) if s != t]] += torch.randn(B, L - 1, d, generator=g)
    torch.testing.assert_close(net.encode(x2, shared2, valid)[:, t], base[:, t])
    x3 = x.clone()
    x3[:, 2, t - 2] += torch.randn(B, d, generator=g)                       # earlier item of one stream
    assert not torch.allclose(net.encode(x3, shared, valid)[:, t], base[:, t])


def test_mtstrec_keeps_the_last_items_style(log):
    """The last item's picture style reaches the score (the public code zeroes it)."""
    train, _, _, items = log
    net = _mtst_net(log, dropout=0.0)
    it = torch.tensor([[5, 7, 9]])
    tm = torch.tensor([[1.0, 2.0, 3.0]])
    base = net.score(it, tm, torch.tensor([4.0]))
    net.embedder.style[9] = torch.randn(net.embedder.style.shape[1], generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(net.score(it, tm, torch.tensor([4.0])), base)


# ---------------------------------------------------------------- ATHWE: experts, wavelets, InfoNCE
def test_athwe_gradients_reach_every_expert(log):
    train, _, _, items = log
    model = make("athwe", n_shared_experts=2, n_routed_experts=4, top_k=2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = model.build_module(train, items).train()
    expert_params = {id(p) for e in (*net.moe.shared, *net.moe.routed) for p in e.parameters()}
    assert expert_params <= {id(p) for p in net.parameters()}              # registered, so optimised
    it = torch.from_numpy(train.items[:64, -12:])
    tm = torch.from_numpy(train.times[:64, -12:].astype(np.float32))
    loss = net.loss(it[:, :-1], tm[:, :-1], it[:, 1:], tm[:, 1:], torch.Generator())
    loss.backward()
    for e, expert in enumerate((*net.moe.shared, *net.moe.routed)):
        grads = [p.grad for p in expert.parameters()]
        assert all(g is not None for g in grads), e
        assert sum(float(g.abs().sum()) for g in grads) > 0, e
    assert net.moe.router.weight.grad.abs().sum() > 0                      # balance loss trains the router
    assert net.moe.bucket_route.weight.grad.abs().sum() > 0


def test_athwe_routing_depends_on_the_gap_bucket(log):
    train, _, _, items = log
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = make("athwe", dropout=0.0).build_module(train, items).eval()
    it = torch.tensor([[4, 8, 15]])
    tm = torch.tensor([[1.0, 2.0, 3.0]])
    target = torch.tensor([3.01])
    soon = net.score(it, tm, target)                                        # last gap 1 day
    late = net.score(it, torch.tensor([[1.0, 2.0, 90.0]]), target)          # last gap 88 days: another bucket
    assert not torch.allclose(soon, late)
    torch.testing.assert_close(net.score(it, tm, torch.tensor([90.0])), soon)  # the request's time is unused


def test_dwt_matches_hand_computed_haar_values():
    W = dwt_matrix(4, "haar", 1)
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(W @ np.array([1.0, 2.0, 3.0, 4.0]), [3 * r, 7 * r, -r, -r])
    W2 = dwt_matrix(4, "haar", 2)
    np.testing.assert_allclose(W2 @ np.array([1.0, 2.0, 3.0, 4.0]), [5.0, -2.0, -r, -r])
    np.testing.assert_array_equal(band_index(8, 2), [0, 0, 1, 1, 2, 2, 2, 2])


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_dwt_is_orthogonal_and_inverts(wavelet):
    W = dwt_matrix(16, wavelet, 3)
    np.testing.assert_allclose(W @ W.T, np.eye(16), atol=1e-12)
    dwt = DWT(16, wavelet, 3)
    x = torch.randn(2, 5, 16, requires_grad=True)
    torch.testing.assert_close(dwt.inverse(dwt(x)), x, atol=1e-5, rtol=1e-5)
    dwt(x).pow(2).sum().backward()                                         # differentiable
    torch.testing.assert_close(x.grad, 2 * x.detach(), atol=1e-4, rtol=1e-4)


def test_db2_details_vanish_on_a_linear_signal():
    c = dwt_matrix(8, "db2", 1) @ np.arange(8.0)
    np.testing.assert_allclose(c[4:7], 0.0, atol=1e-12)                    # all but the wrap-around one


def test_dwt_errors():
    with pytest.raises(HmsparError, match="unknown wavelet 'sym4'"):
        dwt_matrix(8, "sym4", 1)
    with pytest.raises(HmsparError, match="length 12 is not divisible by 2\\*\\*3"):
        dwt_matrix(12, "haar", 3)


def test_info_nce_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(32, 8, generator=g)
    aligned = common.info_nce(a, a + 0.01 * torch.randn(32, 8, generator=g), 0.2)
    shuffled = common.info_nce(a, a[torch.randperm(32, generator=g)], 0.2)
    assert float(aligned) < float(shuffled)
    assert float(aligned) > 0


def test_gap_buckets():
    b = common.gap_bucket(torch.tensor([float("nan"), 0.0, 0.5, 2.0, 100.0]), (1.0, 7.0))
    assert b.tolist() == [0, 1, 1, 2, 3]


# ---------------------------------------------------------------- two-tower: cold items from content
def test_two_tower_scores_cold_items_from_content(log, fitted):
    train, _, test, items = log
    model = fitted["pixelrec"]
    cold = np.flatnonzero(~common.train_items(train, items.n_items))[1:]   # items never seen in training
    assert cold.size >= 3
    s = model.score(test)[:, cold]
    assert np.isfinite(s).all()
    assert np.std(s, axis=1).min() > 1e-4                                  # differ between cold items
    assert np.std(s, axis=0).max() > 1e-4                                  # and between users
    # content alone decides: changing one cold item's picture changes its score only
    changed = dataclasses.replace(items, image=items.image.copy())
    changed.image[cold[0]] = 255 - changed.image[cold[0]]
    net = model.module_
    # the tower's picture buffer may share memory with the fixture's arrays: keep a copy to restore from
    # (restoring from items.image would write the changed picture back into the shared fixture)
    original = net.tower.image[cold[0]].clone()
    net.tower.image[cold[0]] = torch.from_numpy(changed.image[cold[0]])
    try:
        s2 = model.score(test)
    finally:
        net.tower.image[cold[0]] = original
    assert not np.allclose(s2[:, cold[0]], s[:, 0])
    np.testing.assert_allclose(s2[:, cold[1:]], s[:, 1:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_two_tower_fusions_train(fusion, log):
    train, val, test, items = log
    model = make("pixelrec", fusion=fusion, train={**SMALL_TRAIN, "max_steps": 3})
    s = model.fit(train, items, val).score(test)
    assert np.isfinite(s[:, 1:]).all() and np.std(s[:, 1:]) > 0
    assert model.item_vectors().shape == (items.n_items + 1, 16)


# ---------------------------------------------------------------- MMR re-ranking
def test_mmr_with_lambda_one_equals_plain_ranking():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 120))
    scores[:, 0] = -np.inf
    scores[:, 7] = scores[:, 3]                                            # ties break by index
    scores[:5, 10:20] = -np.inf                                            # excluded (seen) items
    emb = rng.normal(size=(120, 6))
    plain = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(top_k(scores, 10), plain)
    np.testing.assert_array_equal(mmr(scores, emb, k=10, lam=1.0, n_candidates=50), plain)


def test_mmr_trades_accuracy_for_diversity():
    rng = np.random.default_rng(1)
    # two clusters of items; the best-scored items all sit in cluster 0
    emb = np.concatenate([rng.normal([5, 0], 0.1, (50, 2)), rng.normal([0, 5], 0.1, (50, 2))])
    scores = np.concatenate([rng.uniform(1, 2, (20, 50)), rng.uniform(0, 1, (20, 50))], axis=1)
    plain = mmr(scores, emb, 10, 1.0)
    diverse = mmr(scores, emb, 10, 0.3)
    assert (plain < 50).all()
    assert (diverse >= 50).any(axis=1).all()
    assert intra_list_diversity(diverse, emb) > intra_list_diversity(plain, emb) + 0.1
    assert not np.isin(mmr(np.where(np.arange(100) < 45, -np.inf, scores), emb, 10, 0.3),
                       np.arange(45)).any()                                # excluded items never listed
    with pytest.raises(HmsparError, match="lambda must be in"):
        mmr(scores, emb, 10, 1.5)


def test_mmr_tradeoff_rows_and_plot(tmp_path):
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(30, 80))
    targets = top_k(scores, 1)[:, 0]
    rows = mmr_tradeoff(scores, targets, rng.normal(size=(80, 4)), lambdas=(1.0, 0.5, 0.0))
    assert [r["lambda"] for r in rows] == [1.0, 0.5, 0.0]
    assert rows[0]["ndcg"] == pytest.approx(1.0)
    assert rows[-1]["ild"] >= rows[0]["ild"]
    plot_mmr_tradeoff(rows, tmp_path / "mmr.png")
    assert (tmp_path / "mmr.png").stat().st_size > 1000


def test_scores_from_stored_topk_rerank_like_the_full_scores():
    from hmspar.rec.rerank import scores_from_topk

    rng = np.random.default_rng(3)
    full = rng.normal(size=(12, 41))
    full[:, 0] = -np.inf
    emb = rng.normal(size=(41, 5))
    lists = top_k(full, 20)
    stored = scores_from_topk(lists, np.take_along_axis(full, lists, 1), 40)
    np.testing.assert_array_equal(mmr(stored, emb, 10, 0.5, n_candidates=20), mmr(full, emb, 10, 0.5, n_candidates=20))


# ---------------------------------------------------------------- length groups and last-position blocks
def test_length_groups_partition_the_batch_shortest_first():
    valid = torch.zeros(7, 6, dtype=torch.bool)
    for row, n in enumerate([5, 1, 3, 6, 2, 2, 4]):
        valid[row, 6 - n:] = True
    groups = common.length_groups(valid, 3)
    assert [len(g) for g in groups] == [3, 2, 2]                         # equal counts, as near as possible
    order = torch.cat(groups)
    assert sorted(order.tolist()) == list(range(7))                       # a permutation of the rows
    assert valid.sum(1)[order].tolist() == [1, 2, 2, 3, 4, 5, 6]         # shortest first, ties in row order
    assert order[1:3].tolist() == [4, 5]
    assert len(common.length_groups(valid[:2], 4)) == 2                  # never an empty group
    assert torch.equal(common.length_groups(valid, 1)[0], order)
    with pytest.raises(HmsparError, match="n_groups must be at least 1"):
        common.length_groups(valid, 0)
    assert common.cut_padding(valid[[1, 4]]) == 4                        # lengths 1 and 2: columns 0-3 padding
    assert common.cut_padding(torch.zeros(2, 5, dtype=torch.bool)) == 4


@pytest.mark.parametrize("rand_dropout", [False, True])
def test_a_block_at_the_last_position_equals_the_last_column_of_its_whole_output(rand_dropout):
    torch.manual_seed(0)
    blk = common.MultiStreamBlock(3, 8, 2, 0.3, ff_mult=4, rand_dropout=rand_dropout).eval()
    B, L = 4, 5
    valid = torch.zeros(B, L, dtype=torch.bool)
    for row, n in enumerate([5, 2, 1, 4]):
        valid[row, L - n:] = True
    x = torch.randn(B, 3 * L, 8)
    with torch.no_grad():
        whole = blk(x, valid).view(B, 3, L, 8)[:, :, -1]
        torch.testing.assert_close(blk(x, valid, last=True), whole, rtol=1e-6, atol=1e-6)
    with pytest.raises(HmsparError, match="last=True needs causal segments"):
        blk(x, valid, token=True, last=True)
    # training: dropout draws, with rand_dropout from torch.rand_like, are seeded by the global generator
    blk.train()
    with torch.random.fork_rng():
        torch.manual_seed(3)
        a = blk(x, valid)
        torch.manual_seed(3)
        b = blk(x, valid)
    assert torch.equal(a, b) and not torch.equal(a, blk.eval()(x, valid))

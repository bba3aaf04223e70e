"""Every example the README shows runs as written (issue 28).

The examples are read from the pages themselves (``README.md`` and any ``docs/**/*.md``), so an example written
later is covered as soon as it is on the page:

* every fenced block carries a tag: ``yaml`` (a ``params.yaml`` fragment), ``bash``/``sh`` (commands, one a
  line, ``# comments`` allowed), ``console`` (``$ command`` lines, each followed by the output it must print)
  or ``text`` (not an example: a layout tree, a data flow); an untagged fence fails;
* a *command* is a ``bash``/``sh`` line, a ``console`` ``$`` line, or an inline code span that starts like one
  (``dvc ...``, ``python ...``, ``pip ...``, ``apt-get ...``). Each distinct command must be listed in
  ``COMMANDS`` with how it is checked, and ``COMMANDS`` may list nothing the pages no longer show.

How a command is checked (the first item of its ``COMMANDS`` entry):

``run``       executed as written in a copy of the repository as a clone has it (``clone``: the committed
              ``params.yaml``, metrics, plots and ``dvc.lock``; no DVC-cached outputs), exit status 0; a
              ``console`` block's output must match; ``AFTER_RUN`` adds a check for some commands.
``exp-run``   ``dvc exp run -S key=value`` retrains models (minutes to hours): every key exists in
              ``params.yaml`` with a value of the same kind, every name in a list value is declared in
              ``params.yaml``, and DVC resolves ``dvc.yaml`` with every override applied (``dvc stage list``).
``repro``     ``dvc repro [stage]`` (two hours on the default params): DVC resolves every stage and the named
              stage exists; ``tests/test_pipeline.py`` runs the real ``dvc repro`` on the tiny profile.
``parse``     DVC's own argument parser accepts it; not run, the entry says why.
``search``    ``python -m hmspar.search`` (a trial fits a model): its parser accepts the flags (``...`` stands for
              the runs and models of the line above) and the runs and models it names exist.
``module``    ``python -m benchmarks....`` (minutes of measurement): the module's parser accepts the arguments.
``covered``   run by another test, named in the entry (with a string that test's file must contain).
``ci``        the test command: ``.ci/run`` runs the same line.
``pins``      ``pip install -r requirements.txt``: every pinned version is the installed one.
``external``  installs a system or opt-in package: the code that uses it names the same package.
``mention``   prose naming a command shown in full elsewhere (with a placeholder): the full form is listed too.

Every ``dvc`` command except a ``mention`` must also pass DVC's argument parser. The clone tests (marked slow)
take about 35 s on two busy cores, a few seconds per ``dvc`` call; the rest about 2 s.

YAML blocks are merged into the tiny profile (``tests/params_tiny.yaml``) and validated by the lab's own code;
an ``imports`` entry is then imported by the library (``hmspar.pipeline.data.generate``, the first half of the
``import@`` stage) from a stand-in made of a shipped example file (``STAND_INS``), placed at the path the
example names.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TINY_PARAMS, project_files, run

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TAGS = {"yaml", "bash", "sh", "console", "text"}
COMMAND_START = re.compile(r"(dvc|python|pip|apt-get)\s")

#: Every command the pages show -> (how it is checked, detail). See the module docstring.
COMMANDS: dict[str, tuple[str, object]] = {
    # Set up and run
    "pip install -r requirements.txt": ("pins", None),
    "dvc repro": ("repro", None),
    "python -m pytest": ("ci", None),
    "python -m pytest -m extended": ("ci", None),
    "apt-get install chromium": ("external", ("tests/test_report_browser.py", 'shutil.which("chromium")')),
    "python -m benchmarks.stage_deps": ("covered", ("tests/test_dependencies.py", "from benchmarks.stage_deps import")),
    "python -m benchmarks.stage_deps --write": ("covered", ("tests/test_dependencies.py", "generate(ROOT)")),
    "python -m stages.import_data <name>": ("covered", ("tests/test_pipeline_byod.py",
                                                        '"python", "-m", "stages.import_data", "example_shop"')),
    "dvc status": ("parse", "hashes every dependency of the two-hour pipeline (about 20 s on a clone); "
                            "tests/test_pipeline.py runs it on the tiny profile"),
    # Models, report, rec track
    "dvc exp run -S baseline_models.sequence=[lstm,cnn1d,transformer] -S baseline_models.time_moe=[time_moe]":
        ("exp-run", None),
    "pip install tabpfn": ("external", ("hmspar/models/baselines/foundation.py", 'package = "tabpfn"')),
    "python -m hmspar.report.page": ("run", None),
    "python -m hmspar.quicklook": ("covered", ("tests/test_quicklook.py", "quicklook.build(ROOT")),
    "dvc plots show": ("run", None),
    "python -m hmspar.search --track rec": ("search", None),
    "python -m hmspar.search --track rec --runs fashion --write": ("search", None),
    "python -m benchmarks.bench_rec_models": ("module", None),
    "python -m benchmarks.rec_variants": ("module", None),
    "python -m benchmarks.rec_variants --jobs fashion:mtstrec_paper:full_catalogue:0,1,2 --peers sasrec ranker "
    "mostpop --no-main": ("module", None),
    "python -m benchmarks.rec_variants --jobs fashion:gru4rec:dropout_0.5:0,1,2 --peers sasrec ranker mostpop":
        ("module", None),
    "python -m benchmarks.rec_variants --jobs fashion:recent:shared:0,1,2 fashion:ranker:shared:0,1,2 "
    "fashion:ease:shared:0,1,2 fashion:itemknn:shared:0,1,2 --peers sasrec": ("module", None),
    "python -m benchmarks.bench_heap": ("module", None),
    "python -m benchmarks.bench_step": ("module", None),
    "python -m benchmarks.bench_image": ("module", None),
    "python -m benchmarks.rec_partial --dataset fashion": ("module", None),
    "python -m benchmarks.picture_probe": ("module", None),
    "dvc exp run -S rec.ablation.models=[mtstrec,athwe,pixelrec]": ("exp-run", None),
    "dvc exp run -S rec.multimodal_models=[mtstrec,athwe,pixelrec,pixelrec_paper]": ("exp-run", None),
    "dvc exp run -S rec.recommenders.mtstrec.use_token=false": ("exp-run", None),
    "dvc exp run -S rec.recommenders.sasrec.train.request_time=true": ("exp-run", None),
    "dvc exp run -S rec.recommenders.sasrec.train.lr=0.002": ("exp-run", None),
    "dvc repro rec_evaluate": ("repro", None),
    "dvc repro evaluate": ("repro", None),
    "dvc exp run -S rec.ablation.seeds=[0,1,2]": ("exp-run", None),
    # Reproduce and experiment
    "dvc exp run -S train.lr=0.001": ("exp-run", None),
    "dvc exp run -S model.modalities=[series,text]": ("exp-run", None),
    "dvc exp show --only-changed": ("run", None),
    "dvc metrics diff": ("run", None),
    "dvc plots diff": ("run", None),
    "dvc exp run --queue -S train.lr=0.0003,0.001,0.003": ("exp-run", None),
    "dvc queue start -j 2": ("parse", "starts queue workers that run the queued trainings"),
    "dvc exp show --sort-by metrics/headline.json:hmspar_auc": ("run", None),
    "dvc exp show": ("mention", "dvc exp show --only-changed"),
    "dvc exp show --sort-by ...": ("mention", "dvc exp show --sort-by metrics/headline.json:hmspar_auc"),
    "dvc metrics show": ("run", None),
    "python -m hmspar.search --runs sales_weekly-sales_risk --models hmspar,lightgbm --trials 20": ("search", None),
    "python -m hmspar.search": ("search", None),
    "python -m hmspar.search ... --write": ("search", None),
    "python -m hmspar.search ... --resume": ("search", None),
    "dvc queue start -j N": ("mention", "dvc queue start -j 2"),
    "python -m benchmarks.bench_threads": ("module", None),
    "python -m benchmarks.bench_minirocket_reference": ("module", None),
    "python -m benchmarks.bench_small models 0 --profile two_50x150": ("covered", ("benchmarks/bench_small.py",
                                                                                  '"two_50x150": {')),
    "python -m benchmarks.bench_contention": ("module", None),
    "python -m benchmarks.bench_queue": ("module", None),
    "dvc remote add -d local /path/to/dvc-storage": ("run", None),
    "dvc push": ("parse", "uploads the DVC-cached outputs of a reproduced pipeline; a clone has none"),
    "dvc pull": ("parse", "downloads them from a remote that holds them; the test has none"),
}

#: Parts of a ``run`` command that name the user's own place, replaced in the clone.
RUN_SUBSTITUTES = {"/path/to/dvc-storage": "{tmp}/dvc-storage"}

#: A file a YAML example names that the user brings -> (the shipped example file it is made from, how).
STAND_INS = {
    "data/external/my_shop.csv": ("data/external/example_shop.csv", "copy"),  # the same column names
    "data/external/my_series.tsv": ("data/external/example_series.tsv", "drop header"),  # the example: header: false
    "data/external/my_series_split.csv": ("data/external/example_series.tsv", "train/test split"),
}
#: Values of a YAML example that depend on the user's file, replaced for the stand-in: dotted key -> (value, why).
STAND_IN_VALUES = {
    "imports.my_shop.cutoff": ("2023-09-30", "the example's 2011-09-30 lies before the shipped log "
                                             "(2022-09 to 2023-12); it is still validated as written"),
}


# ----------------------------------------------------------------------------------------------------------
# Reading the pages
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence
    tag: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def fenced_blocks(doc: Path) -> list[Block]:
    blocks, lines = [], doc.read_text().splitlines()
    start = None
    for i, line in enumerate(lines):
        if not line.startswith("```"):
            continue
        if start is None:
            start, tag = i, line[3:].strip()
        else:
            blocks.append(Block(doc, start + 1, tag, "\n".join(lines[start + 1:i])))
            start = None
    assert start is None, f"{doc}:{start + 1}: fence never closed"
    return blocks


def normalise(line: str) -> list[str]:
    """The commands of one shell line (``&&`` separates them), each as its words joined by one space."""
    words = shlex.split(line, comments=True)
    commands, current = [], []
    for word in [*words, "&&"]:
        if word == "&&":
            if current:
                commands.append(" ".join(current))
            current = []
        else:
            current.append(word)
    return commands


def console_commands(block: Block) -> list[tuple[str, str]]:
    """``(command, expected output)`` of each ``$`` line of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            assert out, f"{block.where}: a console block starts with a '$ ' line"
            out[-1][1].append(line)
    return [(cmd, "\n".join(lines)) for cmd, lines in out]


def inline_commands(doc: Path) -> list[tuple[int, str]]:
    """Inline code spans outside fenced blocks that start like a command, with their line numbers."""
    lines, inside = [], False
    for line in doc.read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
            lines.append("")
        else:
            lines.append("" if inside else line)
    body = "\n".join(lines)
    found = []
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", body):
        span = " ".join(match.group(1).split())
        if COMMAND_START.match(span + " "):
            found += [(body.count("\n", 0, match.start()) + 1, cmd) for cmd in normalise(span)]
    return found


def all_commands() -> dict[str, list[str]]:
    """Every command on the pages -> where it appears."""
    found: dict[str, list[str]] = {}
    for doc in DOCS:
        for block in fenced_blocks(doc):
            if block.tag in ("bash", "sh"):
                text = block.text.replace("\\\n", " ")
                for line in text.splitlines():
                    for cmd in normalise(line):
                        found.setdefault(cmd, []).append(block.where)
            elif block.tag == "console":
                for line, _ in console_commands(block):
                    for cmd in normalise(line):
                        found.setdefault(cmd, []).append(block.where)
        for line, cmd in inline_commands(doc):
            found.setdefault(cmd, []).append(f"{doc.relative_to(ROOT)}:{line}")
    return found


def expected_outputs() -> dict[str, str]:
    return {" ".join(normalise(cmd)): out for doc in DOCS for block in fenced_blocks(doc)
            if block.tag == "console" for cmd, out in console_commands(block)}


FOUND = all_commands()


def shown(how: str) -> list[str]:
    return [cmd for cmd in FOUND if COMMANDS.get(cmd, ("",))[0] == how]


# ----------------------------------------------------------------------------------------------------------
# The pages and the table
# ----------------------------------------------------------------------------------------------------------


def test_every_fence_is_tagged():
    for doc in DOCS:
        for block in fenced_blocks(doc):
            assert block.tag in TAGS, (f"{block.where}: tag the fence with one of {sorted(TAGS)} "
                                       f"(text for anything that is not an example)")


def test_every_command_on_the_pages_is_classified_and_the_table_lists_no_other():
    unclassified = {cmd: where for cmd, where in FOUND.items() if cmd not in COMMANDS}
    assert not unclassified, f"add these commands to COMMANDS with how they are checked: {unclassified}"
    gone = sorted(set(COMMANDS) - set(FOUND))
    assert not gone, f"COMMANDS lists commands the pages no longer show: {gone}"
    for cmd, (how, detail) in COMMANDS.items():
        assert how in {"run", "exp-run", "repro", "parse", "search", "module", "covered", "ci", "pins",
                       "external", "mention"}, cmd
        if how == "mention":
            assert detail in COMMANDS and COMMANDS[detail][0] != "mention", cmd
    for cmd in expected_outputs():
        assert COMMANDS[cmd][0] == "run", f"{cmd}: a console block's command is run and its output compared"


@pytest.mark.parametrize("cmd", [c for c in FOUND if c.startswith("dvc ") and COMMANDS.get(c, ("",))[0] != "mention"])
def test_dvc_accepts_the_arguments(cmd):
    from dvc.cli import parse_args

    args = parse_args(shlex.split(cmd)[1:])
    assert callable(getattr(args, "func", None)), cmd


# ----------------------------------------------------------------------------------------------------------
# Commands run in a clone
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The repository as a clone has it: every tracked (and untracked, not ignored) file, committed."""
    dest = tmp_path_factory.mktemp("clone")
    for rel in project_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "clone"], dest)
    return dest


def restore(clone: Path) -> None:
    run(["git", "checkout", "-q", "--", "."], clone)
    run(["git", "clean", "-fdq"], clone)


def _metrics_diff_prepare(clone: Path) -> None:
    """An experiment's effect: two classification numbers and one rec number change in the workspace."""
    path = clone / "metrics/headline.json"
    headline = json.loads(path.read_text())
    headline["hmspar_auc"] = round(headline["hmspar_auc"] + 0.01, 4)
    headline["auc_delta"] = round(headline["auc_delta"] + 0.01, 4)
    path.write_text(json.dumps(headline, indent=2, sort_keys=True) + "\n")
    path = clone / "metrics/rec_headline.json"
    rec = json.loads(path.read_text())
    rec["ndcg@10"]["shop"] = round(rec["ndcg@10"]["shop"] + 0.002, 4)
    path.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")


def _metrics_diff_check(clone: Path, out: str) -> None:
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert sorted(r[1] for r in rows) == ["auc_delta", "hmspar_auc", "ndcg@10.shop"], out
    assert max(map(len, out.splitlines())) <= 100, out


def _narrow_table(clone: Path, out: str) -> None:
    header = out.splitlines()[0].split()
    # a few columns per file: three classification numbers and one per rec dataset (three: about 136 wide)
    assert len(header) <= 10 and max(map(len, out.splitlines())) <= 140, out


def _sort_key_exists(clone: Path, out: str, cmd: str) -> None:
    target = cmd.split("--sort-by ", 1)[1].split()[0]
    path, key = target.split(":", 1)
    data = json.loads((clone / path).read_text())
    for part in key.split("."):
        assert isinstance(data, dict) and part in data, f"{cmd}: no key {key!r} in {path}"
        data = data[part]


def _file_written(rel: str):
    def check(clone: Path, out: str) -> None:
        assert (clone / rel).is_file(), rel
    return check


def _default_remote(clone: Path, out: str) -> None:
    assert run(["dvc", "remote", "default"], clone).stdout.strip() == "local"


#: Extra preparation and checks of some ``run`` commands.
PREPARE = {"dvc metrics diff": _metrics_diff_prepare}
AFTER_RUN = {
    "dvc metrics show": _narrow_table,
    "dvc metrics diff": _metrics_diff_check,
    "python -m hmspar.report.page": _file_written("report/index.html"),
    "dvc plots show": _file_written("dvc_plots/index.html"),
    "dvc plots diff": _file_written("dvc_plots/index.html"),
    "dvc remote add -d local /path/to/dvc-storage": _default_remote,
}


@pytest.mark.slow
@pytest.mark.parametrize("cmd", shown("run"))
def test_run_in_a_clone(clone, tmp_path, cmd):
    argv = shlex.split(cmd)
    for placeholder, value in RUN_SUBSTITUTES.items():
        argv = [w.replace(placeholder, value.format(tmp=tmp_path)) for w in argv]
    try:
        if cmd in PREPARE:
            PREPARE[cmd](clone)
        proc = run(argv, clone, check=False)
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        expected = expected_outputs().get(cmd)
        if expected is not None:
            got = [line.rstrip() for line in proc.stdout.strip("\n").splitlines()]
            assert got == [line.rstrip() for line in expected.splitlines()], f"{cmd} prints:\n{proc.stdout}"
        if cmd in AFTER_RUN:
            AFTER_RUN[cmd](clone, proc.stdout)
        if "--sort-by " in cmd:
            _sort_key_exists(clone, proc.stdout, cmd)
    finally:
        restore(clone)


# ----------------------------------------------------------------------------------------------------------
# Commands checked by a proxy
# ----------------------------------------------------------------------------------------------------------


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _overrides(cmd: str) -> list[tuple[str, list]]:
    """``-S key=value`` pairs of a ``dvc exp run`` line: value choices as YAML (``a,b,c`` outside brackets is a
    sweep, as DVC reads it)."""
    words, out = shlex.split(cmd), []
    for flag, setting in zip(words, words[1:]):
        if flag in ("-S", "--set-param"):
            key, value = setting.split("=", 1)
            choices = value.split(",") if "," in value and value[0] not in "[{" else [value]
            out.append((key, [yaml.safe_load(c) for c in choices]))
    assert out, f"{cmd}: no -S override"
    return out


def _declared_names(node) -> set[str]:
    """Every mapping key and string list item in ``params.yaml`` (models, modalities, datasets, ...)."""
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            names.add(str(key))
            names |= _declared_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= {item} if isinstance(item, str) else _declared_names(item)
    return names


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _stage_names(clone: Path) -> list[str]:
    out = run(["dvc", "stage", "list", "--name-only"], clone).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def default_stages(clone) -> list[str]:
    return _stage_names(clone)


@pytest.fixture(scope="module")
def stages_with_every_override(clone) -> list[str]:
    """``dvc stage list`` with every ``-S`` override of the pages applied at once (first choice of a sweep)."""
    params = _params()
    for cmd in shown("exp-run"):
        for key, choices in _overrides(cmd):
            *parents, leaf = key.split(".")
            node = params
            for part in parents:
                node = node[part]
            node[leaf] = choices[0]
    try:
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        return _stage_names(clone)
    finally:
        restore(clone)


@pytest.mark.slow
@pytest.mark.parametrize("cmd", shown("exp-run"))
def test_exp_run_overrides_exist_and_resolve(cmd, stages_with_every_override):
    params, names = _params(), _declared_names(_params())
    for key, choices in _overrides(cmd):
        node = params
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{cmd}: {key} is not in params.yaml"
            node = node[part]
        for value in choices:
            assert node is None or _kind(value) == _kind(node), f"{cmd}: {key}={value!r}, params.yaml has {node!r}"
            unknown = [v for v in (value if isinstance(value, list) else []) if isinstance(v, str) and v not in names]
            assert not unknown, f"{cmd}: {unknown} not declared in params.yaml"
        if key.startswith("baseline_models."):  # DVC makes one stage per dataset and model of the family
            family = key.split(".")[1]
            for model in choices[0]:
                assert any(s.startswith(f"baseline_{family}@") and s.endswith(f"-{model}")
                           for s in stages_with_every_override), f"{cmd}: no baseline_{family}@...-{model} stage"
    assert stages_with_every_override


@pytest.mark.slow
@pytest.mark.parametrize("cmd", shown("repro"))
def test_repro_targets_exist(cmd, default_stages):
    assert len(default_stages) > 20  # DVC resolved every foreach/matrix group of the default params
    groups = {s.split("@")[0] for s in default_stages}
    for target in [w for w in shlex.split(cmd)[2:] if not w.startswith("-")]:
        assert target in default_stages or target in groups, f"{cmd}: no stage {target!r}"


class _Parsed(Exception):
    pass


def parse_only(main, argv: list[str], monkeypatch) -> argparse.Namespace:
    """Call an argparse ``main(argv)`` up to its ``parse_args`` and return the namespace (nothing runs)."""
    original = argparse.ArgumentParser.parse_args

    def parse(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse)
        try:
            main(argv)
        except _Parsed as done:
            return done.args[0]
    raise AssertionError(f"{main.__module__}.main never parsed its arguments")


@pytest.mark.parametrize("cmd", shown("search"))
def test_search_arguments(cmd, monkeypatch):
    from hmspar import search

    argv = [w for w in shlex.split(cmd)[3:] if w != "..."]
    args = parse_only(search.main, argv, monkeypatch)
    params = _params()
    if args.track == "rec":
        runs, models = set(params["rec"]["datasets"]), set(params["rec"]["recommenders"])
    else:
        runs = {run for group in params["runs"].values() for run in group}
        models = {"hmspar", *params["baselines"]}
    for value, known in ((args.runs, runs), (args.models, models)):
        assert not value or set(value.split(",")) <= known, f"{cmd}: {value} not in params.yaml"


@pytest.mark.parametrize("cmd", shown("module"))
def test_module_arguments(cmd, monkeypatch):
    words = shlex.split(cmd)
    module = importlib.import_module(words[2])
    parse_only(module.main, words[3:], monkeypatch)


@pytest.mark.parametrize("cmd", shown("covered") + shown("external"))
def test_covered_elsewhere(cmd):
    path, needle = COMMANDS[cmd][1]
    assert needle in (ROOT / path).read_text(), f"{cmd}: {path} no longer has {needle!r}"


def test_the_test_command_is_what_ci_runs():
    for cmd in shown("ci"):
        assert cmd in (ROOT / ".ci/run").read_text().splitlines(), cmd


def test_pinned_requirements_are_installed():
    import importlib.metadata

    from packaging.requirements import Requirement

    assert shown("pins")
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        version = importlib.metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), f"{req}: installed {version}"


# ----------------------------------------------------------------------------------------------------------
# YAML examples
# ----------------------------------------------------------------------------------------------------------


YAML_BLOCKS = [b for doc in DOCS for b in fenced_blocks(doc) if b.tag == "yaml"]


def _dates(node, where: str = "") -> list[str]:
    if isinstance(node, datetime.date):
        return [where]
    if isinstance(node, dict):
        return [w for k, v in node.items() for w in _dates(v, f"{where}.{k}".lstrip("."))]
    if isinstance(node, list):
        return [w for i, v in enumerate(node) for w in _dates(v, f"{where}[{i}]")]
    return []


def _validate(params: dict, fragment: dict, tmp_path: Path) -> None:
    """The lab's own checks of every section the fragment touches (as the stages that read them run them)."""
    from hmspar.data.generators import dataset_config
    from hmspar.params import load_params
    from hmspar.pipeline import check_runs, dataset_section

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    load_params(path)  # unknown top-level keys
    validators = {
        "datasets": lambda: [dataset_config(n, dataset_section(params, n)) for n in fragment["datasets"]],
        "imports": lambda: [dataset_config(n, dataset_section(params, n)) for n in fragment["imports"]],
        "runs": lambda: check_runs(params),
        "hmspar_runs": lambda: check_runs(params),
        "rec": lambda: _validate_rec(fragment["rec"]),
    }
    for section in fragment:
        assert section in validators, f"no check for a '{section}' example yet: add one to _validate"
        validators[section]()


def _validate_rec(fragment: dict) -> None:
    """Every recommender the fragment sets builds on every rec dataset of the default params with it merged (the
    default's datasets: an example names the shipped ones, which the tiny profile does not all have)."""
    from hmspar.pipeline import deep_merge
    from hmspar.rec.registry import build_recommender
    from hmspar.rec.runner import recommender_section

    params = deep_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), {"rec": fragment})
    for model in fragment.get("recommenders") or {}:
        for dataset in params["rec"]["datasets"]:
            build_recommender(model, recommender_section(params, model, dataset), 0)


def _stand_in(rel: str, dest: Path) -> None:
    source, how = STAND_INS[rel]
    text = (ROOT / source).read_text()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if how == "copy":
        dest.write_text(text)
    elif how == "drop header":
        dest.write_text(text.split("\n", 1)[1])
    elif how == "train/test split":
        ids = [line.split("\t", 1)[0] for line in text.splitlines()[1:] if line]
        dest.write_text("id,split\n" + "".join(f"{i},{'test' if k % 4 == 0 else 'train'}\n"
                                               for k, i in enumerate(ids)))
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[b.where for b in YAML_BLOCKS])
def test_yaml_example_is_valid_and_imports(block, tmp_path, monkeypatch):
    from hmspar.params import TOP_LEVEL_KEYS
    from hmspar.pipeline import deep_merge
    from hmspar.pipeline.data import generate

    fragment = yaml.safe_load(block.text)
    assert isinstance(fragment, dict) and set(fragment) <= set(TOP_LEVEL_KEYS), (
        f"{block.where}: not a params.yaml fragment (tag the block text if it is not an example)")
    dates = _dates(fragment)
    assert not dates, f"{block.where}: quote the dates at {dates}: DVC cannot hash a YAML date"
    params = deep_merge(yaml.safe_load(TINY_PARAMS.read_text()), fragment)
    _validate(params, fragment, tmp_path)  # as written, before any stand-in

    for name, section in (fragment.get("imports") or {}).items():
        for key in ("path", "split_path"):
            if key in section:
                assert section[key] in STAND_INS, f"{block.where}: no shipped stand-in for {section[key]}"
                _stand_in(section[key], tmp_path / section[key])
    for dotted, (value, _why) in STAND_IN_VALUES.items():
        node = params
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = value
    monkeypatch.chdir(tmp_path)
    for name in fragment.get("imports") or {}:
        out = generate(name, params, progress=False)
        meta = json.loads((out / "meta.json").read_text())
        tasks = {spec["task"] for spec in (fragment.get("runs") or {}).get(name, {}).values()}
        assert meta["n_entities"] > 0 and tasks <= set(meta["tasks"]), (name, meta["tasks"])


# ----------------------------------------------------------------------------------------------------------
# The headline files are what the writers give
# ----------------------------------------------------------------------------------------------------------


def test_committed_headline_files_are_what_the_writers_give():
    """``metrics/headline.json`` and ``metrics/rec_headline.json`` as ``evaluate`` and ``rec_evaluate`` write them
    from the committed leaderboards (they are what ``dvc metrics show`` prints above)."""
    from hmspar.config import build
    from hmspar.io import read_json
    from hmspar.rec.report import RecEvaluateConfig, rec_headline
    from hmspar.metrics import json_safe
    from hmspar.report.leaderboard import EvaluateConfig, build_headline

    params = _params()
    digits = build(EvaluateConfig, params.get("evaluate"), "evaluate").headline_digits
    metrics = ROOT / "metrics"
    expected = build_headline(read_json(metrics / "leaderboard.json"), read_json(metrics / "significance.json"), digits)
    assert read_json(metrics / "headline.json") == json_safe(expected)
    rec_digits = build(RecEvaluateConfig, params["rec"].get("evaluate"), "rec.evaluate").digits
    assert read_json(metrics / "rec_headline.json") == rec_headline(read_json(metrics / "rec_leaderboard.json"),
                                                                    rec_digits)

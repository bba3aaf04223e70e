"""Shared fixtures: a copy of the project in a temporary git repository, for end-to-end DVC tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hmspar.project import clone_files, copy_source

ROOT = Path(__file__).resolve().parents[1]
TINY_PARAMS = ROOT / "tests" / "params_tiny.yaml"


def project_files() -> list[str]:
    """Files a fresh clone would have: tracked plus untracked-but-not-ignored ones."""
    return clone_files(ROOT)


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's environment first on PATH (so `python` and `dvc` match);
    ``env`` adds or overrides variables."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("GIT_AUTHOR_NAME", "test")
    env.setdefault("GIT_AUTHOR_EMAIL", "test@example.com")
    env.setdefault("GIT_COMMITTER_NAME", "test")
    env.setdefault("GIT_COMMITTER_EMAIL", "test@example.com")
    env["DVC_NO_ANALYTICS"] = "1"
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def make_project(dest: Path, params: Path = TINY_PARAMS, extra: tuple[str, ...] = ()) -> Path:
    """Copy the project into ``dest`` with a params profile (default: tiny), as a committed git repository.

    ``extra`` names files under ``data/`` to copy too (the DVC outputs there are left out).
    """
    copy_source(ROOT, dest, ("data/", "results/", "dvclive/", "metrics/", "plots/"))
    for rel in extra:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    shutil.copy2(params, dest / "params.yaml")
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "tiny project"], dest)
    return dest


def cached_outputs(project: Path) -> dict[tuple[str, str], str]:
    """(stage, output) -> md5 of every cached output (``cache: false`` ones hold timings and are left out)."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        return {(stage.name, out.def_path): out.hash_info.value
                for stage in repo.index.stages for out in stage.outs if out.use_cache}


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """The project on the tiny profile, reproduced once with ``dvc repro`` (shared by the pipeline tests)."""
    dest = make_project(tmp_path_factory.mktemp("project"))
    run(["dvc", "repro", "--quiet"], dest)
    return dest


def pytest_addoption(parser):
    parser.addoption("--shuffle", type=int, default=None, metavar="SEED",
                     help="run the test files in a seeded random order, and the tests of each file too "
                          "(checks that no test depends on another having run first)")


def pytest_configure(config):
    """Under pytest-xdist (``-n``, set in pyproject.toml), each worker is one of the jobs sharing the CPUs: the
    lab's thread policy (``auto``, :mod:`hmspar.threads`) and torch in the worker divide the cores between them,
    as they do for parallel DVC stages, instead of every worker and every stage it starts taking all of them."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    workers = int(workerinput.get("workercount", 1))
    os.environ.setdefault("HMSPAR_PARALLEL_JOBS", str(workers))
    import torch

    from hmspar import threads

    torch.set_num_threads(threads.resolve("auto", "tests"))


#: The test files whose tests use the session fixture ``tiny_project``. Under ``--dist loadfile`` (pyproject.toml)
#: xdist sends each file's tests to one worker; these files go to the same worker as well, so the tiny project
#: is reproduced once (:func:`pytest_xdist_make_scheduler`). Collection fails if another file asks for it.
TINY_FILES = ("test_pipeline.py", "test_queue.py", "test_rec_pipeline.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the files of :data:`TINY_FILES` scheduled as one."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class TinyProjectFiles(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tiny_project" if Path(path).name in TINY_FILES else path

    return TinyProjectFiles(config, log)


def pytest_collection_modifyitems(config, items):
    strays = sorted({item.path.name for item in items
                     if "tiny_project" in item.fixturenames and item.path.name not in TINY_FILES})
    if strays:
        raise pytest.UsageError(f"{', '.join(strays)} use the tiny_project fixture: add them to TINY_FILES in "
                                "tests/conftest.py, so that one xdist worker reproduces the tiny project once")
    seed = config.getoption("--shuffle")
    if seed is None:
        return
    import numpy as np

    rng = np.random.default_rng(seed)
    by_file: dict[str, list] = {}
    for item in items:
        by_file.setdefault(str(item.path), []).append(item)
    files = list(by_file)
    order = [files[i] for i in rng.permutation(len(files))]
    shuffled = []
    for name in order:
        group = by_file[name]
        shuffled += [group[i] for i in rng.permutation(len(group))]
    items[:] = shuffled

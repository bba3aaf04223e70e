"""Check every DVC stage's code dependencies against what its entry point imports (statically).

``python -m benchmarks.stage_deps [PROJECT_DIR]`` prints one line per stage and every problem; exit
status 1 when a stage has one. For each stage of ``dvc.yaml`` (expanded by DVC, ``foreach``/``matrix``
included) whose command is ``python -m <module> ARGS``:

* the *imported files* are the project ``.py`` files that ``<module>`` imports, transitively and lazily
  included (:class:`benchmarks.import_graph.ImportGraph`), plus those of the modules the stage loads by
  a computed name, which the stage module names in ``dynamic_imports(argv, params) -> list[str]``;
* every imported file must be covered by a code dependency of the stage (the file, or a folder above it);
* every code dependency must be imported: a declared ``.py`` file must be imported, and a declared
  folder must hold at least one imported file.

A code dependency is a dependency under a project package (``hmspar/``, ``stages/``, or any top-level
folder with an ``__init__.py``). Data and params dependencies are declared by hand (see ``dvc.yaml``).
"""

from __future__ import annotations

import dataclasses
import importlib
import shlex
import sys
from collections import deque
from pathlib import Path

import yaml

from benchmarks.import_graph import ROOT, ImportGraph


@dataclasses.dataclass
class StageCheck:
    """The outcome for one stage: what it imports, what it declares, and what is wrong."""

    name: str
    cmd: str
    imported: set[str] = dataclasses.field(default_factory=set)
    declared: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)


def code_packages(project: Path) -> tuple[str, ...]:
    """Top-level folders of ``project`` that hold project Python code (have an ``__init__.py``)."""
    return tuple(sorted(p.name for p in project.iterdir()
                        if p.is_dir() and (p / "__init__.py").exists() and p.name not in ("tests", "benchmarks")))


def dvc_stages(project: Path) -> list[tuple[str, str, list[str]]]:
    """``(name, cmd, dependency paths)`` of every stage in ``project/dvc.yaml``, expanded by DVC."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        out = []
        for stage in repo.index.stages:
            if not getattr(stage, "cmd", None):
                continue
            deps = [Path(d.def_path).as_posix() for d in stage.deps if not hasattr(d, "params")
                    and type(d).__name__ != "ParamsDependency"]
            cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
            out.append((stage.name, cmd, deps))
    return out


def _entry(cmd: str) -> tuple[str, list[str]] | None:
    words = shlex.split(cmd)
    if len(words) >= 3 and words[0].startswith("python") and words[1] == "-m":
        return words[2], words[3:]
    return None


def _chain(graph: ImportGraph, starts: list[str], goal: str) -> str:
    """The shortest import chain from one of ``starts`` to ``goal`` (for messages)."""
    prev: dict[str, str | None] = {s: None for s in starts}
    queue = deque(starts)
    while queue:
        v = queue.popleft()
        if v == goal:
            path = [v]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return " -> ".join(path[::-1])
        for w in sorted(graph.edges.get(v, ())):
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return goal


def check_project(project: Path = ROOT) -> list[StageCheck]:
    """Check every stage of ``project`` (see the module docstring)."""
    project = Path(project).resolve()
    packages = code_packages(project)
    graph = ImportGraph(project, packages)
    params = yaml.safe_load((project / "params.yaml").read_text()) or {}
    checks = []
    for name, cmd, deps in dvc_stages(project):
        check = StageCheck(name, cmd)
        checks.append(check)
        entry = _entry(cmd)
        if entry is None or entry[0] not in graph.modules:
            check.problems.append(f"command {cmd!r} is not 'python -m <project module> ...'; cannot follow its imports")
            continue
        module, argv = entry
        starts = [module]
        closure = graph.closure(starts)
        sites = [site for m in closure for site in graph.dynamic_sites[m]]
        if sites:
            stage_module = _import_stage_module(project, module)
            hook = getattr(stage_module, "dynamic_imports", None)
            where = ", ".join(f"{s.path}:{s.line}" for s in sites)
            if hook is None:
                check.problems.append(f"its imports reach a computed importlib.import_module ({where}); define "
                                      f"dynamic_imports(argv, params) in {graph.rel(module)} naming the modules it loads")
            else:
                for extra in hook(argv, params):
                    if extra not in graph.modules:
                        check.problems.append(f"dynamic_imports names {extra!r}, not a project module")
                        continue
                    starts.append(extra)
                closure = graph.closure(starts)
        check.imported = {graph.rel(m) for m in closure}
        check.declared = [d for d in deps if d.split("/")[0] in packages]
        declared_files = {d for d in check.declared if d.endswith(".py")}
        declared_dirs = [d.rstrip("/") for d in check.declared if not d.endswith(".py")]
        for d in check.declared:
            if not (project / d).exists():
                check.problems.append(f"declares {d}, which does not exist")
        for rel in sorted(check.imported):
            if rel not in declared_files and not any(rel.startswith(d + "/") for d in declared_dirs):
                goal = graph.module_of(rel)
                chain = (_chain(graph, [module], goal) if goal in graph.closure([module])
                         else f"{module} =dynamic_imports=> " + _chain(graph, starts[1:], goal))
                check.problems.append(f"imports {rel} but does not depend on it (missing dependency; {chain})")
        for rel in sorted(declared_files):
            if rel not in check.imported and (project / rel).exists():
                check.problems.append(f"depends on {rel} but never imports it (over-broad dependency)")
        for d in declared_dirs:  # a folder without Python files (e.g. hmspar/report/vendor/) is data, read at run time
            if ((project / d).is_dir() and any((project / d).rglob("*.py"))
                    and not any(rel.startswith(d + "/") for rel in check.imported)):
                check.problems.append(f"depends on folder {d}/ but imports no file in it (over-broad dependency)")
    return checks


def _import_stage_module(project: Path, module: str):
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    return importlib.import_module(module)


def report(checks: list[StageCheck]) -> str:
    """One line per stage, then its problems indented."""
    lines = []
    for c in checks:
        lines.append(f"{'FAIL' if c.problems else 'ok  '} {c.name}: {len(c.imported)} imported files, "
                     f"{len(c.declared)} code deps")
        lines += [f"       stage '{c.name}' {p}" for p in c.problems]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    project = Path(argv[0]) if argv else ROOT
    checks = check_project(project)
    print(report(checks))
    return 1 if any(c.problems for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

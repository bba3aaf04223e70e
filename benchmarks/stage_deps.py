"""Check every DVC stage's code dependencies against what its entry point imports (statically).

``python -m benchmarks.stage_deps [PROJECT_DIR]`` prints one line per stage and every problem; exit
status 1 when a stage has one. ``python -m benchmarks.stage_deps --write [PROJECT_DIR]`` writes ``dvc.yaml``
from ``pipeline.yaml`` (:func:`generate`): the same stages, each with the code dependencies this analysis finds. For each stage of ``dvc.yaml`` (expanded by DVC, ``foreach``/``matrix``
included) whose command is ``python -m <module> ARGS``:

* the *imported files* are the project ``.py`` files that ``<module>`` imports, transitively and lazily
  included (:class:`benchmarks.import_graph.ImportGraph`), plus those of the modules the stage loads by
  a computed name, which the stage module names in ``dynamic_imports(argv, params) -> list[str]``;
* every imported file must be covered by a code dependency of the stage (the file, or a folder above it);
* every code dependency must be imported: a declared ``.py`` file must be imported (by the stage, or for a
  file declared for a whole ``foreach``/``matrix`` group, by some stage of the group: the group shares one
  list), and a declared folder must hold at least one imported file.

A code dependency is a dependency under a project package (``hmspar/``, ``stages/``, or any top-level
folder with an ``__init__.py``). Data and params dependencies are declared by hand (in ``pipeline.yaml``).
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import re
import shlex
import sys
from collections import deque
from pathlib import Path

import yaml

from benchmarks.import_graph import ROOT, ImportGraph
from hmspar.io import write_text_atomic


@dataclasses.dataclass
class StageCheck:
    """The outcome for one stage: what it imports, what it declares, and what is wrong."""

    name: str
    cmd: str
    imported: set[str] = dataclasses.field(default_factory=set)
    declared: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    group_unused: set[str] = dataclasses.field(default_factory=set)  # declared .py files this stage never imports


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
                check.group_unused.add(rel)
        for d in declared_dirs:  # a folder without Python files (e.g. hmspar/report/vendor/) is data, read at run time
            if ((project / d).is_dir() and any((project / d).rglob("*.py"))
                    and not any(rel.startswith(d + "/") for rel in check.imported)):
                check.problems.append(f"depends on folder {d}/ but imports no file in it (over-broad dependency)")
    _forgive_group_wide_files(checks, graph, project)
    return checks


def _template_choices(project: Path, deps) -> list[str]:
    """Every project ``.py`` file (``__init__.py`` aside) that one of the templated code dependencies among
    ``deps`` can name: ``hmspar/data/generators/${item.kind}.py`` -> each file of that shape."""
    found: set[str] = set()
    for dep in map(str, deps or []):
        if "${" in dep and dep.endswith(".py"):
            found |= {path.relative_to(project).as_posix()
                      for path in project.glob(re.sub(r"\$\{[^}]*\}", "*", dep)) if path.name != "__init__.py"}
    return sorted(found)


def _templated_imports(graph: ImportGraph, project: Path, group_spec: dict) -> set[str]:
    """Every project file that a module named by one of the group's templated code dependencies imports."""
    body = group_spec.get("do", group_spec) if isinstance(group_spec, dict) else {}
    modules = [m for m in map(graph.module_of, _template_choices(project, body.get("deps"))) if m is not None]
    return {graph.rel(m) for m in graph.closure(modules)} if modules else set()


def _forgive_group_wide_files(checks: list[StageCheck], graph: ImportGraph, project: Path) -> None:
    """A stage group (``foreach``/``matrix``) shares one dependency list: a ``.py`` file declared for the whole
    group is needed when some stage of the group imports it (``generate@trend`` imports the picture
    renderer, ``generate@retail`` does not), or when a module that the group's templated dependency can name
    imports it (a profile without ``trend`` still declares it for the group). Otherwise it is over-broad."""
    spec = (yaml.safe_load((project / "dvc.yaml").read_text()) or {}).get("stages") or {}
    groups: dict[str, list[StageCheck]] = {}
    for c in checks:
        groups.setdefault(c.name.split("@")[0], []).append(c)
    for group, members in groups.items():
        imported = set().union(*(c.imported for c in members))
        if "@" in members[0].name:
            imported |= _templated_imports(graph, project, spec.get(group) or {})
        for c in members:
            for rel in sorted(c.group_unused & imported):
                c.problems.remove(f"depends on {rel} but never imports it (over-broad dependency)")


PIPELINE = "pipeline.yaml"
HEADER = ("# GENERATED from pipeline.yaml by `python -m benchmarks.stage_deps --write`: edit pipeline.yaml, not this file.\n"
          "# To each stage the command adds the project files its entry point imports (tests/test_dependencies.py\n"
          "# checks that this file is up to date and that every stage depends on exactly what it imports).\n")


class GenerateError(Exception):
    """``pipeline.yaml`` cannot be turned into ``dvc.yaml``; the message names the stage."""


def _is_code(dep: str, packages: tuple[str, ...]) -> bool:
    return dep.split("/")[0] in packages


def _covered(rel: str, code_deps: list[str]) -> bool:
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in code_deps)


def _expand(project: Path, pipeline_text: str) -> dict[str, list[tuple[str, str, list[str]]]]:
    """DVC's expansion of ``pipeline_text`` with the project's params: stage group -> its stages."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".dvc").mkdir()  # a bare DVC project (what `dvc init --no-scm` writes, without its messages)
        (root / ".dvc" / "config").write_text("[core]\n    no_scm = True\n")
        shutil.copy(project / "params.yaml", root / "params.yaml")
        (root / "dvc.yaml").write_text(pipeline_text)
        groups: dict[str, list[tuple[str, str, list[str]]]] = {}
        for name, cmd, deps in dvc_stages(root):
            groups.setdefault(name.split("@")[0], []).append((name, cmd, deps))
    return groups


def _imports_of(graph: ImportGraph, project: Path, params: dict, group: str, cmd: str, dynamic: bool,
                files: list[str]) -> set[str]:
    """Project files imported by ``cmd``'s entry module, the modules its ``dynamic_imports`` names for the
    command's arguments (with ``dynamic``; a group's declaration has no arguments yet) and the code ``files``."""
    entry = _entry(cmd)
    if entry is None or entry[0] not in graph.modules:
        raise GenerateError(f"stage {group!r}: command {cmd!r} is not 'python -m <project module> ...'")
    module, argv = entry
    starts = [module]
    if dynamic and any(graph.dynamic_sites[m] for m in graph.closure(starts)):
        hook = getattr(_import_stage_module(project, module), "dynamic_imports", None)
        if hook is not None:
            starts += [m for m in hook(argv, params) if m in graph.modules]
    starts += [m for m in (graph.module_of(f) for f in files) if m is not None]
    return {graph.rel(m) for m in graph.closure(starts)}


def _group_code_deps(graph: ImportGraph, project: Path, params: dict, packages: tuple[str, ...], group: str,
                     body, members: list[tuple[str, str, list[str]]]) -> list[str]:
    """The code files every stage of ``group`` imports beyond its declared code dependencies.

    With stages (the group expanded by DVC), each stage's imports are read with its own arguments, and all
    must agree. A group that the params leave empty (``imports: {}``) is read from its declaration: the entry
    module, its literal code dependencies and each file a templated one (``hmspar/x/${item.kind}.py``) can
    name; the union is declared.
    """
    if members:
        found: dict[str, set[str]] = {}
        for name, cmd, deps in members:
            code = [d for d in deps if _is_code(d, packages)]
            imported = _imports_of(graph, project, params, group, cmd, True, [d for d in code if d.endswith(".py")])
            found[name] = {r for r in imported if not _covered(r, code)}
        first_name, first = next(iter(found.items()))
        for name, rest in found.items():
            if rest != first:
                raise GenerateError(
                    f"stage {name!r} imports {sorted(rest - first) or '-'} and not {sorted(first - rest) or '-'} "
                    f"beyond its declared dependencies, unlike {first_name!r} of the same group: declare the "
                    f"module that differs as a templated dependency in {PIPELINE} (e.g. 'hmspar/x/${{item.kind}}.py')")
        return sorted(first)
    hand = [str(d) for d in (body.get("deps") or []) if _is_code(str(d), packages)]
    literal = [d for d in hand if "${" not in d]
    choices: list[str | None] = _template_choices(project, hand) or [None]
    rest: set[str] = set()
    for choice in choices:
        files = [d for d in literal if d.endswith(".py")] + ([choice] if choice else [])
        imported = _imports_of(graph, project, params, group, str(body["cmd"]), False, files)
        rest |= {r for r in imported if not _covered(r, literal) and r != choice}
    return sorted(rest)


def generate(project: Path = ROOT) -> str:
    """The text of ``dvc.yaml``: ``pipeline.yaml`` with each stage's imported project files added to its deps.

    Comments, anchors and order of ``pipeline.yaml`` are kept; the added files come first in each ``deps`` list.
    Stage groups are expanded with the project's ``params.yaml`` (a group's stages must import the same files
    beyond what they declare); an edit of the code or of the params lists reruns this command.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedSeq

    project = Path(project).resolve()
    source = project / PIPELINE
    if not source.exists():
        raise GenerateError(f"{source}: not found")
    text = source.read_text()
    rt = YAML()
    rt.width = 4096
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    doc = rt.load(text)
    packages = code_packages(project)
    graph = ImportGraph(project, packages)
    params = yaml.safe_load((project / "params.yaml").read_text()) or {}
    members = _expand(project, text)
    added: dict[int, tuple[str, list[str]]] = {}
    for group, spec in doc["stages"].items():
        body = spec["do"] if "do" in spec else spec
        if body.get("deps") is None:
            body["deps"] = CommentedSeq()
        deps = body["deps"]
        need = _group_code_deps(graph, project, params, packages, group, body, members.get(group, []))
        if id(deps) in added:  # a YAML alias of another group's list: both must need the same files
            other, other_need = added[id(deps)]
            if need != other_need:
                raise GenerateError(f"stages {other!r} and {group!r} share a dependency list (a YAML alias) but "
                                    f"import different files: {sorted(set(need) ^ set(other_need))}")
            continue
        for i, dep in enumerate(need):
            deps.insert(i, dep)
        added[id(deps)] = (group, need)
    out = io.StringIO()
    rt.dump(doc, out)
    body_text = out.getvalue()
    return HEADER + body_text[body_text.index("stages:"):]


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
    if argv and argv[0] == "--write":
        project = Path(argv[1]) if len(argv) > 1 else ROOT
        try:
            text = generate(project)
        except GenerateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        target = project / "dvc.yaml"
        changed = not target.exists() or target.read_text() != text
        if changed:
            write_text_atomic(target, text)
        print(f"{target}: {'written' if changed else 'already up to date'} from {PIPELINE}")
        return 0
    project = Path(argv[0]) if argv else ROOT
    checks = check_project(project)
    print(report(checks))
    return 1 if any(c.problems for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

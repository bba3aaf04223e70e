"""The project's import graph, read statically with :mod:`ast` (nothing is imported or executed).

Used by ``python -m benchmarks.import_cycles`` (prints the cycles of ``hmspar/``) and by
``tests/test_dependencies.py`` (checks every DVC stage's code dependencies against what its entry point
imports). Imports inside functions count (a lazy import is still an import); imports under
``if TYPE_CHECKING:`` do not (they never run). Importing ``a.b.c`` also runs ``a/__init__.py`` and
``a/b/__init__.py``, so those count as imported too. ``importlib.import_module("a.b")`` with a literal
name is an import; with a computed name it is recorded as a *dynamic import site*, which the caller must
resolve (a stage does it with ``dynamic_imports(argv, params)``).
"""

from __future__ import annotations

import ast
import dataclasses
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class DynamicSite:
    """An ``importlib.import_module(<computed name>)`` call: ``path:line``."""

    path: str
    line: int


class ImportGraph:
    """Static imports between the Python files of one repository.

    Parameters
    ----------
    root : Path
        Repository root; modules are the ``.py`` files under ``packages`` (dotted names relative to root).
    packages : tuple of str
        Top-level folders that hold project code.
    """

    def __init__(self, root: Path = ROOT, packages: tuple[str, ...] = ("hmspar", "stages")) -> None:
        self.root = Path(root)
        self.modules: dict[str, Path] = {}
        for package in packages:
            for path in sorted((self.root / package).rglob("*.py")):
                rel = path.relative_to(self.root).with_suffix("")
                parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
                self.modules[".".join(parts)] = path

    def rel(self, module: str) -> str:
        """Repository-relative path of ``module``'s file (POSIX)."""
        return self.modules[module].relative_to(self.root).as_posix()

    def module_of(self, rel_path: str) -> str | None:
        """Dotted module name of a repository-relative ``.py`` path, or None."""
        for name, path in self.modules.items():
            if path.relative_to(self.root).as_posix() == rel_path:
                return name
        return None

    def _with_parents(self, name: str) -> set[str]:
        """``name`` (or its longest project prefix, for ``from pkg import attr``) plus parent packages."""
        found = set()
        parts = name.split(".")
        while parts and ".".join(parts) not in self.modules:
            parts = parts[:-1]
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in self.modules:
                found.add(prefix)
        return found

    def _parse(self, module: str) -> tuple[set[str], list[DynamicSite]]:
        path = self.modules[module]
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        targets: set[str] = set()
        dynamic: list[DynamicSite] = []
        skip: set[int] = set()
        for node in ast.walk(tree):  # `if TYPE_CHECKING:` bodies never run
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets |= self._with_parents(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets |= self._with_parents(base)
                for alias in node.names:  # `from pkg import submodule`
                    if f"{base}.{alias.name}" in self.modules:
                        targets |= self._with_parents(f"{base}.{alias.name}")
            elif isinstance(node, ast.Call) and _is_import_module(node.func):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    targets |= self._with_parents(arg.value)
                else:
                    dynamic.append(DynamicSite(self.rel(module), node.lineno))
        targets.discard(module)
        return targets, dynamic

    @cached_property
    def edges(self) -> dict[str, set[str]]:
        """``module -> modules it imports`` (project modules only)."""
        return {m: self._parse(m)[0] for m in self.modules}

    @cached_property
    def dynamic_sites(self) -> dict[str, list[DynamicSite]]:
        return {m: self._parse(m)[1] for m in self.modules}

    def closure(self, starts: list[str]) -> set[str]:
        """Every project module run when ``starts`` are imported (their parents included)."""
        seen: set[str] = set()
        todo = [m for s in starts for m in self._with_parents(s)]
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            todo.extend(self.edges[m] - seen)
        return seen

    def cycles(self, prefix: str = "hmspar") -> list[list[str]]:
        """Elementary import cycles among modules under ``prefix`` (package ``__init__`` edges excluded).

        Edges into a parent package's ``__init__`` are left out: they are Python's import mechanics,
        not a design choice, and an ``__init__`` that imports nothing cannot close a cycle.
        """
        nodes = sorted(m for m in self.modules if m == prefix or m.startswith(prefix + "."))
        graph = {m: sorted(t for t in self.edges[m] if t in nodes and not m.startswith(t + ".")) for m in nodes}
        # strongly connected components (Tarjan), then one shortest cycle through each edge of a component
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        comps: list[list[str]] = []
        counter = [0]

        def strong(v: str) -> None:
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on_stack.add(v)
            for w in graph[v]:
                if w not in index:
                    strong(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))

        for v in nodes:
            if v not in index:
                strong(v)
        found: set[tuple[str, ...]] = set()
        for comp in comps:
            members = set(comp)
            for a in comp:
                for b in graph[a]:
                    if b in members:
                        path = _shortest_path(graph, b, a, members)
                        if path:
                            cycle = [a] + path[:-1]
                            k = cycle.index(min(cycle))
                            found.add(tuple(cycle[k:] + cycle[:k]))
        return [list(c) for c in sorted(found)]


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
        (isinstance(func, ast.Name) and func.id == "import_module")


def _shortest_path(graph: dict[str, list[str]], start: str, goal: str, allowed: set[str]) -> list[str] | None:
    from collections import deque

    prev: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        if v == goal:
            path = [v]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return path[::-1]
        for w in graph[v]:
            if w in allowed and w not in prev:
                prev[w] = v
                queue.append(w)
    return None

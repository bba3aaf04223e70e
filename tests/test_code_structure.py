"""Code-structure rules that a reviewer would otherwise check by hand (DESIGN.md, "One kernel")."""

from __future__ import annotations

import ast

from conftest import ROOT

PACKAGES = ("hmspar", "stages", "benchmarks")


def _python_files():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_no_private_name_is_imported_across_modules():
    """``from hmspar.x import _name`` (or ``module._name`` of an imported project module) reaches into another
    module's private parts: a shared helper gets a public name in the module that owns it."""
    offences = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        project_modules: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import "
                                        f"{alias.name}")
                    else:
                        project_modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in PACKAGES and alias.asname:
                        project_modules.add(alias.asname)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in project_modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not offences, "private names used across modules:\n" + "\n".join(offences)


def test_one_device_resolver_and_one_param_groups():
    """Both tracks' loops resolve devices and build optimiser groups through the same functions."""
    defined = {"resolve_device": [], "param_groups": []}
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in defined:
                defined[node.name].append(str(path.relative_to(ROOT)))
    assert defined == {"resolve_device": ["hmspar/device.py"], "param_groups": ["hmspar/training/optim.py"]}

"""The README is an entry point and the reference pages under docs/ hold the rest (issue 27)."""

from __future__ import annotations

import re

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_is_short():
    size = (ROOT / "README.md").stat().st_size
    assert size <= 25_000, f"README.md is {size} bytes; move reference material to docs/"


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_readme_links_every_reference_page_and_its_layout_names_every_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing_pages = [p.name for p in PAGES[1:] if f"(docs/{p.name})" not in readme]
    assert not missing_pages, f"README.md does not link {missing_pages}"
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    packages = sorted(p.parent.name for p in (ROOT / "hmspar").glob("*/__init__.py"))
    unnamed = [name for name in packages if f"{name}/" not in layout]
    assert not unnamed, f"README's Layout leaves out hmspar/{unnamed}"

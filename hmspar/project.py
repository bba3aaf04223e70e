"""The project's own files as a fresh clone has them, and copies of its source without DVC outputs (used by
the quick look, :mod:`hmspar.quicklook`, and by the end-to-end tests' temporary projects)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def clone_files(root: Path) -> list[str]:
    """Paths (relative to ``root``) a fresh clone would have: tracked plus untracked-but-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line and (root / line).is_file()]


def copy_source(root: Path, dest: Path, outputs: tuple[str, ...]) -> None:
    """Copy the files of :func:`clone_files` into ``dest``, leaving out ``dvc.lock`` and everything under the
    ``outputs`` prefixes (DVC outputs stay behind, as in a clone without a DVC remote) except
    ``data/external/`` (the shipped inputs) and the ``.gitignore`` files DVC keeps under ``results/`` (tracked,
    so a clone has them, and with them ``results/rec_ablation/``, which ``rec_ablation_evaluate`` reads even
    when no model is ablated)."""
    for rel in clone_files(root):
        keep = rel.startswith("data/external/") or (rel.startswith("results/") and rel.endswith("/.gitignore"))
        if (rel.startswith(outputs) and not keep) or rel == "dvc.lock":
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)

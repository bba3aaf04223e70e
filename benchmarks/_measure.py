"""Run a command in a child process and report its wall time and peak resident memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

OUT = Path("benchmarks/out")


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Wall seconds and peak RSS (MiB) of ``cmd``, run as a fresh child (so peaks do not accumulate)."""
    wrapper = [sys.executable, "-c",
               "import resource, subprocess, sys, json, time;"
               "t=time.perf_counter(); rc=subprocess.call(sys.argv[1:]);"
               "dt=time.perf_counter()-t;"
               "r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
               "print(json.dumps({'rc': rc, 'seconds': dt, 'peak_mib': r/1024}), file=sys.stderr)"] + cmd
    proc = subprocess.run(wrapper, capture_output=True, text=True, env={**os.environ, **(env or {})})
    last = proc.stderr.strip().splitlines()[-1]
    result = json.loads(last)
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return result


def save(name: str, rows: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [(f"{row[c]:.3f}" if abs(row[c]) < 10 else f"{row[c]:.1f}") if isinstance(row[c], float) else str(row[c])
                 for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)



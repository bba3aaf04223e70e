"""Run a command in a child process and report its wall time and peak resident memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

OUT = Path("benchmarks/out")


def commit_of(source: Path) -> str | None:
    """The commit checked out at ``source``, with ``+changes`` when its tracked files differ from it (None
    outside git)."""
    proc = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if not proc.stdout.strip():
        return None
    dirty = subprocess.run(["git", "-C", str(source), "diff", "--quiet", "HEAD"]).returncode != 0
    return proc.stdout.strip() + ("+changes" if dirty else "")


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


def worker_result(proc: subprocess.Popen) -> dict:
    """The JSON line a benchmark's worker process printed last (its stdout), or an error with its stderr."""
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def fit_hmspar(params: dict, run: str, overrides: dict, seed: int) -> tuple[dict, float]:
    """HMSPAR on ``run`` as the train stage fits it (the run's section and the selection policy), with
    ``overrides`` merged over its model section, at one seed, its outputs in a temporary folder: the run's
    record and the wall seconds of the fit and prediction."""
    import tempfile
    import time

    from hmspar import pipeline
    from hmspar.pipeline.fit import hmspar_section, selection_config
    from hmspar.runner import run_model

    spec, entry = pipeline.hmspar_run(params, run)
    section = pipeline.deep_merge(hmspar_section(params, entry), overrides)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        record = run_model("hmspar", section, "model", pipeline.FEATURES_ROOT / spec.dataset, run,
                           {"dataset": spec.dataset, "task": spec.task, "group": spec.group},
                           [seed], Path(tmp) / "out", None, progress=False, selection=selection_config(params))[0]
        return record, time.perf_counter() - start


def record_run(path: Path, meta: dict, run, columns: list[str]) -> dict:
    """Run ``run() -> rows`` between two load-average readings, write ``meta``, the load averages, the commit and
    the rows (``modes``) to ``path`` as JSON, and print the rows as a table; returns the record."""
    load = os.getloadavg()
    rows = run()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    record = {**meta, "load_avg_before": load, "load_avg_after": os.getloadavg(), "commit": commit, "modes": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(table(rows, columns))
    print(f"load average before: {load}; written {path}")
    return record


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [(f"{row[c]:.3f}" if abs(row[c]) < 10 else f"{row[c]:.1f}") if isinstance(row[c], float) else str(row[c])
                 for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)



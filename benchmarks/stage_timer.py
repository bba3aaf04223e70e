"""Run one DVC stage command and record its wall time, CPU time and peak memory (used by bench_repro).

``python -m benchmarks.stage_timer <command...>`` runs the command as a child, then writes
``$DVC_ROOT/bench_timings/<stage>.json`` (stage name from ``$DVC_STAGE``, which DVC sets for every command):
``{stage, wall_s, cpu_s, peak_mib, rc, parallel_jobs}`` (``parallel_jobs``: what :mod:`hmspar.threads`
sees, e.g. the live DVC queue workers; in a queued experiment the file name ends in ``__<experiment name>``). CPU time and peak resident memory come from
``getrusage(RUSAGE_CHILDREN)``, so they include every process the stage waited for (torchrun workers too).
The record is a host fact, never a DVC output: ``bench_repro`` wraps the commands of a throw-away clone.
Exits with the command's status.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m benchmarks.stage_timer <command...>", file=sys.stderr)
        return 2
    stage = os.environ.get("DVC_STAGE") or " ".join(argv)
    t0 = time.perf_counter()
    rc = subprocess.call(argv)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        from hmspar.threads import parallel_jobs

        jobs: int | str = parallel_jobs()
    except Exception as exc:  # noqa: BLE001 - a record, not a check
        jobs = f"error: {exc}"
    record = {"stage": stage, "wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
              "peak_mib": round(usage.ru_maxrss / 1024, 1), "rc": rc, "parallel_jobs": jobs}
    out = Path(os.environ.get("DVC_ROOT") or ".") / "bench_timings"
    out.mkdir(exist_ok=True)
    name = stage + (f"__{os.environ['DVC_EXP_NAME']}" if os.environ.get("DVC_EXP_NAME") else "")
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
    (out / f"{safe}.json").write_text(json.dumps(record) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

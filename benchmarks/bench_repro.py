"""The whole ``dvc repro`` from cold in a temporary clone: per-stage wall time, CPU time and peak memory.

``python -m benchmarks.bench_repro`` copies the project as a fresh clone would see it (tracked and
untracked-but-not-ignored files; no ``dvc.lock``, no outputs, an empty DVC cache) into a temporary git
repository, wraps every stage command with :mod:`benchmarks.stage_timer` (in the clone's ``dvc.yaml``
only), runs ``dvc repro``, then a second, no-op ``dvc repro``, and writes

* ``benchmarks/results/repro.json``: params file, targets, the commit (``+changes`` when the working tree
  differs from it), CPUs, load averages, total and no-op seconds, and one record per stage
  ``{stage, wall_s, cpu_s, peak_mib, rc}``, slowest first;
* ``benchmarks/results/repro.png``: a bar chart of the slowest 15 stages (wall and CPU seconds).

The default profile takes hours on two cores: try it first with ``--params tests/params_tiny.yaml`` (about a
minute). ``--target evaluate`` reproduces the stages ``evaluate`` depends on, and it: the classification track, and the
recommendation stages too, since ``evaluate`` depends on the whole ``results/`` folder (it reads only
``results/{hmspar,ablation,baselines}``); ``--target rec_evaluate`` the recommendation track alone; the no-op run
repeats the same targets.
``--compare OLD.json`` prints the slowest stages before (OLD) and after (this run).
Timings are host facts: quote them with the machine's load (the record keeps the load averages).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._measure import commit_of

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: Stage outputs a fresh clone does not have (left out of the copy).
OUTPUT_DIRS = ("data/", "results/", "dvclive/", "metrics/", "plots/", "models/", "timings/", "bench_timings/")


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for k, v in (("GIT_AUTHOR_NAME", "bench"), ("GIT_AUTHOR_EMAIL", "bench@example.com"),
                 ("GIT_COMMITTER_NAME", "bench"), ("GIT_COMMITTER_EMAIL", "bench@example.com")):
        env.setdefault(k, v)
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONPATH"] = ""  # the clone's own code, not this checkout's
    return env


def run_timed(cmd: list[str], cwd: Path, log=None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if proc.returncode != 0:
        tail = proc.stdout[-4000:] if proc.stdout else f"(see {log.name})"
        raise RuntimeError(f"{' '.join(cmd)} failed with status {proc.returncode}:\n{tail}")
    return time.perf_counter() - t0


def make_clone(dest: Path, params: Path) -> Path:
    """Copy the project into ``dest`` as a committed git repository with ``params`` as its params.yaml, and
    every stage command wrapped by :mod:`benchmarks.stage_timer`."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for rel in files:
        src = ROOT / rel
        if not src.is_file() or rel == "dvc.lock" or (rel.startswith(OUTPUT_DIRS) and not rel.startswith("data/external/")):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    shutil.copy2(params, dest / "params.yaml")
    dvc_yaml = dest / "dvc.yaml"
    text, n = re.subn(r"(\bcmd:\s*)python -m stages\.", r"\1python -m benchmarks.stage_timer python -m stages.",
                      dvc_yaml.read_text())
    if n == 0:
        raise RuntimeError("dvc.yaml: no `cmd: python -m stages.` command to wrap")
    dvc_yaml.write_text(text)
    with open(dest / ".gitignore", "a", encoding="utf-8") as f:
        f.write("/bench_timings/\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "bench_repro clone"]):
        run_timed(cmd, dest)
    return dest


def bench(params: Path, keep: Path | None = None, targets: list[str] | None = None) -> dict:
    """Reproduce ``targets`` (every stage when empty) from cold and from warm in a temporary clone; return the
    record written to repro.json."""
    from hmspar.threads import available_cpus

    tmp = Path(tempfile.mkdtemp(prefix="hmspar-repro-")) if keep is None else keep
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        clone = make_clone(tmp / "clone" if keep is None else tmp, params)
        load_before = os.getloadavg()
        cmd = ["dvc", "repro", *(targets or [])]
        with open(clone / "repro.log", "w", encoding="utf-8") as log:
            total = run_timed(cmd, clone, log=log)
        noop = run_timed(cmd, clone)
        load_after = os.getloadavg()
        stages = [json.loads(p.read_text()) for p in (clone / "bench_timings").glob("*.json")]
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    stages.sort(key=lambda s: -s["wall_s"])
    try:
        rel = str(params.resolve().relative_to(ROOT))
    except ValueError:
        rel = str(params)
    return {"params": rel, "targets": list(targets or []), "commit": commit_of(ROOT), "cpus": available_cpus(),
            "load_avg_before": load_before, "load_avg_after": load_after,
            "total_s": round(total, 2), "stage_wall_sum_s": round(sum(s["wall_s"] for s in stages), 2),
            "noop_s": round(noop, 2), "n_stages": len(stages), "stages": stages}


def chart(record: dict, path: Path, top: int = 15) -> None:
    """Horizontal bars: wall and CPU seconds of the ``top`` slowest stages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = record["stages"][:top][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["wall_s"] for r in rows], height=0.4, label="wall")
    ax.barh([i - 0.2 for i in y], [r["cpu_s"] for r in rows], height=0.4, label="CPU")
    ax.set_yticks(list(y), [r["stage"] for r in rows], fontsize=8)
    ax.set_xlabel("seconds")
    what = " ".join(["dvc repro", *(record.get("targets") or [])])
    ax.set_title(f"slowest {len(rows)} stages: {what} from cold ({record['params']}, {record['cpus']} CPUs, "
                 f"total {record['total_s']:.0f} s)", fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(record: dict, before: dict | None = None, top: int = 15) -> str:
    """Markdown table of the slowest stages (with the ``before`` record's wall time when given)."""
    old = {s["stage"]: s for s in (before or {}).get("stages", [])}
    head = "| stage | wall s | CPU s | peak MiB |" + (" before wall s |" if before else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in record["stages"][:top]:
        row = f"| {s['stage']} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} | {s['peak_mib']:.0f} |"
        if before:
            row += f" {old[s['stage']]['wall_s']:.1f} |" if s["stage"] in old else " - |"
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="params file to reproduce")
    ap.add_argument("--out", type=Path, default=RESULTS / "repro.json")
    ap.add_argument("--keep", type=Path, default=None, help="build the clone here and keep it")
    ap.add_argument("--compare", type=Path, default=None, help="an earlier repro.json to compare with")
    ap.add_argument("--target", action="append", default=[], metavar="STAGE",
                    help="reproduce this stage and what it depends on (repeatable; default: every stage)")
    args = ap.parse_args(argv)
    if not args.params.is_file():
        raise SystemExit(f"--params: no such file {args.params}")
    record = bench(args.params, args.keep, args.target)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    chart(record, args.out.with_suffix(".png"))
    before = json.loads(args.compare.read_text()) if args.compare else None
    print(table(record, before))
    print(f"\n{record['n_stages']} stages; dvc repro from cold {record['total_s']:.1f} s (stages {record['stage_wall_sum_s']:.1f} s); "
          f"no-op dvc repro {record['noop_s']:.1f} s; {record['cpus']} CPUs; load average before "
          f"{record['load_avg_before'][0]:.2f}, after {record['load_avg_after'][0]:.2f}. Written {args.out} and "
          f"{args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()

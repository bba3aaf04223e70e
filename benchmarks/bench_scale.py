"""Scaling of the pipeline with the number of entities: wall time and peak memory of ``generate``,
``convert`` and one training epoch for the merchant simulator at 10,000, 100,000 and 1,000,000 merchants.

Usage (from the repository root)::

    python -m benchmarks.bench_scale                       # 1e4, 1e5, 1e6 merchants
    python -m benchmarks.bench_scale --sizes 10000 100000  # a subset
    python -m benchmarks.bench_scale --model repo          # the params.yaml HMSPAR instead of the tiny one

Each size runs in its own temporary project directory (``--workdir``, deleted afterwards unless
``--keep``) whose ``params.yaml`` is the repository's with only the merchant dataset, its
``n_entities`` changed, one run (``merchant-risk-Industry-0``, 35% of the merchants) and ``train.epochs:
1``; the repository's ``data/`` is never touched. Every stage runs as a fresh child process
(``python -m stages.<name>``), polled every 0.2 s, and is reported with

* ``seconds``: wall time;
* ``peak_mib``: the child's peak resident set (``ru_maxrss`` from ``wait4``, as in
  ``benchmarks/_measure.py``). It includes *file-backed* pages of memory-mapped ``.npy`` files the
  process touched, which the kernel can drop at any time;
* ``peak_anon_mib``: the peak of the child's anonymous memory (``RssAnon`` in ``/proc/<pid>/status``),
  i.e. what it really allocated.

Training uses the tiny HMSPAR of ``tests/params_tiny.yaml`` by default (``--model repo`` for the
``params.yaml`` model), so the epoch measures the data path (memory-mapped batches) more than the
network. Stages run with one torch/OpenMP thread by default (``--threads``): on a machine shared with
other work, OpenMP's spinning threads made the same HMSPAR step 35 times slower with 2 threads than
with 1. Results go to ``benchmarks/out/scale.json`` and a log-log figure (``--plot``, default
``benchmarks/out/scale.png``; ``plots/`` is the evaluate stage's DVC output, so writing there would make
that stage look modified). Run it on an otherwise idle machine; the figures of a shared machine carry its
contention.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
RUN = "merchant-risk-Industry-0"
STAGES = ("generate", "convert", "train")


def _status_kib(pid: int) -> dict[str, int]:
    """``VmRSS``, ``RssAnon``, ``RssFile`` of a live process in KiB (empty once it has exited)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return out


def measure_stage(cmd: list[str], cwd: Path, log: Path, interval: float = 0.2,
                  threads: int = 0) -> dict[str, float]:
    """Run ``cmd`` in ``cwd`` as a child process; wall seconds, ``ru_maxrss`` and sampled peak anonymous
    memory (MiB). Output goes to ``log``; a failure raises with the log's tail. ``threads > 0`` sets
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` of the child."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if threads > 0:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    peak_anon = peak_file = 0
    t0 = time.perf_counter()
    with open(log, "ab") as fh:
        fh.write(f"$ {' '.join(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            sample = _status_kib(proc.pid)
            peak_anon = max(peak_anon, sample.get("RssAnon", 0))
            peak_file = max(peak_file, sample.get("RssFile", 0))
            time.sleep(interval)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed with status {proc.returncode} in {cwd}:\n{tail}")
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "peak_anon_mib": peak_anon / 1024,
            "peak_file_mib": peak_file / 1024}


def project_params(n: int, model: str, threads: int = 0) -> dict:
    """The repository's params with one merchant dataset of ``n`` entities and one one-epoch run."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    merchant = dict(params["datasets"]["merchant"])
    merchant["n_entities"] = int(n)
    params["datasets"] = {"merchant": merchant}
    params["runs"] = {"merchant": {RUN: {"task": "risk", "group": "Industry-0"}}}
    params["hmspar_runs"] = {RUN: {"dataset": "merchant"}}
    params["seeds"] = [0]
    if model == "tiny":
        tiny = yaml.safe_load((ROOT / "tests" / "params_tiny.yaml").read_text())
        params["model"] = tiny["model"]
    params["train"] = {**params["train"], "epochs": 1, "patience": 1, "num_threads": int(threads)}
    return params


def bench_size(n: int, workdir: Path, model: str, stages: tuple[str, ...], keep: bool, threads: int) -> dict:
    """Run the stages for ``n`` merchants in a fresh project directory; one result row."""
    project = Path(tempfile.mkdtemp(prefix=f"scale-{n}-", dir=workdir))
    row: dict = {"n": int(n), "model": model, "threads": threads, "project": str(project)}
    try:
        (project / "params.yaml").write_text(yaml.safe_dump(project_params(n, model, threads), sort_keys=False))
        log = project / "bench.log"
        commands = {"generate": ["-m", "stages.generate", "merchant"],
                    "convert": ["-m", "stages.convert", "merchant"],
                    "train": ["-m", "stages.train", RUN]}
        for stage in stages:
            print(f"[{n:,}] {stage} ...", flush=True)
            result = measure_stage([sys.executable, *commands[stage]], project, log, threads=threads)
            row.update({f"{stage}_{k}": round(v, 2) for k, v in result.items()})
            print(f"[{n:,}] {stage}: {result['seconds']:.1f} s, peak {result['peak_mib']:.0f} MiB "
                  f"(anonymous {result['peak_anon_mib']:.0f} MiB)", flush=True)
        raw_meta = project / "data" / "raw" / "merchant" / "meta.json"
        if raw_meta.exists():
            row["distinct_texts"] = json.loads(raw_meta.read_text()).get("distinct_texts")
        feat = project / "data" / "features" / "merchant"
        if (feat / "meta.json").exists():
            meta = json.loads((feat / "meta.json").read_text())
            row["text_distinct"] = meta.get("text_distinct")
            row["features_mib"] = round(sum(p.stat().st_size for p in feat.iterdir()) / 2 ** 20, 1)
        metrics = project / "results" / "hmspar" / RUN / "seed0" / "metrics.json"
        if metrics.exists():
            m = json.loads(metrics.read_text())
            row.update({"n_train": m["n_train"], "n_val": m["n_val"], "n_test": m["n_test"],
                        "epoch_fit_s": m["fit_seconds"], "predict_s": m["predict_seconds"],
                        "train_rows_per_s": round(m["n_train"] / max(m["fit_seconds"], 1e-9), 1),
                        "test_roc_auc": m["test"].get("roc_auc")})
    finally:
        if not keep:
            shutil.rmtree(project, ignore_errors=True)
    return row


def growth(rows: list[dict], key: str, last: bool = False) -> float | None:
    """Log-log slope of ``key`` against ``n`` (1 = linear) between the smallest and largest size, or with
    ``last`` between the two largest (the marginal growth, less diluted by fixed start-up costs)."""
    import math

    pts = [(r["n"], r[key]) for r in rows if r.get(key)]
    if len(pts) < 2:
        return None
    (n0, v0), (n1, v1) = (pts[-2], pts[-1]) if last else (pts[0], pts[-1])
    return round(math.log(v1 / v0) / math.log(n1 / n0), 3)


def plot(rows: list[dict], path: Path) -> None:
    """Log-log time and memory against the number of merchants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for stage, marker in zip(STAGES, "osd"):
        if all(f"{stage}_seconds" in r for r in rows):
            ax_t.plot(ns, [r[f"{stage}_seconds"] for r in rows], marker=marker,
                      label=stage if stage != "train" else "train (1 epoch + predict)")
            ax_m.plot(ns, [r[f"{stage}_peak_mib"] for r in rows], marker=marker, label=f"{stage}: peak RSS")
            ax_m.plot(ns, [r[f"{stage}_peak_anon_mib"] for r in rows], marker=marker, linestyle="--",
                      label=f"{stage}: peak anonymous")
    first = rows[0]
    if "generate_seconds" in first:
        ref = [first["generate_seconds"] * n / ns[0] for n in ns]
        ax_t.plot(ns, ref, color="grey", linestyle=":", label="linear reference")
    for ax, ylabel, title in ((ax_t, "wall time (s)", "time"), (ax_m, "memory (MiB)", "peak memory")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("merchants (n_entities)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--model", choices=("tiny", "repo"), default="tiny")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true", help="keep the temporary project directories")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads per stage (0: library default); 1 avoids the collapse of "
                             "OpenMP's spinning threads on a shared machine")
    parser.add_argument("--out", type=Path, default=OUT / "scale.json")
    parser.add_argument("--plot", type=Path, default=OUT / "scale.png")
    args = parser.parse_args(argv)
    stages = tuple(s for s in STAGES if s in args.stages)
    rows = []
    for n in sorted(args.sizes):
        rows.append(bench_size(n, args.workdir, args.model, stages, args.keep, args.threads))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        summary = {"rows": rows, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
                   "growth_exponent": {f"{s}_{k}": growth(rows, f"{s}_{k}") for s in stages
                                       for k in ("seconds", "peak_mib", "peak_anon_mib")},
                   "growth_exponent_last_step": {f"{s}_{k}": growth(rows, f"{s}_{k}", last=True) for s in stages
                                                 for k in ("seconds", "peak_mib", "peak_anon_mib")}}
        args.out.write_text(json.dumps(summary, indent=2) + "\n")  # after every size: partial results survive
    plot(rows, args.plot)
    cols = ["n"] + [f"{s}_{k}" for s in stages for k in ("seconds", "peak_mib", "peak_anon_mib")]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    print("growth exponents (log-log slope, 1 = linear), smallest to largest:", json.dumps(summary["growth_exponent"]))
    print("growth exponents between the two largest sizes:", json.dumps(summary["growth_exponent_last_step"]))
    big = [r for r in rows if r["n"] >= 1_000_000 and "convert_seconds" in r]
    for r in big:
        total = r.get("generate_seconds", 0) + r["convert_seconds"]
        peak = max(r.get("generate_peak_mib", 0), r["convert_peak_mib"])
        print(f"{r['n']:,} merchants: generate + convert {total / 60:.1f} min (target 10), peak RSS "
              f"{peak / 1024:.2f} GiB (target < 4), distinct texts {r.get('text_distinct')}")
    print(f"wrote {args.out} and {args.plot}")
    return rows


if __name__ == "__main__":
    main()

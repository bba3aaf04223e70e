"""Speed and memory of the recommendation track: shop generate + convert, SASRec fit per seed, and
full-ranking evaluation of every test user.

Usage (from the repository root; everything is written under a temporary directory, not data/)::

    python -m benchmarks.bench_rec                    # default shop from params.yaml, all measurements
    python -m benchmarks.bench_rec --users 1000000 --only data   # generate + convert at a large n_users

Each measurement runs in a fresh child process and reports wall seconds, CPU seconds (user + system of
the child) and peak resident memory, so a loaded machine shows as wall >> CPU. Results go to
``benchmarks/out/rec.json`` and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._measure import save, table

_WRAPPER = (
    "import resource, subprocess, sys, json, time;"
    "t=time.perf_counter(); rc=subprocess.call(sys.argv[1:]); dt=time.perf_counter()-t;"
    "r=resource.getrusage(resource.RUSAGE_CHILDREN);"
    "print(json.dumps({'rc': rc, 'seconds': dt, 'cpu_s': r.ru_utime + r.ru_stime, 'peak_mib': r.ru_maxrss/1024}),"
    " file=sys.stderr)"
)

_DATA = """
import sys, yaml
from pathlib import Path
from hmspar.params import load_params
from hmspar.rec.datasets import generate_dataset
from hmspar.rec.convert import convert_dataset
params = load_params()
params["rec"]["datasets"]["shop"]["n_users"] = int(sys.argv[2])
root = Path(sys.argv[1])
if sys.argv[3] == "generate":
    generate_dataset("shop", params, raw_root=root / "raw")
else:
    convert_dataset("shop", params, raw_root=root / "raw", features_root=root / "features")
"""

_FIT = """
import sys, time, json
from pathlib import Path
from hmspar.config import build
from hmspar.params import load_params
from hmspar.rec.data import ProtocolConfig, load
from hmspar.rec.evaluate import rank_batched
from hmspar.rec.registry import build_recommender
from hmspar.rec.runner import recommender_section
params = load_params()
rec = params["rec"]
data = load(Path(sys.argv[1]) / "features" / "shop", build(ProtocolConfig, rec["protocol"], "rec.protocol"))
model = build_recommender(sys.argv[2], recommender_section(params, sys.argv[2], "shop"), 0)
t = time.perf_counter(); c = time.process_time()
model.fit(data.train, data.items, data.val)
fit_wall, fit_cpu = time.perf_counter() - t, time.process_time() - c
t = time.perf_counter(); c = time.process_time()
out = rank_batched(model.score, data.test, k=10)
rank_wall, rank_cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"users": len(data.test), "fit_s": fit_wall, "fit_cpu_s": fit_cpu, "rank_s": rank_wall,
                  "rank_cpu_s": rank_cpu, "steps": getattr(model, "report_", {}).get("steps_run")}))
"""


def run(cmd: list[str]) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", _WRAPPER] + cmd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    result = json.loads([line for line in proc.stderr.strip().splitlines() if line.startswith("{")][-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd[-3:])} failed:\n{proc.stderr[-3000:]}")
    return result, proc.stdout


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=0, help="n_users of the shop (0: params.yaml)")
    ap.add_argument("--only", choices=["all", "data"], default="all")
    ap.add_argument("--models", default="sasrec,ease,mostpop")
    args = ap.parse_args(argv)
    from hmspar.params import load_params

    users = args.users or int(load_params()["rec"]["datasets"]["shop"]["n_users"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_rec_") as tmp:
        gen, _ = run([sys.executable, "-c", _DATA, tmp, str(users), "generate"])
        conv, _ = run([sys.executable, "-c", _DATA, tmp, str(users), "convert"])
        events = json.loads((Path(tmp) / "raw" / "shop" / "meta.json").read_text())["n_events"]
        rows.append({"what": "generate", "users": users, "events": events, "wall_s": gen["seconds"],
                     "cpu_s": gen["cpu_s"], "peak_mib": gen["peak_mib"]})
        rows.append({"what": "convert", "users": users, "events": events, "wall_s": conv["seconds"],
                     "cpu_s": conv["cpu_s"], "peak_mib": conv["peak_mib"]})
        print(rows[-2], rows[-1], flush=True)
        if args.only == "all":
            for name in args.models.split(","):
                res, out = run([sys.executable, "-c", _FIT, tmp, name])
                fit = json.loads(out.strip().splitlines()[-1])
                rows.append({"what": f"{name} fit (1 seed, {fit['steps']} steps)" if fit["steps"] else f"{name} fit",
                             "users": fit["users"], "events": events, "wall_s": fit["fit_s"], "cpu_s": fit["fit_cpu_s"],
                             "peak_mib": res["peak_mib"]})
                rows.append({"what": f"{name} full-ranking eval (all test users, top-10)", "users": fit["users"],
                             "events": events, "wall_s": fit["rank_s"], "cpu_s": fit["rank_cpu_s"],
                             "peak_mib": res["peak_mib"]})
                print(rows[-2], rows[-1], flush=True)
    save(f"rec_{users}" if args.only == "data" else "rec", rows)
    print(table(rows, ["what", "users", "events", "wall_s", "cpu_s", "peak_mib"]))


if __name__ == "__main__":
    main()

"""benchmarks.stage_timer (bench_repro's per-stage record) and bench_repro's clone and report helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks import bench_repro
from conftest import ROOT


def _timer(tmp_path, cmd, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("DVC_EXP_NAME", "HMSPAR_PARALLEL_JOBS")}
    full.update({"DVC_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run([sys.executable, "-m", "benchmarks.stage_timer", *cmd], cwd=ROOT, env=full)


def test_stage_timer_records_wall_cpu_memory_and_passes_the_exit_status(tmp_path):
    burn = "import time; t=time.process_time(); b=bytearray(60 * 2**20); [0 for _ in iter(lambda: time.process_time() - t > 0.3, True)]"
    proc = _timer(tmp_path, [sys.executable, "-c", burn], DVC_STAGE="train@retail-churn", HMSPAR_PARALLEL_JOBS="3")
    assert proc.returncode == 0
    record = json.loads((tmp_path / "bench_timings" / "train@retail-churn.json").read_text())
    assert record["stage"] == "train@retail-churn" and record["rc"] == 0 and record["parallel_jobs"] == 3
    assert record["cpu_s"] >= 0.3 and record["wall_s"] >= record["cpu_s"] * 0.5
    assert record["peak_mib"] >= 60

    proc = _timer(tmp_path, [sys.executable, "-c", "raise SystemExit(3)"], DVC_STAGE="evaluate", DVC_EXP_NAME="exp-a")
    assert proc.returncode == 3
    assert json.loads((tmp_path / "bench_timings" / "evaluate__exp-a.json").read_text())["rc"] == 3


def test_clone_wraps_every_stage_command_and_leaves_outputs_out(tmp_path):
    clone = bench_repro.make_clone(tmp_path / "clone", ROOT / "tests" / "params_tiny.yaml")
    text = (clone / "dvc.yaml").read_text()
    assert "python -m stages." in text
    assert all("benchmarks.stage_timer python -m stages." in line for line in text.splitlines() if "cmd:" in line)
    assert not (clone / "dvc.lock").exists() and not (clone / "results").exists()
    assert (clone / "params.yaml").read_text() == (ROOT / "tests" / "params_tiny.yaml").read_text()
    record = {"params": "p", "cpus": 2, "total_s": 3.0, "stages": [
        {"stage": "b", "wall_s": 2.0, "cpu_s": 1.5, "peak_mib": 100.0}, {"stage": "a", "wall_s": 1.0, "cpu_s": 1.0, "peak_mib": 50.0}]}
    table = bench_repro.table(record, before={"stages": [{"stage": "b", "wall_s": 4.0}]})
    assert table.splitlines()[2] == "| b | 2.0 | 1.5 | 100 | 4.0 |" and table.splitlines()[3].endswith("| - |")


def test_bench_repro_reproduces_only_its_targets_and_records_the_commit(tmp_path):
    record = bench_repro.bench(ROOT / "tests" / "params_tiny.yaml", keep=tmp_path / "clone", targets=["generate@retail"])
    assert [s["stage"] for s in record["stages"]] == ["generate@retail"] and record["stages"][0]["rc"] == 0
    assert record["targets"] == ["generate@retail"] and record["n_stages"] == 1
    assert record["commit"].split("+")[0] == subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                                            capture_output=True, text=True).stdout.strip()
    assert (tmp_path / "clone" / "data" / "raw" / "retail").is_dir()
    assert not (tmp_path / "clone" / "data" / "raw" / "merchant").exists()
    assert record["noop_s"] > 0

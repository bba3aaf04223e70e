"""The thread policy (hmspar.threads): ``auto`` = CPUs available // jobs side by side, and its errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

import hmspar
from hmspar import threads
from hmspar.config import build
from conftest import ROOT
from hmspar.errors import HmsparError
from hmspar.models.baselines.minirocket import MiniRocketConfig
from hmspar.models.baselines.trees import LightGBMConfig
from hmspar.training.trainer import TrainConfig


@pytest.mark.parametrize("cpus, env, expected", [
    (2, {}, 2),                                   # dvc repro: one job owns the cores
    (2, {"HMSPAR_PARALLEL_JOBS": "2"}, 1),        # two jobs side by side on two cores
    (8, {"HMSPAR_PARALLEL_JOBS": "3"}, 2),        # floor division
    (2, {"HMSPAR_PARALLEL_JOBS": "4"}, 1),        # never below one thread
    (16, {"HMSPAR_PARALLEL_JOBS": " 4 "}, 4),     # whitespace tolerated
    (4, {"HMSPAR_PARALLEL_JOBS": ""}, 4),         # empty: unset
])
def test_auto_divides_the_cpus_by_the_jobs_side_by_side(cpus, env, expected):
    assert threads.resolve("auto", "train.num_threads", environ=env, cpus=cpus) == expected


def test_distributed_workers_split_the_share_further():
    assert threads.resolve("auto", "k", environ={"HMSPAR_PARALLEL_JOBS": "1"}, cpus=8, share=4) == 2
    assert threads.resolve("auto", "k", environ={}, cpus=2, share=4) == 1


def test_integers_are_used_as_given_whatever_the_environment():
    env = {"HMSPAR_PARALLEL_JOBS": "8"}
    assert threads.resolve(3, "n_jobs", environ=env, cpus=2) == 3
    assert threads.resolve(0, "num_threads", allow_zero=True, environ=env, cpus=2) == 0


def test_default_cpu_count_is_the_affinity_mask():
    assert threads.available_cpus() == len(os.sched_getaffinity(0))
    if shutil.which("taskset") is None:
        pytest.skip("taskset (util-linux) is not installed")
    script = "from hmspar import threads; print(threads.available_cpus(), threads.resolve('auto', 'k'))"
    env = {**os.environ, "HMSPAR_PARALLEL_JOBS": "1"}
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", script], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "1"]


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_a_bad_environment_variable_names_itself(raw):
    with pytest.raises(HmsparError, match=rf"HMSPAR_PARALLEL_JOBS: must be a positive integer .*{raw!r}"):
        threads.resolve("auto", "train.num_threads", environ={"HMSPAR_PARALLEL_JOBS": raw}, cpus=2)


@pytest.mark.parametrize("cls, section, key, value, message", [
    (TrainConfig, "train", "num_threads", -1, "train.num_threads: must be 'auto' or a non-negative integer, got -1"),
    (TrainConfig, "train", "num_threads", "all", "train.num_threads: expected "),
    (TrainConfig, "train", "num_threads", True, "train.num_threads: "),
    (LightGBMConfig, "baselines.lightgbm", "n_jobs", 0, "baselines.lightgbm.n_jobs: must be 'auto' or a positive integer, got 0"),
    (LightGBMConfig, "baselines.lightgbm", "n_jobs", "Auto", "baselines.lightgbm.n_jobs: expected "),
    (MiniRocketConfig, "baselines.minirocket", "n_jobs", 0, "baselines.minirocket.n_jobs: must be 'auto' or a positive integer"),
])
def test_bad_settings_fail_naming_the_params_key(cls, section, key, value, message):
    with pytest.raises(HmsparError) as info:
        build(cls, {key: value}, section)
    assert str(info.value).startswith(message), str(info.value)


def test_auto_is_the_default_and_accepted_in_configs():
    assert build(TrainConfig, {}, "train").num_threads == "auto"
    assert build(LightGBMConfig, {"n_jobs": "auto"}, "baselines.lightgbm").n_jobs == "auto"
    assert build(MiniRocketConfig, {}, "baselines.minirocket").n_jobs == "auto"


def _fake_queue(tmp_path, n_alive, n_dead):
    root = tmp_path / "repo"
    celery = root / ".dvc" / "tmp" / "exps" / "celery"
    celery.mkdir(parents=True)
    run_dir = root / ".dvc" / "tmp" / "exps" / "tmpabc123"
    run_dir.mkdir()
    procs = []
    for k in range(n_alive):
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        procs.append(p)
        (celery / f"dvc-exp-worker-{k + 1}.pid").write_text(str(p.pid))
    for k in range(n_dead):
        p = subprocess.Popen([sys.executable, "-c", "pass"])
        p.wait()
        (celery / f"dvc-exp-worker-{n_alive + k + 1}.pid").write_text(str(p.pid))
    return root, run_dir, procs


def test_queued_experiments_count_live_dvc_queue_workers(tmp_path, monkeypatch):
    root, run_dir, procs = _fake_queue(tmp_path, n_alive=2, n_dead=1)
    monkeypatch.chdir(run_dir)  # DVC runs a queued experiment in a copy under .dvc/tmp/exps/
    try:
        env = {"DVC_ROOT": str(root), "DVC_EXP_NAME": "exp-1"}
        assert threads.queue_workers(env, cwd=run_dir) == 2
        assert threads.resolve("auto", "k", environ=env, cpus=2) == 1  # without the env var: 2 // 2
        assert threads.parallel_jobs({**env, "HMSPAR_PARALLEL_JOBS": "1"}) == 1  # the variable wins
        # not a queued run: a workspace `dvc exp run` (cwd outside .dvc/tmp/exps), or no DVC variables
        assert threads.queue_workers(env, cwd=root) is None
        assert threads.queue_workers({"DVC_ROOT": str(root)}, cwd=run_dir) is None
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert threads.queue_workers(env, cwd=run_dir) is None  # every worker gone


def test_limited_sets_and_restores_torch_and_blas_threads():
    torch = pytest.importorskip("torch")
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with threads.limited(target):
        assert torch.get_num_threads() == target
        assert all(pool["num_threads"] == target for pool in threadpool_info())
    assert torch.get_num_threads() == before
    with threads.limited(0):  # 0: unchanged
        assert torch.get_num_threads() == before


def test_the_trainer_fits_with_the_resolved_count_and_restores_it(monkeypatch):
    torch = pytest.importorskip("torch")
    import numpy as np
    from torch import nn

    from hmspar.training.trainer import Trainer

    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, batch):
            seen.append(torch.get_num_threads())
            return self.lin(batch["static"])  # (B, 3) -> (B, 1)

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    before = torch.get_num_threads()
    target = before + 1  # differs from the current count, so the test sees the policy at work
    monkeypatch.setattr(threads, "available_cpus", lambda: 2 * target)
    monkeypatch.setenv("HMSPAR_PARALLEL_JOBS", "2")
    cfg = build(TrainConfig, {"epochs": 1, "batch_size": 20, "patience": 1}, "train")  # num_threads: auto
    Trainer(cfg, seed=0).fit(Probe(), {"static": X[:30]}, y[:30], {"static": X[30:]}, y[30:])
    assert seen and set(seen) == {target}
    assert torch.get_num_threads() == before
    monkeypatch.setenv("HMSPAR_PARALLEL_JOBS", "many")
    with pytest.raises(HmsparError, match="HMSPAR_PARALLEL_JOBS: must be a positive integer"):
        Trainer(cfg, seed=0).fit(Probe(), {"static": X[:30]}, y[:30], {"static": X[30:]}, y[30:])



def _env_without_openmp_wait() -> dict[str, str]:
    """This environment without any OpenMP wait setting (the user's or the lab's mark)."""
    return {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", hmspar.SPIN_MARK)}


def test_importing_hmspar_sets_the_openmp_wait_before_torch_loads_unless_the_user_chose():
    """GNU OpenMP reads GOMP_SPINCOUNT when it loads: importing hmspar sets it (and marks it as its own) before
    torch or LightGBM load, unless the user set a wait policy of their own."""
    base = _env_without_openmp_wait()
    code = ("import sys, os, hmspar; assert 'torch' not in sys.modules; "
            f"print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('{hmspar.SPIN_MARK}'))")

    def spin(env):
        return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                              check=True, cwd=ROOT).stdout.split()

    chosen, mark = spin({})
    assert chosen in (hmspar.OPENMP_SPINCOUNT, hmspar.OPENMP_SPINCOUNT_BUSY) and mark == chosen
    assert spin({"GOMP_SPINCOUNT": "500"}) == ["500", "None"]
    assert spin({"OMP_WAIT_POLICY": "PASSIVE"}) == ["None", "None"]


def _ticks(*readings):
    """A fake ``/proc/stat`` reader returning the given (non-idle, total, own) tick triples in turn."""
    it = iter(readings)
    return lambda cpus: next(it)


def test_cpus_busy_elsewhere_counts_other_processes_work_on_our_cpus():
    n = len(os.sched_getaffinity(0))
    # over the look each CPU ran 10 ticks: 10 * n ticks in all, of which 15 non-idle, 5 of them our own
    assert hmspar.cpus_busy_elsewhere(0.0, _ticks((100, 1000, 7), (115, 1000 + 10 * n, 12))) == pytest.approx(1.0)
    assert hmspar.cpus_busy_elsewhere(0.0, _ticks((100, 1000, 7), (100, 1000 + 10 * n, 7))) == 0.0
    assert hmspar.cpus_busy_elsewhere(0.0, _ticks((100, 1000, 7), (100, 1000, 7))) == 0.0  # no tick elapsed

    def unreadable(cpus):
        raise OSError("no /proc here")

    assert hmspar.cpus_busy_elsewhere(0.0, unreadable) == 0.0  # not Linux: taken as idle


def test_cpus_busy_elsewhere_sees_a_busy_neighbour():
    """A real busy loop in another process shows as about one CPU of work elsewhere."""
    hog = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 20\nwhile time.time() < t: pass"])
    try:
        time.sleep(0.3)
        assert hmspar.cpus_busy_elsewhere(0.2) >= hmspar.BUSY_CPUS
    finally:
        hog.kill()
        hog.wait()


@pytest.mark.parametrize("env, busy, expected", [
    ({}, 0.0, "10000"),                                                 # idle cores: bounded spinning
    ({}, 1.2, "0"),                                                     # a neighbour: no spinning
    ({"GOMP_SPINCOUNT": "0", "HMSPAR_GOMP_SPINCOUNT": "0"}, 0.1, "10000"),  # a parent's choice: look again
    ({"GOMP_SPINCOUNT": "500", "HMSPAR_GOMP_SPINCOUNT": "0"}, 1.0, "500"),  # the user's own value stays
    ({"GOMP_SPINCOUNT": "500"}, 0.0, "500"),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, 1.0, None),
])
def test_the_openmp_wait_follows_the_cpus_unless_the_user_chose(env, busy, expected):
    environ = dict(env)
    hmspar.choose_openmp_wait(environ, lambda: busy)
    assert environ.get("GOMP_SPINCOUNT") == expected
    lab_chose = "GOMP_SPINCOUNT" not in env or env.get("HMSPAR_GOMP_SPINCOUNT") == env["GOMP_SPINCOUNT"]
    assert environ.get(hmspar.SPIN_MARK) == (expected if lab_chose and "OMP_WAIT_POLICY" not in env else None)


_FIT = """
import hashlib, os, sys
import numpy as np, torch, yaml
from hmspar.models.registry import make_model
params = yaml.safe_load(open('params.yaml'))
section = dict(params['model'])
section['train'] = {**params['train'], 'max_steps': 12, 'min_steps': 12, 'num_threads': 2}
rng = np.random.default_rng(0)
n, C, T = 96, 2, 12
y = rng.integers(0, 2, n)
X = {'series': rng.normal(size=(n, C, T)).astype(np.float32), 'mask': np.ones((n, C, T), np.float32),
     'image': rng.uniform(-1, 1, size=(n, 2 * C, 16, 16)).astype(np.float32),
     'text': rng.normal(size=(n, 8)).astype(np.float32), 'static': rng.normal(size=(n, 3)).astype(np.float32)}
m = make_model('hmspar', section, 0, where='model')
m.fit({k: v[:64] for k, v in X.items()}, y[:64], {k: v[64:] for k, v in X.items()}, y[64:])
p = np.ascontiguousarray(m.predict_proba({k: v[64:] for k, v in X.items()}))
print(os.environ['GOMP_SPINCOUNT'], torch.get_num_threads(), hashlib.md5(p.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_the_openmp_wait_changes_no_result_byte():
    """HMSPAR fitted at two threads with spinning waits and with none gives the same predictions, byte for byte:
    the lab's look at the CPUs may choose either."""
    base = _env_without_openmp_wait()
    out = [subprocess.run([sys.executable, "-c", _FIT], env={**base, "GOMP_SPINCOUNT": spin}, capture_output=True,
                          text=True, check=True, cwd=ROOT).stdout.split()[-3:] for spin in ("10000", "0")]
    assert [o[0] for o in out] == ["10000", "0"]
    assert out[0][1:] == out[1][1:]

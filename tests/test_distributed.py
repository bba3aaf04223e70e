"""Data-parallel training over 2 CPU processes (Gloo) gives the single-process result; the train stage
relaunches itself through torchrun and only rank 0 writes outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from hmspar.config import build  # noqa: E402
from hmspar.data.splits import stratified_split  # noqa: E402
from hmspar.errors import HmsparError  # noqa: E402
from hmspar.training import distributed  # noqa: E402
from hmspar.training.trainer import TrainConfig, Trainer, predict_logits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["OMP_NUM_THREADS"] = "1"
    for key in (*distributed.WORKER_ENV, "TORCHELASTIC_RUN_ID"):
        env.pop(key, None)
    return env


# ------------------------------------------------------------------------------ unit level, no processes
def test_config_shard_and_errors_without_processes():
    cfg = build(TrainConfig, {"batch_size": 8, "distributed": {"nproc": 2, "backend": "gloo"}}, "train")
    assert cfg.distributed == distributed.DistributedConfig(nproc=2, backend="gloo")
    assert TrainConfig().distributed.nproc == 1
    with pytest.raises(HmsparError, match=r"train\.distributed\.backend"):
        build(TrainConfig, {"distributed": {"backend": "mpi"}}, "train")
    with pytest.raises(HmsparError, match=r"train\.distributed\.nproc: must be a positive integer"):
        build(TrainConfig, {"distributed": {"nproc": 0}}, "train")
    with pytest.raises(HmsparError, match=r"train\.batch_size: .*at least two rows"):
        build(TrainConfig, {"batch_size": 3, "distributed": {"nproc": 2}}, "train")
    idx = np.arange(103) * 3
    parts = [distributed.shard(idx, r, 4) for r in range(4)]
    assert np.array_equal(np.concatenate(parts), idx) and {p.size for p in parts} == {25, 26}
    assert not distributed.is_active() and distributed.rank() == 0 and distributed.is_main()
    cmd = distributed.torchrun_command(["-m", "stages.train", "r"], 3)
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3", "-m"]
    X = {"static": np.zeros((20, 2), np.float32)}
    y = np.arange(20) % 2
    with pytest.raises(HmsparError, match=r"must run in 2 processes started by torchrun"):
        Trainer(build(TrainConfig, {"distributed": {"nproc": 2}}, "train"), seed=0).fit(
            nn.Linear(2, 1), X, y, X, y)


# ------------------------------------------------------------------------------ Trainer over 2 processes
WORKER = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from torch import nn
    sys.path.insert(0, sys.argv[2])
    from test_distributed import make_data, make_net, trainer_config
    from hmspar.errors import HmsparError
    from hmspar.training import distributed
    from hmspar.training.trainer import Trainer, predict_logits

    X, y, Xv, yv = make_data()
    torch.manual_seed(0)
    result = Trainer(trainer_config(2), seed=0).fit(make_net(), X, y, Xv, yv)
    logits = predict_logits(result.module, Xv, 64, torch.device("cpu"), distributed=True)

    class Unused(nn.Module):  # one branch never used: DDP needs find_unused_parameters
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(6, 1), nn.Linear(6, 1)
        def forward(self, batch):
            return self.used(batch["static"])
    try:
        Trainer(trainer_config(2), seed=0).fit(Unused(), X, y, Xv, yv)
        message = "no error"
    except HmsparError as exc:
        message = str(exc)
    if distributed.is_main():
        np.save(sys.argv[1], logits)
        with open(sys.argv[1] + ".txt", "w") as fh:
            fh.write(f"{result.best_epoch}\\n{[h['train_loss'] for h in result.history]}\\n{message}\\n")
    distributed.destroy_process_group()
''')


def make_data(n: int = 600):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.5 * rng.normal(size=n) > 0.3).astype(np.int64)
    cut = int(0.7 * n)
    return {"static": X[:cut]}, y[:cut], {"static": X[cut:]}, y[cut:]


def make_net() -> nn.Module:
    return nn.Sequential(_Static(), nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))


class _Static(nn.Module):
    def forward(self, batch):
        return batch["static"]  # (B, F)


def trainer_config(nproc: int) -> TrainConfig:
    # batch 63 does not split evenly over 2 ranks: the loss weighting must still give the global mean
    return build(TrainConfig, {"epochs": 4, "batch_size": 63, "lr": 1e-2, "patience": 4, "num_threads": 1,
                               "distributed": {"nproc": nproc}}, "train")


def test_two_gloo_processes_match_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "logits.npy"
    proc = subprocess.run(distributed.torchrun_command([str(script), str(out), str(Path(__file__).parent)], 2),
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    X, y, Xv, yv = make_data()
    torch.manual_seed(0)
    single = Trainer(trainer_config(1), seed=0).fit(make_net(), X, y, Xv, yv)
    expect = predict_logits(single.module, Xv, 64, torch.device("cpu"))
    got = np.load(out)
    assert got.shape == expect.shape == (180, 1)
    np.testing.assert_allclose(got, expect, atol=1e-4)
    best, losses, message = out.with_suffix(".npy.txt").read_text().splitlines()
    assert int(best) == single.best_epoch
    np.testing.assert_allclose(eval(losses), [h["train_loss"] for h in single.history], rtol=1e-4)
    assert "train.distributed.find_unused_parameters: true" in message


# ------------------------------------------------------------------------------ the train stage
def write_project(root: Path, nproc: int) -> None:
    """A project directory: the tiny HMSPAR params, one run on a synthetic features directory."""
    tiny = yaml.safe_load((ROOT / "tests" / "params_tiny.yaml").read_text())
    params = {
        "datasets": {"toy": {"seed": 1, "n_entities": 700, "length": 12, "image_size": 6}},
        "runs": {"toy": {"toy-churn": {"task": "churn"}}},
        "hmspar_runs": {"toy-churn": {"dataset": "toy"}},
        "seeds": [0],
        "selection": {"small_train_rows": 0},  # the validation regime: k-fold selection is tested elsewhere
        # ResNet-18 image branch: the toy's test ROC-AUC margins (> 0.8, the two fits within 0.02) were set with it; the
        # relaunch, not the encoder, is under test (with ResNet-10 the single-process fit reached 0.77-0.81)
        "model": {**tiny["model"], "image": {**tiny["model"].get("image", {}), "blocks": 2}},
        "train": {**tiny["train"], "epochs": 4, "max_steps": 0, "patience_steps": 0, "patience": 4, "batch_size": 64,
                  "num_threads": 1,
                  "distributed": {"nproc": nproc, "backend": "auto"}},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rng = np.random.default_rng(5)
    n, t = 700, 12
    d = root / "data" / "features" / "toy"
    d.mkdir(parents=True)
    static = rng.normal(size=(n, 3)).astype(np.float32)
    level = rng.normal(size=n)
    series = np.log1p(np.exp(level[:, None, None] + 0.3 * rng.normal(size=(n, 1, t)))).astype(np.float32)
    y = (static[:, 0] + level + 0.4 * rng.normal(size=n) > 0.4).astype(np.int8)
    np.save(d / "ids.npy", np.array([f"t{i:04d}" for i in range(n)]))
    np.save(d / "series.npy", series)
    np.save(d / "mask.npy", np.ones_like(series))
    np.save(d / "image.npy", np.tanh(series[:, :, :6, None] * series[:, :, None, :6]).repeat(2, axis=1))
    np.save(d / "text.npy", rng.normal(size=(n, 8)).astype(np.float32))
    np.save(d / "static.npy", static)
    np.savez(d / "labels.npz", churn=y)
    np.savez(d / "splits.npz", churn=stratified_split(y, 0.2, 0.3, 2))
    (d / "meta.json").write_text(json.dumps({"channels": ["spend"], "tasks": ["churn"],
                                             "static_numeric": [True, True, True]}))


def run_stage(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.train", "toy-churn"], cwd=root, env=child_env(),
                          capture_output=True, text=True, timeout=180)


def test_train_stage_relaunches_under_torchrun_and_rank0_writes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for root, nproc in ((one, 1), (two, 2)):
        root.mkdir()
        write_project(root, nproc)
        proc = run_stage(root)
        assert proc.returncode == 0, proc.stderr[-3000:]
    out = two / "results" / "hmspar" / "toy-churn"
    assert sorted(p.name for p in out.iterdir()) == ["seed0"]
    assert sorted(p.name for p in (out / "seed0").iterdir()) == ["metrics.json", "model.pkl", "predictions.csv"]
    assert not list((two / "results" / "hmspar").glob(".*tmp*"))  # no second writer's leftovers
    assert (two / "dvclive" / "toy-churn" / "seed0" / "metrics.json").exists()
    m1 = json.loads((one / "results/hmspar/toy-churn/seed0/metrics.json").read_text())
    m2 = json.loads(out.joinpath("seed0/metrics.json").read_text())
    assert m2["n_test"] == m1["n_test"] and m1["test"]["roc_auc"] > 0.8
    assert abs(m1["test"]["roc_auc"] - m2["test"]["roc_auc"]) < 0.02
    p1 = pd.read_csv(one / "results/hmspar/toy-churn/seed0/predictions.csv")
    p2 = pd.read_csv(out / "seed0" / "predictions.csv")
    assert list(p1["id"]) == list(p2["id"])
    assert np.corrcoef(p1["prob"], p2["prob"])[0, 1] > 0.95
    # an invalid distributed setting fails the stage before launching, with status 2 and the key named
    params = yaml.safe_load((two / "params.yaml").read_text())
    params["train"]["distributed"]["nproc"] = 3
    params["train"]["batch_size"] = 4
    (two / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage(two)
    assert proc.returncode == 2 and "error: train.batch_size: the global batch" in proc.stderr, proc.stderr[-2000:]

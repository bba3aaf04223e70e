"""Hyperparameter sweeps through DVC's own experiment queue on the tiny profile.

Queued experiments run in temporary copies of the *committed* repository (``.dvc/tmp/exps``), with the
project's DVC cache: code, ``params.yaml``, ``dvc.yaml``, ``dvc.lock`` and the ``.gitignore`` files DVC
writes for cached outputs must be committed, as must the ``cache: false`` outputs (DVCLive curves,
metrics, plots) for stages the experiment does not rerun. Cached outputs (``data/``, baseline results)
are checked out from the cache, so only the stages whose parameters changed rerun.
"""

from __future__ import annotations

import json
import time

import pytest

from conftest import run

pytestmark = pytest.mark.slow

#: The experiment reproduces one training run and the evaluation (``--single-item``), which keeps this
#: test near 30 s on two busy cores; a real sweep queues several values and leaves out the targets, so every
#: ``train@`` stage reruns. One queued value is enough to show the queue's mechanics: it is compared with the
#: committed run (``dvc exp show``'s baseline row), which is the sweep's other point.
TARGETS = ["--single-item", "train@retail-engagement", "evaluate"]
LR = "0.02"
NAME = "lr-0p02"


def queue_status(project) -> str:
    return run(["dvc", "queue", "status"], project).stdout


def test_lr_sweep_through_dvc_queue(tiny_project):
    project = tiny_project
    run(["git", "add", "-A"], project)  # dvc.lock, DVC's .gitignore files and the cache: false outputs
    run(["git", "commit", "-q", "--allow-empty", "-m", "reproduced tiny profile"], project)
    run(["dvc", "exp", "run", "--queue", "-n", NAME, *TARGETS, "-S", f"train.lr={LR}"], project)
    assert queue_status(project).count("Queued") == 1
    # one worker: with two, DVCLive 3's `Live.end()` in both workers removes the same VS Code signal file
    # (.dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED) after checking that it exists, and the one that loses the race
    # fails its experiment with FileNotFoundError (seen in CI; docs/experiment.md)
    run(["dvc", "queue", "start", "-j", "1"], project)
    try:
        deadline = time.monotonic() + 240
        while True:
            status = queue_status(project)
            if "Queued" not in status and "Running" not in status:
                break
            assert time.monotonic() < deadline, f"queue did not finish:\n{status}"
            time.sleep(2)
    finally:
        run(["dvc", "queue", "stop"], project, check=False)
    assert status.count("Success") == 1, status + "\n".join(
        run(["dvc", "queue", "logs", line.split()[1]], project, check=False).stdout[-3000:]
        for line in status.splitlines() if "Failed" in line)

    logs = run(["dvc", "queue", "logs", NAME], project).stdout
    assert "Running stage 'train@retail-engagement'" in logs and "Running stage 'generate@" not in logs, logs[-3000:]

    shown = json.loads(run(["dvc", "exp", "show", "--json", "--sort-by", "train.lr"], project).stdout)
    baseline = next(row for row in shown if row.get("rev") != "workspace" and row.get("experiments"))
    experiment = next(rev for exp in baseline["experiments"] for rev in exp["revs"] if rev.get("name") == NAME)
    base_data, exp_data = baseline["data"], experiment["data"]
    assert exp_data["params"]["params.yaml"]["data"]["train"]["lr"] == float(LR)
    assert base_data["params"]["params.yaml"]["data"]["train"]["lr"] != float(LR)
    # HMSPAR's mean test ROC-AUC over the runs moved with the retrained run; `dvc exp diff` names it
    aucs = [d["metrics"]["metrics/headline.json"]["data"]["hmspar_auc"] for d in (base_data, exp_data)]
    assert aucs[0] != aucs[1], aucs
    diff = json.loads(run(["dvc", "exp", "diff", "--json", baseline["rev"], NAME], project).stdout)
    assert "hmspar_auc" in diff["metrics"]["metrics/headline.json"], diff
    assert "train.lr" in diff["params"]["params.yaml"], diff
    # the workspace is untouched: nothing is stale and params.yaml keeps its committed value
    assert json.loads(run(["dvc", "status", "--json"], project).stdout) == {}
    table = run(["dvc", "exp", "show", "--csv", "--sort-by", "metrics/headline.json:hmspar_auc",
                 "--keep", "train.lr"], project).stdout
    assert "train.lr" in table.splitlines()[0]

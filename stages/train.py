"""DVC stage `train@<run>`: HMSPAR on one dataset-task, every seed; see :func:`hmspar.pipeline.train`.

With ``train.distributed.nproc: N > 1`` (top-level ``train`` or the run's ``hmspar_runs.<run>.train`` override)
the stage relaunches itself in N processes through torchrun (``python -m torch.distributed.run
--standalone --nproc_per_node N -m stages.train <run>``) and waits; each worker joins the process group,
trains its shard of every batch, and rank 0 alone writes the outputs (see
:mod:`hmspar.training.distributed`). With ``nproc: 1`` the stage trains in this process, as before.
"""

from hmspar import cli, pipeline
from hmspar.pipeline import fit
from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.params import load_params
from hmspar.training import distributed
from hmspar.training.trainer import TrainConfig


def requested_distributed(run: str, params: dict) -> distributed.DistributedConfig:
    """``train.distributed`` of ``run`` after merging its ``hmspar_runs.<run>.train`` override (validated)."""
    _, entry = pipeline.hmspar_run(params, run)
    section = pipeline.deep_merge(params.get("train") or {}, entry.train)
    return build(TrainConfig, section, "train").distributed


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """HMSPAR's module, loaded through the registry (for the dependency test)."""
    from hmspar.models.registry import module_name

    return [module_name("hmspar")]


def _run(argv: list[str]) -> None:
    run = argv[0]
    params = load_params()
    cfg = requested_distributed(run, params)
    if cfg.nproc > 1 and not distributed.in_worker():
        status = distributed.launch(["-m", "stages.train", run], cfg.nproc)
        if status != 0:
            raise HmsparError(f"train@{run}: distributed training in {cfg.nproc} processes failed "
                              f"(torchrun exit status {status}; the workers' errors are printed above)")
        return
    try:
        fit.train(run, params, progress=distributed.is_main())
    finally:
        distributed.destroy_process_group()


if __name__ == "__main__":
    cli.main(_run, "python -m stages.train <run>", n_args=1)

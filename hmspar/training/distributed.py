"""Multi-process data-parallel training: settings, launching through torchrun, and the few collective
operations the Trainer needs.

How it fits together
--------------------
``params.yaml: train.distributed: {nproc: N, backend: auto}``. With ``nproc: 1`` (the default) nothing
here runs: no process group is created and training is exactly the single-process code path. With
``nproc > 1`` the ``train`` stage relaunches itself as ``python -m torch.distributed.run --standalone
--nproc_per_node N -m stages.train <run>`` (:func:`launch`). Each worker then

* joins a process group (:func:`init_process_group`; backend ``auto`` is NCCL on CUDA, Gloo on CPU;
  each worker uses ``cuda:<LOCAL_RANK>`` on a multi-GPU machine);
* trains the same module wrapped in ``DistributedDataParallel``: every rank draws the *same* seeded
  permutation per epoch, cuts it into the same global batches of ``train.batch_size`` rows and takes its
  own disjoint shard of each (:func:`shard`), so an epoch covers every training row exactly once and
  gradients are all-reduced (averaged) every step; the global batch, number of steps and learning-rate
  schedule are those of a single process;
* computes validation logits on its shard of the validation rows and all-gathers them
  (:func:`gather_rows`), so every rank sees the full validation set; rank 0's early-stopping decision is
  broadcast (:func:`broadcast_flags`), so all ranks stop at the same epoch;
* writes nothing unless it is rank 0 (:func:`is_main`): predictions, metrics, the pickled model and the
  DVCLive curves come from rank 0 only (:func:`hmspar.runner.run_model`).

Differences from one process, by design: batch-normalisation statistics are computed per shard on CPU
(``SyncBatchNorm`` is used on CUDA only, torch supports it nowhere else), and rank 0's running
statistics are broadcast before each validation; dropout on rank ``r > 0`` is seeded from
``(seed, r)``. Without batch normalisation or dropout, one and N processes give the same model up to
floating-point summation order.

Torch is imported inside functions, so importing :class:`DistributedConfig` stays cheap.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Literal

import numpy as np

from hmspar.errors import HmsparError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

BACKENDS = ("auto", "nccl", "gloo")
#: Environment variables torchrun sets in every worker.
WORKER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """``train.distributed``: data-parallel training over several processes on one machine.

    Parameters
    ----------
    nproc : int
        Number of worker processes (one per GPU on CUDA). 1 trains in the calling process, as before.
    backend : {"auto", "nccl", "gloo"}
        Collective backend; ``auto`` is NCCL when training on CUDA and Gloo on CPU.
    find_unused_parameters : bool
        Passed to ``DistributedDataParallel``; set it to true when some parameters get no gradient in a
        step (e.g. experts a sparse router skips). HMSPAR computes every expert, so false (faster) works.
    timeout_s : int
        Seconds a collective operation may wait for the other ranks before failing.
    """

    nproc: int = 1
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    find_unused_parameters: bool = False
    timeout_s: int = 1800

    def __post_init__(self) -> None:
        if isinstance(self.nproc, bool) or not isinstance(self.nproc, int) or self.nproc < 1:
            raise ValueError(f"nproc: must be a positive integer, got {self.nproc!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, int) or self.timeout_s < 1:
            raise ValueError(f"timeout_s: must be a positive integer, got {self.timeout_s!r}")


# ---------------------------------------------------------------------------------------------- state
def in_worker() -> bool:
    """True inside a process started by torchrun (the worker environment variables are set)."""
    return all(k in os.environ for k in WORKER_ENV)


def _dist():
    """``torch.distributed`` if torch is already imported and a process group is initialised, else None."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist
    return None


def is_active() -> bool:
    """True when a process group with more than one rank is initialised in this process."""
    dist = _dist()
    return dist is not None and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: from the process group, else torchrun's ``RANK``, else 0."""
    dist = _dist()
    if dist is not None:
        return int(dist.get_rank())
    return int(os.environ.get("RANK", 0)) if in_worker() else 0


def world_size() -> int:
    """Number of ranks: from the process group, else torchrun's ``WORLD_SIZE``, else 1."""
    dist = _dist()
    if dist is not None:
        return int(dist.get_world_size())
    return int(os.environ.get("WORLD_SIZE", 1)) if in_worker() else 1


def local_rank() -> int:
    """Rank on this machine (torchrun's ``LOCAL_RANK``), 0 outside a worker."""
    return int(os.environ.get("LOCAL_RANK", 0)) if in_worker() else 0


def is_main() -> bool:
    """True on rank 0 (and in any single-process run): the only rank that writes outputs."""
    return rank() == 0


# ---------------------------------------------------------------------------------------------- launch
def torchrun_command(module_args: list[str], nproc: int) -> list[str]:
    """The command that runs ``python <module_args>`` in ``nproc`` workers on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
            *module_args]


def launch(module_args: list[str], nproc: int, env: dict[str, str] | None = None) -> int:
    """Run ``module_args`` (e.g. ``["-m", "stages.train", "<run>"]``) under torchrun with ``nproc`` workers
    and wait; returns torchrun's exit status (non-zero when any worker failed).

    ``OMP_NUM_THREADS`` defaults to ``max(1, cpu_count // nproc)`` so the workers share the cores instead
    of oversubscribing them (torchrun would otherwise set 1).
    """
    if nproc < 2:
        raise HmsparError(f"train.distributed.nproc: launching needs at least 2 processes, got {nproc}")
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(nproc))))
    for key in (*WORKER_ENV, "TORCHELASTIC_RUN_ID"):  # a nested launch must not inherit a parent group
        child_env.pop(key, None)
    return subprocess.call(torchrun_command(module_args, nproc), env=child_env)


def resolve_backend(backend: str, device: "torch.device") -> str:
    """``auto`` -> ``nccl`` on CUDA, ``gloo`` otherwise; NCCL without CUDA raises."""
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise HmsparError("train.distributed.backend: 'nccl' needs CUDA devices; use 'gloo' (or 'auto') on CPU")
    return backend


def worker_device(device: "torch.device") -> "torch.device":
    """The device of this worker: ``cuda:<LOCAL_RANK>`` for CUDA, else ``device`` unchanged."""
    import torch

    if device.type != "cuda" or not in_worker():
        return device
    n_gpus = torch.cuda.device_count()
    lr = local_rank()
    if lr >= n_gpus:
        raise HmsparError(f"train.distributed.nproc: worker {lr} has no GPU of its own ({n_gpus} visible); "
                          "use at most one process per GPU")
    torch.cuda.set_device(lr)
    return torch.device("cuda", lr)


def init_process_group(cfg: DistributedConfig, device: "torch.device") -> None:
    """Join the torchrun process group (once per process); checks that ``cfg.nproc`` matches the launch.

    Raises
    ------
    HmsparError
        Outside a torchrun worker, or when ``WORLD_SIZE`` differs from ``cfg.nproc``.
    """
    import torch.distributed as dist

    if not in_worker():
        raise HmsparError(
            f"train.distributed.nproc={cfg.nproc}: training must run in {cfg.nproc} processes started by "
            f"torchrun; the train stage relaunches itself (python -m stages.train <run>), other entry points "
            f"can use `torchrun --standalone --nproc_per_node {cfg.nproc} ...` or set nproc: 1")
    size = int(os.environ["WORLD_SIZE"])
    if size != cfg.nproc:
        raise HmsparError(f"train.distributed.nproc={cfg.nproc}, but torchrun started {size} processes")
    if not dist.is_available():
        raise HmsparError("train.distributed: this torch build has no torch.distributed support")
    if dist.is_initialized():
        if dist.get_world_size() != size:
            raise HmsparError(f"train.distributed: a process group of {dist.get_world_size()} ranks is "
                              f"already initialised, expected {size}")
        return
    dist.init_process_group(backend=resolve_backend(cfg.backend, device),
                            timeout=datetime.timedelta(seconds=cfg.timeout_s))


def destroy_process_group() -> None:
    """Leave the process group if one is initialised (a no-op otherwise)."""
    dist = _dist()
    if dist is not None:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- sharding
def shard(idx: np.ndarray, rank_: int | None = None, world: int | None = None) -> np.ndarray:
    """This rank's part of ``idx``: ``np.array_split(idx, world)[rank]`` (contiguous, disjoint, covering,
    sizes differing by at most one)."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    bounds = shard_bounds(len(idx), world)
    return idx[bounds[rank_]:bounds[rank_ + 1]]


def shard_bounds(n: int, world: int) -> np.ndarray:
    """(world + 1,) boundaries of ``np.array_split`` of ``n`` rows into ``world`` parts."""
    base, extra = divmod(int(n), int(world))
    sizes = np.full(world, base, dtype=np.int64)
    sizes[:extra] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def _collective_device() -> "torch.device":
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(local: np.ndarray, n_total: int) -> np.ndarray:
    """All-gather row blocks split as :func:`shard_bounds` (rank order) into the full (n_total, ...) array,
    available on every rank."""
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    bounds = shard_bounds(n_total, world)
    sizes = np.diff(bounds)
    if local.shape[0] != sizes[dist.get_rank()]:
        raise HmsparError(f"gather_rows: rank {dist.get_rank()} holds {local.shape[0]} rows, "
                          f"expected {sizes[dist.get_rank()]}")
    width = int(sizes.max())
    dev = _collective_device()
    padded = torch.zeros((width,) + tuple(local.shape[1:]), dtype=torch.float32, device=dev)
    padded[:local.shape[0]] = torch.from_numpy(np.ascontiguousarray(local, dtype=np.float32)).to(dev)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return np.concatenate([p[:s].cpu().numpy() for p, s in zip(parts, sizes)], axis=0)


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (float64)."""
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu().tolist()]


def broadcast_flags(flags: list[bool], src: int = 0) -> list[bool]:
    """Rank ``src``'s booleans on every rank (e.g. improved / stop decisions)."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int64, device=_collective_device())
    dist.broadcast(t, src=src)
    return [bool(v) for v in t.cpu().tolist()]


def broadcast_buffers(module: "nn.Module", src: int = 0) -> None:
    """Copy rank ``src``'s buffers (batch-norm running statistics) to every rank, in place."""
    import torch.distributed as dist

    dev = _collective_device()
    for buf in module.buffers():
        if buf.device == dev:
            dist.broadcast(buf.data, src=src)
        else:
            tmp = buf.data.to(dev)
            dist.broadcast(tmp, src=src)
            buf.data.copy_(tmp)


def barrier() -> None:
    """Wait for every rank (a no-op without a process group)."""
    dist = _dist()
    if dist is not None:
        dist.barrier()

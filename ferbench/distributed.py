"""One run on several processes (``torchrun --nproc-per-node N -m ferbench run ...``): ranks, shards, collectives.

Every rank plans the same run, loads the same data and builds the same model from the same seed. Rank 0
alone writes the database, checkpoints and artifacts; :meth:`World.share` hands its results (the run id, the
folds already recorded, the summary) to the other ranks. Each rank trains on a disjoint shard of every
epoch's seeded order (:meth:`World.shard`), so an epoch replays exactly on resume; evaluation splits the
test rows into equal padded slices, predicts them on every rank and gathers them back in row order
(:meth:`World.gather_rows`), so metrics are computed once over the whole test part.

Gradients are averaged by hand inside :meth:`ferbench.method.StepContext.optimize`, at the end of each
accumulation window and only over the optimizer slots that call steps, instead of wrapping the method in
``DistributedDataParallel``. DDP's reducer hooks every backward into its parameters and expects one
backward per forward over a fixed set of parameters; ferbench's methods call ``backward(inputs=...)`` once
per optimizer slot (an adversarial method back-propagates the discriminator's and the generator's losses
through the same forward, into different parameters), and accumulation would need ``no_sync``. Averaging
the named slots' gradients right before their step is correct for any number of slots and calls, at the cost
of not overlapping communication with the backward pass. Buffers (batch-norm statistics) follow rank 0
after every update, as DDP's ``broadcast_buffers`` does.

``train.batch_size`` is per rank: the global batch is ``batch_size x world size x grad_accum_steps``.
``train.lr_scaling`` says what happens to the learning rates: ``none`` keeps them, ``linear`` multiplies
every learning rate of every slot (and the schedule's floors) by the world size (Goyal et al., 2017).
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from .errors import FerbenchError, UsageError

if TYPE_CHECKING:
    import torch

    from .method import OptimizerSlot

T = TypeVar("T")

#: Environment variables torchrun (and submitit's TorchDistributedEnvironment) set for each rank.
RANK_ENV, WORLD_SIZE_ENV, LOCAL_RANK_ENV = "RANK", "WORLD_SIZE", "LOCAL_RANK"
#: ``train.lr_scaling`` rules.
LR_SCALING = ("none", "linear")
#: Elements reduced in one collective call (64 MiB of float32).
BUCKET_ELEMENTS = 1 << 24


def env_world_size() -> int:
    """The world size this process was launched with (1 outside torchrun)."""
    return int(os.environ.get(WORLD_SIZE_ENV, "1") or 1)


def is_main_process() -> bool:
    """Whether this process is rank 0 (or not distributed at all); read from the launcher's environment."""
    return int(os.environ.get(RANK_ENV, "0") or 0) == 0


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of one run; ``World()`` is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # --- data ---------------------------------------------------------------------------------------
    def shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's part of an epoch's order: every ``size``-th row from position ``rank``, after dropping
        the last ``len % size`` rows (a fresh random tail each epoch), so shards are disjoint and equal."""
        if not self.distributed:
            return order
        return order[: len(order) - len(order) % self.size][self.rank::self.size]

    def slice_rows(self, rows: np.ndarray) -> np.ndarray:
        """This rank's contiguous slice of ``rows`` for prediction, padded with the last row so that every
        rank predicts the same number of rows (:meth:`gather_rows` trims the padding)."""
        per_rank = -(-len(rows) // self.size)
        padded = np.concatenate([rows, np.repeat(rows[-1:], per_rank * self.size - len(rows))])
        return padded[self.rank * per_rank:(self.rank + 1) * per_rank]

    # --- collectives ------------------------------------------------------------------------------
    def share(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0, its result on every rank; when it raises on rank 0, every rank raises."""
        if not self.distributed:
            return compute()
        import torch.distributed as dist

        payload: list[Any] = [None]
        if self.is_main:
            try:
                payload[0] = ("ok", compute())
            except BaseException as exc:
                dist.broadcast_object_list([("error", f"{type(exc).__name__}: {exc}")], src=0)
                raise
        dist.broadcast_object_list(payload, src=0)
        status, value = payload[0]
        if status == "error":
            raise FerbenchError(f"rank 0 stopped the run: {value}")
        return value

    def main_first(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0, then on the other ranks (e.g. loading data: rank 0 fills the caches
        that the others then read)."""
        if self.is_main:
            value = compute()
            self.barrier()
            return value
        self.barrier()
        return compute()

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def max(self, value: float) -> float:
        """The largest ``value`` over the ranks."""
        if not self.distributed:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def gather_rows(self, local: torch.Tensor, total: int) -> torch.Tensor:
        """Every rank's equally long ``local`` rows (from :meth:`slice_rows`), concatenated in rank order and
        trimmed to ``total`` rows: the whole part in its original row order, on every rank (on the CPU)."""
        if not self.distributed:
            return local
        import torch
        import torch.distributed as dist

        on_device = local.to(self._collective_device()).contiguous()
        parts = [torch.empty_like(on_device) for _ in range(self.size)]
        dist.all_gather(parts, on_device)
        return torch.cat(parts)[:total].cpu()

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Average the gradients of ``params`` over the ranks. A parameter no rank gave a gradient keeps
        none (its optimizer skips it, as in one process); one that some ranks lack counts as zero there."""
        import torch
        import torch.distributed as dist

        present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                               device=self._collective_device())
        dist.all_reduce(present)
        chosen = [p for p, count in zip(params, present.tolist()) if count > 0]
        for p in chosen:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self._reduce_in_buckets([p.grad for p in chosen], average=True)

    def broadcast_state(self, module: torch.nn.Module, buffers_only: bool = False) -> None:
        """Give every rank rank 0's parameters and buffers (or only its buffers)."""
        if not self.distributed:
            return
        tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
        self._reduce_in_buckets([t.data for t in tensors], average=False)

    def _reduce_in_buckets(self, tensors: Iterable[torch.Tensor], average: bool) -> None:
        """All-reduce (mean) or broadcast from rank 0 (``average`` False) ``tensors`` in place, a few large
        flat buffers at a time."""
        import torch
        import torch.distributed as dist

        for bucket in _buckets(list(tensors)):
            flat = torch.cat([t.reshape(-1) for t in bucket]).to(self._collective_device())
            if average:
                dist.all_reduce(flat)
                flat.div_(self.size)
            else:
                dist.broadcast(flat, src=0)
            for tensor, piece in zip(bucket, flat.split([t.numel() for t in bucket])):
                tensor.copy_(piece.view_as(tensor))

    def _collective_device(self) -> torch.device:
        import torch

        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


def _buckets(tensors: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """Consecutive tensors of one dtype and device, up to :data:`BUCKET_ELEMENTS` elements per bucket."""
    bucket: list[torch.Tensor] = []
    size = 0
    for tensor in tensors:
        if bucket and (size + tensor.numel() > BUCKET_ELEMENTS or tensor.dtype != bucket[0].dtype
                       or tensor.device != bucket[0].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(tensor)
        size += tensor.numel()
    if bucket:
        yield bucket


def current_world() -> World:
    """The world of the initialised process group, or a single process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(rank=dist.get_rank(), size=dist.get_world_size(),
                 local_rank=int(os.environ.get(LOCAL_RANK_ENV, "0") or 0), backend=dist.get_backend())


@contextlib.contextmanager
def session(device_choice: str) -> Iterator[World]:
    """Join the process group the launcher describes (``WORLD_SIZE`` > 1): nccl on CUDA, gloo on the CPU;
    a group initialised by the caller is reused and left open."""
    import torch
    import torch.distributed as dist

    if env_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        yield current_world()
        return
    cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get(LOCAL_RANK_ENV, "0") or 0))
    try:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    except (RuntimeError, ValueError) as exc:
        raise FerbenchError(f"cannot join the torch.distributed process group ({str(exc).splitlines()[0]}); "
                            "start several processes with torchrun --nproc-per-node N -m ferbench run ...") from None
    try:
        yield current_world()
    finally:
        dist.destroy_process_group()


def local_device(device: torch.device, world: World) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` when the run is distributed on CUDA."""
    import torch

    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def lr_factor(rule: str, world: World) -> float:
    """What ``train.lr_scaling`` multiplies the learning rates by."""
    return float(world.size) if rule == "linear" else 1.0


def scale_learning_rates(slots: dict[str, OptimizerSlot], factor: float) -> None:
    """Multiply every learning rate of every slot by ``factor``, schedules included (their base rates);
    called before a checkpoint is restored, which then holds the same scaled rates."""
    if factor == 1.0:
        return
    for slot in slots.values():
        for group in slot.optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
        if slot.scheduler is not None and hasattr(slot.scheduler, "base_lrs"):
            slot.scheduler.base_lrs = [lr * factor for lr in slot.scheduler.base_lrs]


def require_shardable(rows: int, world: World) -> None:
    """A training part must give every rank at least one sample."""
    if world.distributed and rows < world.size:
        raise UsageError(f"the training part has {rows} samples, fewer than the {world.size} processes; "
                         "run on fewer processes")



def relaunch_with_torchrun(nproc: int, argv: Sequence[str]) -> None:
    """Replace this process by ``torchrun --standalone --nproc-per-node NPROC -m ferbench ARGV`` (``ferbench run
    --nproc N``); ``--standalone`` finds a free port, so several such runs can share a machine."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "ferbench", *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)

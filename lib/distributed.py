"""Data-parallel training over several processes, launched by ``torchrun``.

    torchrun --nproc_per_node 2 -m lib.train --params params/thesis.yaml

Every process (rank) holds the networks, the optimisers and the whole training split. Each
step, the configured (global) batch is cut into one equal shard per rank; each rank runs
the step on its shard, and the gradients are averaged over ranks (one all-reduce per
optimiser step) before clipping and the update, so every rank applies the same update, the
one a single process would compute from the whole batch. BatchNorm layers use the
statistics of the whole batch (:class:`GlobalBatchNorm`), as a single process would.

Randomness is a function of (seed, epoch, rank): the batch order comes from (seed, epoch)
and is the same on every rank; each rank's augmentations (flips, novel views, noise,
dropout) come from (seed, epoch, rank). A run can therefore resume from any epoch's
checkpoint on any number of ranks, and resuming on the same number of ranks continues
exactly where it stopped. Rank 0 alone writes the run folder (config, history, checkpoint).

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing here does anything: one process
trains on the whole batch.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def init(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process, joining the process group that
    ``torchrun`` describes in the environment (NCCL on CUDA, gloo on CPU). On CUDA each
    rank takes the GPU of its local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def epoch_seed(seed: int, epoch: int, rank: int | None = None) -> int:
    """A well-mixed 63-bit seed for (seed, epoch) or (seed, epoch, rank)."""
    key = [seed, epoch] if rank is None else [seed, epoch, rank + 1]
    return int(np.random.SeedSequence(key).generate_state(2, np.uint64)[0] >> np.uint64(1))


def average_gradients(params: list[torch.Tensor]) -> None:
    """Replace every rank's gradients by their mean over ranks (one all-reduce)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for g, new in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(new.view_as(g))


def mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over ranks (the tensor itself with one process)."""
    if not is_distributed():
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / dist.get_world_size()


def _sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over ranks, differentiable (its gradient: the sum of the ranks'
    gradients): torch's functional collective, which replaces the deprecated
    ``torch.distributed.nn.functional.all_reduce`` (a FutureWarning at every call)."""
    from torch.distributed import _functional_collectives as funcol

    return funcol.wait_tensor(funcol.all_reduce(t, "sum", dist.group.WORLD))


class GlobalBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the whole batch over all ranks
    (torch's SyncBatchNorm runs on GPUs only). With one process it is BatchNorm1d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        n = _sum_over_ranks(x.new_full((1,), float(len(x))))
        mean = _sum_over_ranks(x.sum(0)) / n
        var = _sum_over_ranks(((x - mean) ** 2).sum(0)) / n
        with torch.no_grad():
            m = self.momentum
            self.running_mean.lerp_(mean.detach(), m)
            self.running_var.lerp_(var.detach() * n / (n - 1), m)
            self.num_batches_tracked += 1
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def global_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every BatchNorm1d of ``module`` into a :class:`GlobalBatchNorm` in place (same
    parameters and buffers, so checkpoints are unchanged)."""
    for bn in [m for m in module.modules() if type(m) is nn.BatchNorm1d]:
        bn.__class__ = GlobalBatchNorm
    return module

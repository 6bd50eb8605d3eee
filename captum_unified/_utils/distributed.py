"""The process group of a distributed run (``torchrun``), shared by the
evaluation runner (:func:`captum_unified.metrics.evaluate`) and the command
line (``captum-unified evaluate``).

``torchrun --nproc_per_node=N`` starts N processes and sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; from them
:func:`launch_device` picks each process's device and :func:`init_process_group`
creates the default process group (NCCL for CUDA, gloo otherwise;
``CAPTUM_UNIFIED_BACKEND`` overrides). :class:`ProcessGroup` is what the
runner uses: rank, world size, barrier, all-gather, and a one-process stand-in
when not distributed.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["ProcessGroup", "init_process_group", "launch_device", "launched_world_size"]


def launched_world_size() -> int:
    """The number of processes torchrun started (``WORLD_SIZE``; 1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launch_device(spec: str = "auto") -> torch.device:
    """This process's device: ``"auto"`` is ``cuda:LOCAL_RANK`` when CUDA is
    there, else the CPU; ``"cuda"`` is ``cuda:LOCAL_RANK``; anything else as
    given. A CUDA device becomes the current one."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if spec == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(spec if spec != "cuda" else f"cuda:{local_rank}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def init_process_group(device: torch.device | None = None) -> bool:
    """Create the default process group from torchrun's environment, unless
    one exists; ``True`` if this call created it (the caller destroys it).

    The backend is ``CAPTUM_UNIFIED_BACKEND`` if set, else NCCL when ``device``
    is a CUDA device (``device=None``: when CUDA is available), else gloo.

    Raises:
        RuntimeError: torch.distributed is missing from this build, or the
            process was not started by torchrun (no ``RANK``/``WORLD_SIZE``).
    """
    if not dist.is_available():
        raise RuntimeError("distributed=True but torch.distributed is not available in this build.")
    if dist.is_initialized():
        return False
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError(
            "distributed=True needs a process group: launch with torchrun (which sets RANK, "
            "WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or call torch.distributed.init_process_group first."
        )
    cuda = device.type == "cuda" if device is not None else torch.cuda.is_available()
    dist.init_process_group(backend=os.environ.get("CAPTUM_UNIFIED_BACKEND", "nccl" if cuda else "gloo"))
    return True


class ProcessGroup:
    """The process group of a distributed evaluation (a one-process stand-in
    when ``distributed`` is False). Creates the default group from torchrun's
    environment when none exists, and then destroys it in :meth:`close`."""

    def __init__(self, distributed: bool) -> None:
        self.dist = dist
        self.owned = init_process_group() if distributed else False
        self.on = bool(distributed)
        self.rank = dist.get_rank() if self.on else 0
        self.world = dist.get_world_size() if self.on else 1

    def barrier(self) -> None:
        if self.on:
            if self.dist.get_backend() == "nccl":
                self.dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                self.dist.barrier()

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order."""
        if not self.on:
            return [obj]
        out: list[Any] = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.owned:
            self.dist.destroy_process_group()

"""Several processes (``textclf.models.launch``), one result: the inference stages ``shard`` their batches and
meet in one output folder (``shared_output_dir``) or one summed array (``combine``); no-ops with one process."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import torch

from textclf.common.errors import PipelineError
from textclf.io.outputs import atomic_path


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """This process's own GPU (``cuda:LOCAL_RANK``) on CUDA."""
    if device.type != "cuda":
        return device
    local_rank, visible = int(os.environ.get("LOCAL_RANK", 0)), torch.cuda.device_count()
    if local_rank >= visible:
        raise PipelineError(f"processes: {world_size()} processes on CUDA need one GPU each; {visible} visible")
    return torch.device("cuda", local_rank)


@contextmanager
def process_group() -> Iterator[None]:
    """A gloo process group (CPU and GPU alike: no tensor exchanged is larger than a split's logits)."""
    if world_size() == 1 or torch.distributed.is_initialized():
        yield
        return
    torch.distributed.init_process_group("gloo")
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()


def shard(batches: list[np.ndarray]) -> list[np.ndarray]:
    """This process's share of length-sorted batches: every N-th one, so each gets long and short rows."""
    return batches[rank() :: world_size()]


def combine(partial: np.ndarray) -> np.ndarray:
    """The whole array from each process's partial one (its rows filled, zeros elsewhere)."""
    if world_size() == 1:
        return partial
    total = torch.from_numpy(np.ascontiguousarray(partial))
    torch.distributed.all_reduce(total)
    return total.numpy()


@contextmanager
def shared_output_dir(target: Path, inputs: Sequence[Path | str] = ()) -> Iterator[Path]:
    """``atomic_path(target, is_dir=True)`` shared by every process: the first creates and moves it into place."""
    with ExitStack() as owner:  # the first process's atomic_path, left with the body's exception if any
        holder = [str(owner.enter_context(atomic_path(target, is_dir=True, inputs=inputs))) if is_main() else None]
        if world_size() > 1:
            torch.distributed.broadcast_object_list(holder, src=0)
        yield Path(holder[0])
        barrier()  # every process has written its rows

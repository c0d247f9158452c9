"""Several processes, one result: the rank of this process and what the inference stages share.

`python -m textclf.models.launch --processes N stages.<name> ...` starts N copies of a stage through
torchrun, which sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``. Fine-tuning leaves the rest to the
HF Trainer (DDP). The inference stages split their length-sorted batches between the processes
(``shard``) and meet at one output: a ``.npy`` file each process writes its own rows into
(``shared_output_dir``), or a small array summed across processes (``combine``). With one process
(no ``WORLD_SIZE``) every function here is a no-op.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
    """Only the first process writes outputs, logs curves and prints progress."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """This process's own GPU (``cuda:LOCAL_RANK``) when the stage runs on CUDA: one process a GPU."""
    if device.type != "cuda":
        return device
    local_rank, visible = int(os.environ.get("LOCAL_RANK", 0)), torch.cuda.device_count()
    if local_rank >= visible:
        raise PipelineError(f"processes: {world_size()} processes on CUDA need one GPU each; {visible} visible")
    return torch.device("cuda", local_rank)


@contextmanager
def process_group() -> Iterator[None]:
    """A gloo process group for the inference stages' few synchronizations (CPU and GPU alike:
    they exchange no tensors larger than a split's logits); nothing with one process."""
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
    """``atomic_path(target, is_dir=True, inputs=inputs)`` for every process: the first one creates the temporary
    folder and, once all have written into it, moves it into place (or removes it on failure)."""
    if world_size() == 1:
        with atomic_path(target, is_dir=True, inputs=inputs) as out:
            yield out
        return
    holder: list[str | None] = [None]
    owner = atomic_path(target, is_dir=True, inputs=inputs) if is_main() else None
    if owner is not None:
        holder[0] = str(owner.__enter__())
    torch.distributed.broadcast_object_list(holder, src=0)
    try:
        yield Path(holder[0])
        barrier()  # every process has written its rows
    except BaseException:
        if owner is not None:
            owner.__exit__(*sys.exc_info())
        raise
    if owner is not None:
        owner.__exit__(None, None, None)

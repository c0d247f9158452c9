#!/usr/bin/env python3
"""Fail the GPU job early, with the reason, unless this machine can run the pinned torch on a GPU.

    python3 .ci/check_gpu.py driver [--torch-cuda cu130]   # before any install: standard library only
    python .ci/check_gpu.py torch                          # after the install: torch sees and uses the GPU

`driver`: nvidia-smi must exist, list at least one GPU, and report a driver new enough for the CUDA build of
torch that will be installed: torch==2.13.0 from PyPI is built for CUDA 13.0 (cu130), which needs driver 580;
a CUDA 12 build (the workflow's variable TORCH_CUDA=cu126, say, from PyTorch's own index) needs 525.
Checked before the ~4 GB install, so a wrong machine image costs a minute, not a quarter of an hour.
`torch`: torch is a CUDA build, sees a device, and runs a matrix product on it. The GPU stages then run with
`device: cuda`, which stops with an error rather than falling back to the CPU.
Exit status 1 with an `::error::` line naming the cause; 0 with a summary of what was found.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

PYPI_CUDA = "cu130"  # the CUDA build of the pinned torch on PyPI; change with the torch pin
MIN_DRIVER = {"13": 580, "12": 525, "11": 450}  # NVIDIA's minimum Linux driver per CUDA major (minor compatibility)


def min_driver(torch_cuda: str) -> int:
    """The oldest driver that runs a torch build for `torch_cuda` (cu130, cu126, ...)."""
    major = torch_cuda.removeprefix("cu")[:-1]
    if major not in MIN_DRIVER:
        raise ValueError(f"TORCH_CUDA {torch_cuda!r}: expected cu<major><minor>, e.g. cu130 or cu126")
    return MIN_DRIVER[major]


def check_driver(min_driver: int) -> int:
    """nvidia-smi's GPUs and driver version, against `min_driver`."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        print("::error::GPU check: nvidia-smi not found: this machine has no NVIDIA driver (wrong runner or image?)")
        return 1
    res = subprocess.run(
        [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], capture_output=True, text=True
    )
    rows = [(line.split(", ") + ["?", "?"])[:3] for line in res.stdout.splitlines() if line.strip()]
    if res.returncode != 0 or not rows:
        print(f"::error::GPU check: nvidia-smi lists no GPU (exit {res.returncode}): {res.stderr.strip()}")
        return 1
    for name, version, memory in rows:
        print(f"GPU check: {name}, driver {version}, {memory}")
        major = version.split(".")[0]
        if not major.isdigit() or int(major) < min_driver:
            print(
                f"::error::GPU check: NVIDIA driver {version} is older than {min_driver}, which torch's CUDA build "
                "needs: use a machine image with a newer driver, or the variable TORCH_CUDA (docs/ci.md)."
            )
            return 1
    print(f"GPU check: {len(rows)} GPU(s), driver >= {min_driver}: ok")
    return 0


def check_torch() -> int:
    """torch is a CUDA build that sees a device and computes on it."""
    import torch

    print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda or '(none: a CPU-only build)'}")
    if not torch.version.cuda:
        print(
            "::error::GPU check: this torch is a CPU-only build; install the CUDA build "
            "(pip install -r requirements.txt from PyPI on Linux)"
        )
        return 1
    if not torch.cuda.is_available():
        print(
            f"::error::GPU check: torch sees no CUDA device (driver missing or older than CUDA {torch.version.cuda} "
            "needs, or no GPU attached). Refusing to run the GPU stages on CPU."
        )
        return 1
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        print(
            f"cuda:{index}: {props.name}, {props.total_memory / 2**30:.1f} GiB, compute capability "
            f"{props.major}.{props.minor}"
        )
    a = torch.randn(256, 256, device="cuda")
    value = float((a @ a.T).trace())
    torch.cuda.synchronize()
    print(f"GPU check: ok (a 256x256 matrix product on cuda:0, trace {value:.1f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["driver", "torch"])
    parser.add_argument("--torch-cuda", default="", help=f"CUDA build of torch to be installed (default {PYPI_CUDA})")
    args = parser.parse_args(argv)
    if args.what == "torch":
        return check_torch()
    try:
        return check_driver(min_driver(args.torch_cuda or PYPI_CUDA))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

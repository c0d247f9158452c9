#!/usr/bin/env python3
"""Fail the GPU job early, before the ~4 GB install, unless nvidia-smi lists a GPU with a driver new enough.

    python3 .ci/check_gpu.py driver [--torch-cuda cu126]   # standard library only

torch==2.13.0 from PyPI (cu130) needs driver 580; a CUDA 12 build (variable TORCH_CUDA=cu126) 525. Exit 1 with an
`::error::` line naming the cause, 2 on a bad TORCH_CUDA. The stages' `device: cuda` never falls back to the CPU.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

PYPI_CUDA = "cu130"  # the CUDA build of the pinned torch on PyPI; change with the torch pin
MIN_DRIVER = {"13": 580, "12": 525, "11": 450}  # NVIDIA's minimum Linux driver per CUDA major (minor compatibility)


def check_driver(min_driver: int) -> int:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        print("::error::GPU check: nvidia-smi not found: this machine has no NVIDIA driver (wrong runner or image?)")
        return 1
    query = [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    res = subprocess.run(query, capture_output=True, text=True)
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
                "needs: use a runner image with a newer driver, or the variable TORCH_CUDA (docs/ci.md)."
            )
            return 1
    print(f"GPU check: {len(rows)} GPU(s), driver >= {min_driver}: ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["driver"])
    parser.add_argument("--torch-cuda", default="", help=f"CUDA build of torch to be installed (default {PYPI_CUDA})")
    args = parser.parse_args(argv)
    major = (args.torch_cuda or PYPI_CUDA).removeprefix("cu")[:-1]
    if major not in MIN_DRIVER:
        print(f"error: TORCH_CUDA {args.torch_cuda!r}: expected cu<major><minor>, e.g. cu130 or cu126", file=sys.stderr)
        return 2
    return check_driver(MIN_DRIVER[major])


if __name__ == "__main__":
    sys.exit(main())

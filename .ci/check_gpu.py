#!/usr/bin/env python3
"""Fail the GPU job early, with the reason, unless this machine can run the pinned torch on a GPU.

    python3 .ci/check_gpu.py driver [--min-driver 580]   # before any install: standard library only
    python .ci/check_gpu.py torch                        # after the install: torch sees and uses the GPU

`driver`: nvidia-smi must exist, list at least one GPU, and report a driver >= --min-driver. The default, 580,
is what torch==2.13.0 from PyPI needs: its Linux wheels are built for CUDA 13.0 (change it with the torch pin).
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

MIN_DRIVER = 580


def check_driver(min_driver: int) -> int:
    """nvidia-smi's GPUs and driver version, against `min_driver`."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        print("::error::GPU check: nvidia-smi not found: this machine has no NVIDIA driver (wrong runner or image?)")
        return 1
    res = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True)
    rows = [(line.split(", ") + ["?", "?"])[:3] for line in res.stdout.splitlines() if line.strip()]
    if res.returncode != 0 or not rows:
        print(f"::error::GPU check: nvidia-smi lists no GPU (exit {res.returncode}): {res.stderr.strip()}")
        return 1
    for name, version, memory in rows:
        print(f"GPU check: {name}, driver {version}, {memory}")
        major = version.split(".")[0]
        if not major.isdigit() or int(major) < min_driver:
            print(f"::error::GPU check: NVIDIA driver {version} is older than {min_driver}, which the pinned torch's "
                  "CUDA build needs: use a machine image with a newer driver (docs/ci.md, The machine).")
            return 1
    print(f"GPU check: {len(rows)} GPU(s), driver >= {min_driver}: ok")
    return 0


def check_torch() -> int:
    """torch is a CUDA build that sees a device and computes on it."""
    import torch

    print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda or '(none: a CPU-only build)'}")
    if not torch.version.cuda:
        print("::error::GPU check: this torch is a CPU-only build; install the CUDA build "
              "(pip install -r requirements.txt from PyPI on Linux)")
        return 1
    if not torch.cuda.is_available():
        print(f"::error::GPU check: torch sees no CUDA device (driver missing or older than CUDA {torch.version.cuda} "
              "needs, or no GPU attached). Refusing to run the GPU stages on CPU.")
        return 1
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        print(f"cuda:{index}: {props.name}, {props.total_memory / 2**30:.1f} GiB, compute capability "
              f"{props.major}.{props.minor}")
    a = torch.randn(256, 256, device="cuda")
    value = float((a @ a.T).trace())
    torch.cuda.synchronize()
    print(f"GPU check: ok (a 256x256 matrix product on cuda:0, trace {value:.1f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["driver", "torch"])
    parser.add_argument("--min-driver", type=int, default=MIN_DRIVER, help=f"default {MIN_DRIVER}")
    args = parser.parse_args(argv)
    return check_driver(args.min_driver) if args.what == "driver" else check_torch()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Fail unless this machine's torch sees a working CUDA GPU: the GPU job's first check.

    python scripts/ci_cuda_preflight.py

Prints nvidia-smi's summary, torch's version and CUDA build, and each visible device; runs one small
matrix product on the GPU. Exits 1 with the reason (no driver, driver too old for torch's CUDA build,
a CPU-only torch, no device visible) so that a "GPU" job never trains on CPU: the job then runs the
stages with `device: cuda` (scripts/ci_repro.py --set device=cuda), which is an error without CUDA.
"""

from __future__ import annotations

import shutil
import subprocess
import sys


def main() -> int:
    smi = shutil.which("nvidia-smi")
    if smi:
        res = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True)
        print(f"nvidia-smi: {(res.stdout or res.stderr).strip() or '(no output)'} (exit {res.returncode})")
    else:
        print("nvidia-smi: not found (no NVIDIA driver on this machine?)")
    import torch

    print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda or '(none: a CPU-only build)'}")
    if not torch.version.cuda:
        print("::error::CUDA preflight: this torch is a CPU-only build; install the CUDA build "
              "(pip install -r requirements.txt from PyPI on Linux)")
        return 1
    if not torch.cuda.is_available():
        print("::error::CUDA preflight: torch sees no CUDA device (driver missing or older than torch's CUDA "
              f"{torch.version.cuda} needs, or no GPU attached). Refusing to run the GPU stages on CPU.")
        return 1
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        print(f"cuda:{index}: {props.name}, {props.total_memory / 2**30:.1f} GiB, compute capability "
              f"{props.major}.{props.minor}, bf16: {torch.cuda.is_bf16_supported()}")
    a = torch.randn(256, 256, device="cuda")
    value = float((a @ a.T).trace())
    torch.cuda.synchronize()
    print(f"CUDA preflight: ok (a 256x256 matrix product on cuda:0, trace {value:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

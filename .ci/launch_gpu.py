#!/usr/bin/env python3
"""Launch this run's CML cloud GPU machine, after checking everything that can be checked for free.

    python3 .ci/launch_gpu.py --check   # before any credential or install step: set-up only
    python3 .ci/launch_gpu.py           # tools on PATH, then `cml runner launch ...`

--check fails (exit 1, one `::error::` line per problem) unless: CLOUD is aws, gcp or azure; REPO_TOKEN (the
secret PERSONAL_ACCESS_TOKEN: runner registration) is set; the cloud's credentials are (AWS_ROLE_ARN, or
GCP_CREDENTIALS_JSON, or the four AZURE_* secrets); a machine image is known (CLOUD_IMAGE, or AWS's default
below); the repository has a default DVC remote (the GPU job hands its results over through it).
The launch itself also needs `terraform` and `cml` on PATH (CML drives Terraform), and runs
`cml runner launch` with a label unique to the run, `--single` (the machine ends after its one job) and an
idle timeout of an hour, so a machine whose job never comes terminates itself; the hour leaves a reviewer time
to approve the `gpu` job, which waits for approval only once the machine runs.

Standard library only: it runs before anything is installed. It prints no secret.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dvc_remote_plugin import default_remote  # noqa: E402

# AWS's Deep Learning Base AMI with NVIDIA's driver on Ubuntu 24.04 (owner: Amazon), in TPI's
# user@owner:architecture:name-pattern form; the newest matching image is taken. GCP and Azure: set CLOUD_IMAGE.
AWS_IMAGE = "ubuntu@898082745236:x86_64:Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *"
DEFAULT_TYPE = {"aws": "g4dn.xlarge", "gcp": "n1-standard-4", "azure": "Standard_NC4as_T4_v3"}
DEFAULT_GPU = {"gcp": "nvidia-tesla-t4"}
CREDENTIALS = {
    "aws": ["AWS_ROLE_ARN"],
    "gcp": ["GCP_CREDENTIALS_JSON"],
    "azure": ["AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID"],
}


def problems(env: dict[str, str], root: Path) -> list[str]:
    """What is missing before a machine may be launched; empty when nothing is."""
    cloud = env.get("CLOUD", "")
    found = []
    if cloud not in CREDENTIALS:
        found.append(f"the variable CML_CLOUD must be aws, gcp or azure (it is {cloud!r})")
    if not env.get("REPO_TOKEN"):
        found.append("the secret PERSONAL_ACCESS_TOKEN (cml runner launch registers the machine as a runner)")
    missing = [name for name in CREDENTIALS.get(cloud, []) if not env.get(name)]
    if missing:
        found.append(f"{', '.join(missing)} (the {cloud} credentials CML launches the machine with)")
    if cloud in ("gcp", "azure") and not env.get("CLOUD_IMAGE"):
        found.append(f"the variable CML_CLOUD_IMAGE: a {cloud} image with an NVIDIA driver >= 580 (docs/ci.md)")
    if not default_remote(root):
        found.append("a default DVC remote in .dvc/config (the GPU job hands its results over through it)")
    return found


def launch_args(env: dict[str, str]) -> list[str]:
    """The `cml runner launch` options for this run's machine."""
    cloud, label = env["CLOUD"], env["LABEL"]
    args = [
        f"--cloud={cloud}",
        f"--cloud-region={env.get('CLOUD_REGION') or 'us-west'}",
        f"--cloud-type={env.get('CLOUD_TYPE') or DEFAULT_TYPE[cloud]}",
        f"--cloud-image={env.get('CLOUD_IMAGE') or AWS_IMAGE}",
        "--cloud-hdd-size=100",
        f"--labels={label}",
        f"--name={label}",
        "--single",
        "--idle-timeout=3600",
    ]
    gpu = env.get("CLOUD_GPU") or DEFAULT_GPU.get(cloud)
    if gpu:
        args.append(f"--cloud-gpu={gpu}")
    if env.get("CLOUD_SPOT") == "true":
        args.append("--cloud-spot")
    if env.get("CLOUD_PERMISSION_SET"):
        args.append(f"--cloud-permission-set={env['CLOUD_PERMISSION_SET']}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = dict(os.environ)
    if argv == ["--check"]:
        found = problems(env, Path("."))
        for problem in found:
            print(f"::error::The CML GPU machine needs {problem}. See docs/ci.md, or set GPU_RUNS_ON to a GPU runner.")
        if not found:
            print(f"launch_gpu: set-up for a {env['CLOUD']} machine: ok")
        return 1 if found else 0
    tools = [tool for tool in ("terraform", "cml") if shutil.which(tool) is None]
    if tools:
        print(
            f"::error::launch_gpu: {' and '.join(tools)} not on PATH: cml runner launch drives terraform "
            "(the workflow installs both before this step)"
        )
        return 1
    command = ["cml", "runner", "launch", *launch_args(env)]
    print(" ".join(command), flush=True)
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())

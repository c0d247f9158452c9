"""Push the run-cache so that another clone can restore any recorded run without executing it.

`dvc push --run-cache` sends the run-cache entries and the objects of the outputs that the current
dvc.lock tracks in the DVC cache, but not the objects of `cache: false` outputs (the git-tracked
metrics, plot data and dvclive curves). Without those, `dvc repro --pull` in another clone finds a
run-cache entry it cannot restore and runs the stage again. This script does both pushes.

    python scripts/push_run_cache.py [--remote NAME]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def run_cache_entries(repo) -> list[tuple[str, str]]:
    """Every (key, value) pair of the local run-cache (.dvc/cache/runs/<xx>/<key>/<value>)."""
    runs = Path(repo.cache.legacy.path) / "runs"
    return [(entry.parent.name, entry.name) for entry in sorted(runs.glob("*/*/*")) if entry.is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote", help="DVC remote (default: the repository's default remote)")
    args = parser.parse_args(argv)
    dvc = str(Path(sys.executable).with_name("dvc"))
    remote = ["--remote", args.remote] if args.remote else []
    subprocess.run([dvc, "push", "--run-cache", *remote], check=True)

    from dvc.repo import Repo

    with Repo() as repo:
        used = repo.stage_cache.get_used_objs(run_cache_entries(repo))
        pushed = failed = 0
        for odb, objs in used.items():
            result = repo.cloud.push(objs, remote=args.remote, odb=odb)
            pushed, failed = pushed + len(result.transferred), failed + len(result.failed)
    print(f"run-cache outputs: {pushed} object(s) pushed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

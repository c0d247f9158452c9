#!/usr/bin/env python
"""Push the workspace's outputs and the run-cache to the DVC remote, completely, or fail.

    python .ci/push_run_cache.py [-r REMOTE]

1. `dvc push --run-cache` (DVC's own command, in this process).
2. The objects of every local run-cache entry. `dvc push --run-cache` copies only the entries
   (`.dvc/cache/runs/...`) and the workspace's cached outputs; the `cache: false` outputs that DVC
   committed to the cache for the run-cache (metrics, plot data, dvclive/ of this pipeline) stay
   behind, so another machine finds the entry but not those files, and reruns the stage.
3. A check that every local run-cache entry is on the remote: DVC logs a failed entry copy
   without failing the command.

Exit status 0 only when all of it is on the remote; 1 otherwise, naming what is missing.
The GPU job runs this after `.ci/repro.py gpu`, so the CPU job can restore the GPU stages.
"""

from __future__ import annotations

import argparse
import os
import sys


def local_run_cache_entries(repo) -> list[tuple[str, str]]:
    """(key, value) of each run-cache entry in the local cache (.dvc/cache/runs/<k[:2]>/<key>/<value>)."""
    root = repo.stage_cache.cache_dir
    entries = []
    if os.path.isdir(root):
        for dirpath, _, files in os.walk(root):
            entries += [(os.path.basename(dirpath), name) for name in files]
    return sorted(entries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--remote", default=None, help="DVC remote (default: the default remote)")
    args = parser.parse_args(argv)

    from dvc.cli import main as dvc_main
    from dvc.repo import Repo

    command = ["push", "--run-cache"] + (["-r", args.remote] if args.remote else [])
    print(f"push_run_cache: dvc {' '.join(command)}", flush=True)
    rc = dvc_main(command)
    if rc != 0:
        print(f"push_run_cache: error: dvc {' '.join(command)} failed (exit {rc})", file=sys.stderr)
        return 1

    with Repo(".") as repo:
        entries = local_run_cache_entries(repo)
        used = repo.stage_cache.get_used_objs(entries)
        objs = set().union(*used.values()) if used else set()
        result = repo.cloud.push(objs, remote=args.remote)
        if result.failed:
            print(
                f"push_run_cache: error: {len(result.failed)} run-cache object(s) could not be pushed: "
                + ", ".join(sorted(str(h) for h in result.failed)[:10]),
                file=sys.stderr,
            )
            return 1
        odb = repo.cloud.get_remote_odb(args.remote, "push --run-cache", hash_name="md5-dos2unix")
        missing = [
            f"{key}/{value}"
            for key, value in entries
            if not odb.fs.exists(odb.fs.join(odb.path, "runs", key[:2], key, value))
        ]
        if missing:
            print(
                f"push_run_cache: error: {len(missing)} run-cache entr(y/ies) missing on the remote after the push: "
                + ", ".join(missing[:10]),
                file=sys.stderr,
            )
            return 1
        print(
            f"push_run_cache: {len(entries)} run-cache entries and their {len(objs)} objects are on the remote "
            f"({len(result.transferred)} object(s) sent besides `dvc push`)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

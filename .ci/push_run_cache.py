#!/usr/bin/env python
"""Push the workspace's outputs and the run-cache to the DVC remote, completely, or fail.

    python .ci/push_run_cache.py [-r REMOTE]

`dvc push --run-cache` leaves behind the `cache: false` outputs DVC committed for the run-cache (metrics, plot
data, dvclive/): this pushes them too, then checks every local run-cache entry is on the remote (DVC only logs a
failed entry copy). Exit 1 naming what is missing.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--remote", default=None, help="DVC remote (default: the default remote)")
    args = parser.parse_args(argv)
    from dvc.cli import main as dvc_main
    from dvc.repo import Repo

    command = ["push", "--run-cache"] + (["-r", args.remote] if args.remote else [])
    print(f"push_run_cache: dvc {' '.join(command)}", flush=True)
    if dvc_main(command) != 0:
        print(f"push_run_cache: error: dvc {' '.join(command)} failed", file=sys.stderr)
        return 1
    with Repo(".") as repo:
        root = repo.stage_cache.cache_dir  # .dvc/cache/runs/<key[:2]>/<key>/<value>
        walk = os.walk(root) if os.path.isdir(root) else []
        entries = sorted((os.path.basename(folder), name) for folder, _, files in walk for name in files)
        used = repo.stage_cache.get_used_objs(entries)
        result = repo.cloud.push(set().union(*used.values()) if used else set(), remote=args.remote)
        if result.failed:
            failed = ", ".join(sorted(str(h) for h in result.failed)[:10])
            print(
                f"push_run_cache: error: {len(result.failed)} run-cache object(s) not pushed: {failed}", file=sys.stderr
            )
            return 1
        odb = repo.cloud.get_remote_odb(args.remote, "push --run-cache", hash_name="md5-dos2unix")
        missing = [f"{k}/{v}" for k, v in entries if not odb.fs.exists(odb.fs.join(odb.path, "runs", k[:2], k, v))]
        if missing:
            print(
                f"push_run_cache: error: {len(missing)} run-cache entries missing on the remote after the push: "
                + ", ".join(missing[:10]),
                file=sys.stderr,
            )
            return 1
        print(f"push_run_cache: {len(entries)} run-cache entries and their objects are on the remote")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Check that a fresh `dvc repro` reproduced the committed dvc.lock, and say what differs, stage by stage.

    python .ci/check_lock.py [--committed HEAD] [--fail-on definitions|outputs] [--markdown FILE]

A stage's `definitions` differ (command, a param, a dep no stage produces, new or gone): the committed dvc.lock
is stale, exit 1. Only its `outputs` differ (output hashes, deps that are other stages' outputs): the same code
and params gave other bytes here; a warning, exit 1 with --fail-on outputs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml


def _stages(text: str) -> dict:
    return (yaml.safe_load(text) or {}).get("stages", {}) or {}


def _hashes(entries) -> dict:
    return {e["path"]: next((str(e[k]) for k in ("md5", "etag", "checksum") if e.get(k)), "") for e in entries or []}


def _short(value: str) -> str:
    return (value.removesuffix(".dir")[:8] + (".dir" if value.endswith(".dir") else "")) if value else "(none)"


def _params(stage: dict) -> dict:
    return {f"{f}:{k}": v for f, values in (stage.get("params") or {}).items() for k, v in (values or {}).items()}


def _diff(kind: str, old: dict, new: dict) -> list[tuple[str, str]]:
    """(path, "kind path: old -> new") for each path whose value differs."""
    return [
        (p, f"{kind} {p}: {_short(old.get(p, ''))} -> {_short(new.get(p, ''))}")
        for p in sorted(set(old) | set(new))
        if old.get(p) != new.get(p)
    ]


def compare(committed: dict, reproduced: dict) -> list[dict]:
    """One row per differing stage: {stage, kind: definitions|outputs, changes: [str]}."""
    stages = [*committed.values(), *reproduced.values()]
    produced = {out["path"].rstrip("/") for stage in stages for out in stage.get("outs", [])}
    rows = []
    for name in list(reproduced) + [n for n in committed if n not in reproduced]:
        old, new = committed.get(name), reproduced.get(name)
        if old is None or new is None:
            gone = "not reproduced (gone from dvc.yaml?)"
            rows.append({"stage": name, "kind": "definitions", "changes": [gone if new is None else "new stage"]})
            continue
        definition = ["command changed"] if old.get("cmd") != new.get("cmd") else []
        old_p, new_p = _params(old), _params(new)
        definition += [
            f"param {k}: {old_p.get(k, '(absent)')!r} -> {new_p.get(k, '(absent)')!r}"
            for k in sorted(set(old_p) | set(new_p))
            if old_p.get(k, "(absent)") != new_p.get(k, "(absent)")
        ]
        output = []
        for path, text in _diff("dep", _hashes(old.get("deps")), _hashes(new.get("deps"))):
            generated = any(path == p or path.startswith(p + "/") for p in produced)
            (output if generated else definition).append(text)
        output += [text for _, text in _diff("out", _hashes(old.get("outs")), _hashes(new.get("outs")))]
        if definition or output:
            rows.append(
                {"stage": name, "kind": "definitions" if definition else "outputs", "changes": definition + output}
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--committed", default="HEAD", help="git revision of the committed dvc.lock (default HEAD)")
    parser.add_argument("--lock", default="dvc.lock", help="the reproduced lock file (default dvc.lock)")
    parser.add_argument("--fail-on", choices=["definitions", "outputs"], default="definitions")
    parser.add_argument("--markdown", metavar="FILE", help="write the stage-by-stage table there")
    args = parser.parse_args(argv)
    if not Path(args.lock).is_file():
        print(f"check_lock: error: {args.lock} not found: run `dvc repro` first", file=sys.stderr)
        return 1
    shown = subprocess.run(["git", "show", f"{args.committed}:{args.lock}"], capture_output=True, text=True)
    rows = compare(_stages(shown.stdout if shown.returncode == 0 else ""), _stages(Path(args.lock).read_text()))
    table = f"The run reproduced the committed `dvc.lock` (`{args.committed}`) exactly: every stage, every hash.\n"
    if rows:
        cells = ["<br>".join(c.replace("|", "\\|") for c in r["changes"]) for r in rows]
        table = f"Stages whose reproduced `dvc.lock` entry differs from the committed one (`{args.committed}`):\n\n"
        table += "| stage | kind | what differs |\n|---|---|---|\n"
        table += "".join(f"| `{r['stage']}` | {r['kind']} | {cell} |\n" for r, cell in zip(rows, cells, strict=True))
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf8")
    print(table)
    stale = [r["stage"] for r in rows if r["kind"] == "definitions"]
    drift = [r["stage"] for r in rows if r["kind"] == "outputs"]
    if stale:
        print(f"::error::The committed dvc.lock is stale for {', '.join(stale)}: run `dvc repro` and commit dvc.lock.")
    if drift:
        level = "error" if args.fail_on == "outputs" else "warning"
        print(f"::{level}::Same definitions, other output hashes for {', '.join(drift)} (see the table).")
    return 1 if stale or (args.fail_on == "outputs" and drift) else 0


if __name__ == "__main__":
    sys.exit(main())

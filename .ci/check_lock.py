#!/usr/bin/env python
"""Check that a fresh `dvc repro` reproduced the committed dvc.lock, and say what differs, stage by stage.

    dvc repro                                   # in a checkout with no outputs: every stage runs
    python .ci/check_lock.py [--committed HEAD] [--fail-on definitions|outputs] [--markdown FILE]

Compares `git show <committed>:dvc.lock` with the dvc.lock the run wrote. For each stage that differs:
  definitions  the command, a param value, or a dep that no stage produces (code, data/sample/) changed,
               or the stage is new/gone: the committed dvc.lock is stale, it was not written by this
               branch's dvc.yaml, params and code (run `dvc repro` and commit dvc.lock);
  outputs      an output's hash (or a dep that is another stage's output) changed while the definition
               did not: the same code and params gave other bytes here (floating-point results of another
               CPU or library build, or a non-deterministic stage).
Exit status 1 when a difference of the --fail-on kind (or the stricter one) is found: `definitions`
(default) fails on a stale lock only and reports output differences as warnings; `outputs` fails on both.
Writes the stage-by-stage table as Markdown with --markdown (for the pull-request report).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml


def _load(text: str) -> dict:
    return (yaml.safe_load(text) or {}).get("stages", {}) or {}


def _hash(entry: dict) -> str:
    for key in ("md5", "etag", "checksum"):
        if entry.get(key):
            return str(entry[key])
    return ""


def _short(value: str) -> str:
    if not value:
        return "(none)"
    is_dir = value.endswith(".dir")
    return (value[:-4] if is_dir else value)[:8] + (".dir" if is_dir else "")


def _flatten(params: dict) -> dict:
    flat = {}
    for file, values in (params or {}).items():
        for key, value in (values or {}).items():
            flat[f"{file}:{key}"] = value
    return flat


def compare(committed: dict, reproduced: dict) -> list[dict]:
    """One row per differing stage: {stage, kind: definitions|outputs, changes: [str]}."""
    produced = {out["path"] for stage in reproduced.values() for out in stage.get("outs", [])}
    produced |= {out["path"] for stage in committed.values() for out in stage.get("outs", [])}
    rows = []
    for name in sorted(set(committed) | set(reproduced), key=lambda n: (list(reproduced) + list(committed)).index(n)):
        old, new = committed.get(name), reproduced.get(name)
        if old is None or new is None:
            rows.append(
                {
                    "stage": name,
                    "kind": "definitions",
                    "changes": [
                        "not in the committed dvc.lock" if old is None else "not reproduced (gone from dvc.yaml?)"
                    ],
                }
            )
            continue
        definition, output = [], []
        if old.get("cmd") != new.get("cmd"):
            definition.append("command changed")
        old_p, new_p = _flatten(old.get("params")), _flatten(new.get("params"))
        for key in sorted(set(old_p) | set(new_p)):
            if old_p.get(key, "(absent)") != new_p.get(key, "(absent)"):
                definition.append(f"param {key}: {old_p.get(key, '(absent)')!r} -> {new_p.get(key, '(absent)')!r}")
        old_d = {d["path"]: _hash(d) for d in old.get("deps", [])}
        new_d = {d["path"]: _hash(d) for d in new.get("deps", [])}
        for path in sorted(set(old_d) | set(new_d)):
            if old_d.get(path) != new_d.get(path):
                text = f"dep {path}: {_short(old_d.get(path, ''))} -> {_short(new_d.get(path, ''))}"
                generated = any(path == p or path.startswith(p.rstrip("/") + "/") for p in produced)
                (output if generated else definition).append(text)
        old_o = {o["path"]: _hash(o) for o in old.get("outs", [])}
        new_o = {o["path"]: _hash(o) for o in new.get("outs", [])}
        for path in sorted(set(old_o) | set(new_o)):
            if old_o.get(path) != new_o.get(path):
                output.append(f"out {path}: {_short(old_o.get(path, ''))} -> {_short(new_o.get(path, ''))}")
        if definition:
            rows.append({"stage": name, "kind": "definitions", "changes": definition + output})
        elif output:
            rows.append({"stage": name, "kind": "outputs", "changes": output})
    return rows


def markdown(rows: list[dict], committed_rev: str) -> str:
    if not rows:
        return f"The run reproduced the committed `dvc.lock` ({committed_rev}) exactly: every stage, every hash.\n"
    lines = [
        f"Stages whose reproduced `dvc.lock` entry differs from the committed one ({committed_rev}):",
        "",
        "| stage | kind | what differs |",
        "|---|---|---|",
    ]
    for row in rows:
        changes = "<br>".join(c.replace("|", "\\|") for c in row["changes"])
        lines.append(f"| `{row['stage']}` | {row['kind']} | {changes} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--committed", default="HEAD", help="git revision of the committed dvc.lock (default HEAD)")
    parser.add_argument("--lock", default="dvc.lock", help="the reproduced lock file (default dvc.lock)")
    parser.add_argument("--fail-on", choices=["definitions", "outputs"], default="definitions")
    parser.add_argument("--markdown", metavar="FILE", help="write the stage-by-stage table there")
    args = parser.parse_args(argv)

    shown = subprocess.run(["git", "show", f"{args.committed}:{args.lock}"], capture_output=True, text=True)
    committed = _load(shown.stdout) if shown.returncode == 0 else {}
    if shown.returncode != 0:
        print(f"check_lock: {args.committed} has no committed {args.lock}", file=sys.stderr)
    lock = Path(args.lock)
    if not lock.is_file():
        print(f"check_lock: error: {args.lock} not found: run `dvc repro` first", file=sys.stderr)
        return 1
    rows = compare(committed, _load(lock.read_text()))
    table = markdown(rows, f"`{args.committed}`")
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf8")
    print(table)
    stale = [r["stage"] for r in rows if r["kind"] == "definitions"]
    drift = [r["stage"] for r in rows if r["kind"] == "outputs"]
    if stale:
        print(
            f"::error::The committed dvc.lock is stale for {', '.join(stale)}: it was not written by this "
            "branch's dvc.yaml, params and code. Run `dvc repro` and commit dvc.lock (and the metrics/plots)."
        )
    if drift:
        level = "error" if args.fail_on == "outputs" else "warning"
        print(
            f"::{level}::Same definitions, other output hashes for {', '.join(drift)}: this machine did not "
            "reproduce the committed bytes (see the table)."
        )
    failed = bool(stale) or (args.fail_on == "outputs" and bool(drift))
    print(
        f"check_lock: {len(rows)} stage(s) differ; stale: {len(stale)}, other outputs: {len(drift)}; "
        f"fail on {args.fail_on}: {'FAIL' if failed else 'ok'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

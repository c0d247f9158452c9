"""Stage params: check params.yaml before any other stage runs, so a mistake costs no output.

Reads: the whole params.yaml (as DVC reads it)      Writes: <out>, a stamp every other stage depends on

Under ``dvc repro`` this stage runs first, and DVC removes a stage's outputs only when it runs that
stage: a bad params.yaml (unknown key, wrong type, out-of-range value, a key written twice, a rule between
keys, a ``data.source`` folder without its split files, a ``model.checkpoint`` that names nothing, a
``model.max_length`` above its limit) stops the pipeline here with one line, in about a second
(it imports no torch, numpy or pandas), before DVC has removed anything. The stamp never changes,
so a valid edit reruns this stage and only the stages that read the edited parameter.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from textclf.common.params import check_files, load_params
from textclf.common.stage import run_stage

STAMP = "params.yaml was checked against the schema of textclf/common/params.py\n"
DVC_NOTE = " (dvc repro stopped at this first stage: no other stage ran and no output was removed)"


def main(argv: list[str] | None = None) -> None:
    """Validate params.yaml and the files it names; write the stamp only when all are good."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the stamp file (data/params-checked.txt)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    check_files(params)  # data.source's split files, model.checkpoint, model.max_length against it
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    tmp.write_text(STAMP, encoding="utf-8")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    run_stage(main, dvc_note=DVC_NOTE)

"""Stage params: check params.yaml before any other stage runs, so a mistake costs no output.

DVC removes a stage's outputs only when it runs it: this first stage stops a bad params.yaml with one line in about
a second (no torch, numpy or pandas). The stamp never changes: a valid edit reruns only the stages that read it.
"""

from __future__ import annotations

import os
from pathlib import Path

from textclf.common.params import check_files
from textclf.common.stage import StageParser, run_stage

STAMP = "params.yaml was checked against the schema of textclf/common/params.py\n"
DVC_NOTE = " (dvc repro stopped at this first stage: no other stage ran and no output was removed)"


def main(argv: list[str] | None = None) -> None:
    """Validate params.yaml and the files it names; write the stamp only when all are good."""
    parser = StageParser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="the stamp file (data/params-checked.txt)")
    args, params = parser.parse(argv)
    check_files(params)  # data.source's split files, model.checkpoint, model.max_length against it
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    tmp.write_text(STAMP, encoding="utf-8")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    run_stage(main, dvc_note=DVC_NOTE)

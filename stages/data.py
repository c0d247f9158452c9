"""Stage data: read ``data.source`` and write each split as Parquet plus ``labels.json``.

Reads params: data.*            Writes: <out>/{train,validation,test}.parquet, <out>/labels.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from textclf.data import SPLITS, load_dataset
from textclf.errors import run_stage
from textclf.io import atomic_path, write_json
from textclf.params import load_params

log = logging.getLogger("stage.data")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (data/prepared)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params).data

    dataset = load_dataset(params)  # checked, and capped by data.max_*_samples
    # Everything is validated before the old output is replaced, all at once.
    sources = [Path(f).parent for f in dataset.files.values() if Path(f).exists()]  # never written over
    with atomic_path(args.out, is_dir=True, inputs=sources) as out:
        for split in SPLITS:
            frame = dataset.splits[split][["text", "label"]]
            frame.to_parquet(out / f"{split}.parquet", index=False)
            log.info("%s: %d rows from %s", split, len(frame), dataset.files[split])
        write_json(out / "labels.json", dataset.label_names)
    log.info("labels: %s", ", ".join(dataset.label_names))


if __name__ == "__main__":
    run_stage(main)

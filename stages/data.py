"""Stage data: read ``data.source`` and write each split as Parquet plus ``labels.json``.

Reads params: data.*            Writes: <out>/{train,validation,test}.parquet, <out>/labels.json
Rows are written a slice at a time (``textclf.io.sources.ROWS_PER_SLICE``): memory does not grow with the data.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.common.escape import terminal
from textclf.common.stage import StageParser, run_stage
from textclf.common.user_paths import SPLITS, source_folder
from textclf.io.outputs import atomic_path, write_json
from textclf.io.sources import load_dataset

log = logging.getLogger("stage.data")


class SliceWriter(ExitStack):
    """Appends each split's slices to ``<folder>/<split>.parquet`` as ``DataFrame.to_parquet`` would write them."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder, self.writers = folder, {}

    def __call__(self, split: str, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame[["text", "label"]], preserve_index=False)
        if split not in self.writers:
            self.writers[split] = self.enter_context(pq.ParquetWriter(self.folder / f"{split}.parquet", table.schema))
        self.writers[split].write_table(table)


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder (data/prepared)")
    args, params = parser.parse(argv, "data")

    folder = source_folder(params.source)  # the data read is never written over
    with atomic_path(args.out, is_dir=True, inputs=[folder] if folder else []) as out:
        with SliceWriter(out) as writer:
            dataset = load_dataset(params, sink=writer)  # checked, and capped by data.max_*_samples
        write_json(out / "labels.json", dataset.label_names)
    for split in SPLITS:
        log.info("%s: %d rows from %s", split, dataset.rows[split], terminal(dataset.files[split]))
    log.info("labels: %s", ", ".join(map(terminal, dataset.label_names)))


if __name__ == "__main__":
    run_stage(main)

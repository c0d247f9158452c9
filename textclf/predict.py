"""``textclf predict``: label new texts with a fine-tuned model, fast and offline.

    textclf predict "i feel great today" "this is so unfair"
    textclf predict --input tweets.csv --output labelled.jsonl --all-scores
    cat tweets.txt | textclf predict > labelled.jsonl

Texts come from the arguments, ``--input FILE`` (``.txt``: one text a line; ``.jsonl``, ``.csv``,
``.parquet``: a ``text`` column, the other columns are kept) or stdin (one text a line). Each row gets
``label`` and ``score`` (the predicted label's probability); ``--all-scores`` adds every label's
probability. Output: ``--output FILE`` (``.jsonl``, ``.csv`` or ``.parquet``) or JSON lines on stdout.

Speed comes from the stage code: texts are tokenized once, sorted by length and padded per batch
(``textclf.batching.run_batched``), on CUDA when present, in bf16 where the hardware computes it
natively. Rows stream through in slices of ``ROWS_PER_SLICE`` (read, labelled, written), so memory
holds one slice whatever the input's size. On N processes
(``python -m textclf.launch --processes N textclf predict ...``) each slice's batches are split
between them and the first process writes the output. Bad input (a missing or corrupt model, an empty or unreadable input, no ``text`` column)
stops with one line ``error: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from textclf.errors import PipelineError

DEFAULT_MODEL = "models/finetuned"
TABLE_SUFFIXES = (".jsonl", ".csv", ".parquet")
OUTPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")
# Inputs at least this long show a progress bar (on stderr); shorter ones run silently.
PROGRESS_MIN_ROWS = 1000
# Rows read, sorted by length, labelled and written together (per-slice sorting keeps the padding
# saving: 20,000 tweets hold every length many times over).
ROWS_PER_SLICE = 20_000


def read_input(path: Path | None, texts: list[str], rows_per_slice: int | None = None) -> Iterator[pd.DataFrame]:
    """The rows to label, a slice at a time: ``texts`` given as arguments, else ``path`` (``None`` or
    ``-``: stdin). Blank lines of text input are skipped; a table needs a ``text`` column of strings.
    Errors name the file and the row (1-based, counted over the whole file)."""
    rows_per_slice = rows_per_slice or ROWS_PER_SLICE
    if texts:
        yield pd.DataFrame({"text": texts})
        return
    if path is None or str(path) == "-":
        if sys.stdin.isatty():
            raise PipelineError("no texts: give them as arguments, with --input FILE, or on stdin")
        yield from _line_slices(sys.stdin, "stdin", rows_per_slice)
        return
    suffix = path.suffix.lower()
    if not path.is_file():
        raise PipelineError(f"{path}: input file not found")
    if suffix not in TABLE_SUFFIXES:
        with open(path, encoding="utf-8", newline="") as handle:
            try:
                yield from _line_slices(handle, str(path), rows_per_slice)
            except UnicodeDecodeError as exc:
                raise PipelineError(f"{path}: could not read it as text: {exc.reason}") from None
        return
    first_row = 0
    try:
        for frame in _table_slices(path, suffix, rows_per_slice):
            if "text" not in frame.columns:
                raise PipelineError(f"{path}: no 'text' column (columns: {', '.join(map(str, frame.columns))})")
            bad = ~frame["text"].map(lambda t: isinstance(t, str) and bool(t.strip()))
            if bad.any():
                row = first_row + int(np.flatnonzero(bad)[0]) + 1
                raise PipelineError(f"{path}: 'text' is empty or not a string in row {row}")
            first_row += len(frame)
            yield frame.reset_index(drop=True)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise PipelineError(f"{path}: could not read it as {suffix[1:]}: {' '.join(str(exc).split())[:200]}") from None
    if first_row == 0:
        raise PipelineError(f"{path}: no rows to label (empty input)")


def _table_slices(path: Path, suffix: str, rows: int) -> Iterator[pd.DataFrame]:
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            yield batch.to_pandas()
    elif suffix == ".csv":
        yield from pd.read_csv(path, dtype={"text": object}, keep_default_na=False, chunksize=rows)
    else:
        if path.stat().st_size == 0:
            return
        yield from pd.read_json(path, lines=True, dtype=False, chunksize=rows)


def _line_slices(handle: TextIO, source: str, rows: int) -> Iterator[pd.DataFrame]:
    texts, seen = [], 0
    for line in handle:
        line = line.rstrip("\r\n")
        if line.strip():
            texts.append(line)
        if len(texts) == rows:
            seen += len(texts)
            yield pd.DataFrame({"text": texts})
            texts = []
    if texts:
        yield pd.DataFrame({"text": texts})
    elif not seen:
        raise PipelineError(f"{source}: no texts (empty input)")


def load_model(folder: Path):
    """The fine-tuned classifier and its tokenizer from ``folder``; any load failure is one line."""
    from textclf.modeling import load_finetuned, load_tokenizer

    if not folder.is_dir():
        raise PipelineError(f"{folder}: model folder not found (train one with `dvc repro`, or pass --model)")
    try:
        model = load_finetuned(folder)
        tokenizer = load_tokenizer(str(folder))
    except PipelineError:
        raise
    except Exception as exc:  # corrupt safetensors or config: transformers raises many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PipelineError(f"{folder}: could not load the model ({type(exc).__name__}: {first[:200]})") from None
    if not getattr(model.config, "id2label", None):
        raise PipelineError(f"{folder}: config.json has no id2label: not a classifier")
    return model.eval(), tokenizer


def max_input_tokens(model, tokenizer) -> int:
    """The model's own limit: its position table, capped by the tokenizer's limit."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    known = [int(n) for n in limits if n and n < 10**6]
    return min(known) if known else 512


def predict_proba(model, tokenizer, texts: list[str], batch_size: int = 64, device: str = "auto",
                  precision: str = "auto", max_length: int | None = None, progress: bool | None = None) -> np.ndarray:
    """Class probabilities (rows x labels, float32) for ``texts``, in their order."""
    import torch

    from textclf.batching import run_batched
    from textclf.modeling import encode_texts, resolve_device, use_bf16

    from textclf import distributed

    torch_device = distributed.local_device(resolve_device(device))
    input_ids = encode_texts(tokenizer, texts, max_length or max_input_tokens(model, tokenizer))
    logits = distributed.combine(run_batched(  # under several processes each ran its share of the batches
        model, input_ids, tokenizer.pad_token_id, batch_size, output="logits", device=torch_device,
        bf16=use_bf16(precision, torch_device), desc="predict",
        progress=len(texts) >= PROGRESS_MIN_ROWS if progress is None else progress,
    ))
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def label_rows(frame: pd.DataFrame, probabilities: np.ndarray, label_names: list[str], all_scores: bool) -> pd.DataFrame:
    """The input rows with ``label`` and ``score`` (and ``scores``: label -> probability) added.

    Input columns of those names (a gold ``label``, say) are kept as ``input_<name>``."""
    out = frame.rename(columns={c: f"input_{c}" for c in ("label", "score", "scores") if c in frame.columns})
    best = probabilities.argmax(-1)
    out["label"] = np.asarray(label_names, dtype=object)[best]
    out["score"] = np.round(probabilities[np.arange(len(best)), best].astype(float), 6)
    if all_scores:
        out["scores"] = [dict(zip(label_names, np.round(row.astype(float), 6))) for row in probabilities]
    return out


def output_format(path: Path | None, fmt: str | None) -> str:
    """``fmt``, else the output file's extension, else jsonl (stdout); checked before any work is done."""
    fmt = fmt or (path.suffix.lower().lstrip(".") if path else "jsonl")
    if f".{fmt}" not in OUTPUT_SUFFIXES:
        raise PipelineError(f"{path}: unknown output format '{fmt}' (use .jsonl, .csv or .parquet)")
    if path is None and fmt == "parquet":
        raise PipelineError("--format parquet needs --output FILE")
    return fmt


def _flat_scores(frame: pd.DataFrame, fmt: str) -> pd.DataFrame:
    if fmt in ("csv", "parquet") and "scores" in frame.columns:  # flat columns: score_<label>
        scores = pd.DataFrame(frame.pop("scores").tolist()).add_prefix("score_")
        frame = pd.concat([frame, scores.set_index(frame.index)], axis=1)
    return frame


class OutputWriter:
    """Labelled slices, appended as they come: JSON lines, CSV (one header) or Parquet (one row group a
    slice), to ``path`` (written beside it and moved into place at the end, so a failure leaves no
    partial file) or to stdout."""

    def __init__(self, path: Path | None, fmt: str | None):
        self.path, self.fmt = path, output_format(path, fmt)
        self.rows, self._handle, self._parquet, self._atomic = 0, None, None, None

    def __enter__(self) -> OutputWriter:
        if self.path is not None:
            from textclf.io import atomic_path

            self._atomic = atomic_path(self.path)
            self._tmp = self._atomic.__enter__()
        return self

    def write(self, frame: pd.DataFrame) -> None:
        frame = _flat_scores(frame, self.fmt)
        try:
            if self.fmt == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                if self._parquet is None:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    self._parquet = pq.ParquetWriter(self._tmp, table.schema)
                else:
                    table = pa.Table.from_pandas(frame, schema=self._parquet.schema, preserve_index=False)
                self._parquet.write_table(table)
            else:
                if self._handle is None:
                    self._handle = sys.stdout if self.path is None else open(self._tmp, "w", encoding="utf-8", newline="")
                _write(frame, self._handle, self.fmt, header=self.rows == 0)
        except OSError as exc:
            raise PipelineError(f"{self.path}: could not write it: {exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:  # pyarrow: a column whose type changes between slices
            raise PipelineError(f"{self.path}: could not write it: {' '.join(str(exc).split())[:200]}") from None
        self.rows += len(frame)

    def __exit__(self, *exc_info) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._handle is not None and self._handle is not sys.stdout:
            self._handle.close()
        if self._atomic is not None:
            self._atomic.__exit__(*exc_info)


def write_output(frame: pd.DataFrame, path: Path | None, fmt: str | None) -> None:
    """JSON lines, CSV or Parquet, to ``path`` (by its extension unless ``fmt``) or stdout."""
    with OutputWriter(path, fmt) as writer:
        writer.write(frame)


def _write(frame: pd.DataFrame, handle, fmt: str, header: bool = True) -> None:
    if fmt == "csv":
        frame.to_csv(handle, index=False, header=header)
        return
    for row in frame.to_dict(orient="records"):
        handle.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, np.ndarray)):
        return value.isoformat() if isinstance(value, pd.Timestamp) else value.tolist()
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textclf predict", description=__doc__.split("\n\n")[0].strip("` "),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("texts", nargs="*", help="texts to label (else --input FILE, else stdin)")
    parser.add_argument("-i", "--input", type=Path, help="a .txt (one text a line), .jsonl, .csv or .parquet file; - for stdin")
    parser.add_argument("-o", "--output", type=Path, help="a .jsonl, .csv or .parquet file (default: JSON lines on stdout)")
    parser.add_argument("--format", choices=("jsonl", "csv", "parquet"), help="output format (default: by --output's extension)")
    parser.add_argument("-m", "--model", type=Path, default=Path(DEFAULT_MODEL),
                        help=f"a fine-tuned model folder (default: {DEFAULT_MODEL})")
    parser.add_argument("--all-scores", action="store_true", help="add every label's probability")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per forward pass (default: 64)")
    parser.add_argument("--max-length", type=int, help="tokens kept per text (default: the model's limit)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto: bf16 where the hardware computes it natively, else fp32")
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    return parser


def main(argv: list[str] | None = None) -> None:
    from textclf import distributed

    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or (args.max_length is not None and args.max_length < 2):
        raise PipelineError("--batch-size must be at least 1 and --max-length at least 2")
    if args.texts and args.input is not None:
        raise PipelineError("give texts as arguments or --input FILE, not both")
    output_format(args.output, args.format)
    slices = read_input(args.input, args.texts)
    first = next(slices)  # a bad or empty input stops here, before the model is loaded
    model, tokenizer = load_model(args.model)
    label_names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    writer = OutputWriter(args.output, args.format) if distributed.is_main() else nullcontext()
    with distributed.process_group(), writer:
        for frame in itertools.chain([first], slices):
            probabilities = predict_proba(
                model, tokenizer, frame["text"].tolist(), batch_size=args.batch_size, device=args.device,
                precision=args.precision, max_length=args.max_length, progress=False if args.no_progress else None,
            )
            if distributed.is_main():
                writer.write(label_rows(frame, probabilities, label_names, args.all_scores))


def cli(argv: list[str] | None = None) -> int:
    """Run ``main``; bad input prints one line ``error: ...`` on stderr and returns 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder only: never wait on the network
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bars: stderr keeps our own bar and errors only
    hf_logging.set_verbosity_error()
    try:
        main(argv)
    except PipelineError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `textclf predict ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    return 0

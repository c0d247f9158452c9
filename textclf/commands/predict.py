"""``textclf predict``: label new texts with a fine-tuned model, fast and offline.

    textclf predict "i feel great today" "this is so unfair"
    textclf predict --input tweets.csv --output labelled.jsonl --all-scores
    cat tweets.txt | textclf predict > labelled.jsonl

Texts come from the arguments, ``--input FILE`` (``.txt``: one text a line; ``.jsonl``, ``.json``, ``.csv``,
``.tsv`` (tab-separated, no quoting), ``.parquet``: a ``text`` column, the other columns kept as read) or
stdin (one text a line). Each row gets ``label`` and ``score`` (the predicted label's probability);
``--all-scores`` adds every label's probability; input columns of those names (an earlier run's) are kept
as ``input_<name>``. Output: ``--output FILE`` (``.jsonl``, ``.csv`` or ``.parquet``) or JSON lines on
stdout. Only single-label classifiers are used (a multi-label or regression head is refused).

Speed comes from the stage code: texts are tokenized once, sorted by length and padded per batch
(``textclf.models.inference.run_batched``), on CUDA when present, in bf16 where the hardware computes it
natively. Rows stream through in slices of ``ROWS_PER_SLICE`` (read, labelled, written), so memory
holds one slice whatever the input's size. On N processes
(``python -m textclf.models.launch --processes N textclf predict ...``) each slice's batches are split
between them and the first process writes the output. Bad input (a missing or corrupt model, an empty or
unreadable input, no ``text`` column) stops with one line ``error: ...`` and exit code 2.
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
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.common.errors import PipelineError, one_line, run_cli
from textclf.common.user_paths import TABLE_SUFFIXES
from textclf.io.outputs import atomic_path, check_output
from textclf.io.sources import RawNumber, _lines, at, chunks, mend, read_slices

DEFAULT_MODEL = "models/finetuned"
# Inputs by suffix: one text a line (.txt, .text, or none), or a table with a `text` column.
TEXT_SUFFIXES = ("", ".txt", ".text")
INPUT_FORMATS = (*TEXT_SUFFIXES, ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
log = logging.getLogger("textclf.commands.predict")
# Inputs at least this long show a progress bar (on stderr); shorter ones run silently.
PROGRESS_MIN_ROWS = 1000
# Rows read, sorted by length, labelled and written together (per-slice sorting keeps the padding
# saving: 20,000 tweets hold every length many times over).
ROWS_PER_SLICE = 20_000


def read_input(path: Path | None, texts: list[str], rows_per_slice: int | None = None) -> Iterator[pd.DataFrame]:
    """The rows to label, a slice at a time: ``texts`` given as arguments, else ``path`` (``None`` or
    ``-``: stdin), read by its suffix (``INPUT_FORMATS``) with the data stage's readers
    (``textclf.io.sources``). Blank lines of text input are skipped; a table needs a ``text`` column of
    strings; its other columns are kept exactly as read (CSV/TSV fields and JSON numbers as their text,
    Parquet columns with their types). Errors name the file and the line or row."""
    rows = rows_per_slice or ROWS_PER_SLICE
    if texts:
        if (mended := [mend(text) for text in texts]) != texts:  # a byte that is not UTF-8, or half an emoji
            log.warning("arguments: a lone surrogate replaced by U+FFFD")
        yield pd.DataFrame({"text": mended})
        return
    source = "stdin" if path is None or str(path) == "-" else str(path)
    suffix = "" if source == "stdin" else path.suffix.lower()
    if suffix not in INPUT_FORMATS:
        raise PipelineError(
            f"{path}: unknown input format '{suffix}' (use {', '.join(INPUT_FORMATS[1:])}, or .txt for one text a line)"
        )
    if source != "stdin" and not path.is_file():
        raise PipelineError(f"{path}: input file not found")
    if suffix in TEXT_SUFFIXES:  # one text a line, blank lines skipped
        lines = _lines(source, handle=_stdin() if source == "stdin" else None)
        slices = chunks(((n, {"text": line}) for n, line in lines if line.strip()), rows)
    else:
        slices = read_slices(path, rows, ("text",))
    empty = True
    for numbers, frame in slices:
        texts = frame["text"] if "text" in frame else [None] * len(frame)  # JSON rows without it, so far
        bad = [n for n, text in zip(numbers, texts, strict=True) if not _is_text(text)]
        if bad:
            raise PipelineError(f"{at(source, bad[0])}: 'text' is empty or not a string")
        empty = False
        yield frame
    if empty:
        raise PipelineError(f"{source}: no texts to label (empty input)")


def _stdin() -> BinaryIO:
    """stdin's bytes; a closed stdin or a terminal without input is one line."""
    stream = sys.stdin
    try:
        if stream is None or stream.closed or stream.isatty():
            raise PipelineError("no texts: give them as arguments, with --input FILE, or on stdin")
    except (ValueError, OSError):  # a closed or invalid descriptor 0
        raise PipelineError("no texts: stdin is closed; give them as arguments or with --input FILE") from None
    return getattr(stream, "buffer", stream)


def _is_text(value) -> bool:
    """A non-blank string (not a number read from JSON, which is kept as its text)."""
    return isinstance(value, str) and not isinstance(value, RawNumber) and bool(value.strip())


def load_model(folder: Path):
    """The fine-tuned classifier and its tokenizer from ``folder``; any load failure is one line."""
    from textclf.models.loading import load_finetuned, load_tokenizer

    if not folder.is_dir():
        raise PipelineError(f"{folder}: model folder not found (train one with `dvc repro`, or pass --model)")
    try:
        model = load_finetuned(folder)  # checked whole first: tokenizer, id2label 0..n-1, trained head
        tokenizer = load_tokenizer(str(folder))
    except PipelineError:
        raise
    except Exception as exc:  # corrupt safetensors or config: transformers raises many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PipelineError(f"{folder}: could not load the model ({type(exc).__name__}: {first[:200]})") from None
    head = model.config.problem_type or "single_label_classification"
    if head != "single_label_classification":  # load_finetuned refused fewer than two labels
        raise PipelineError(
            f"{folder}: a {head} head with {model.config.num_labels} output(s): textclf predict labels texts "
            "with single-label classifiers only (one label of two or more, by softmax)"
        )
    return model.eval(), tokenizer


def max_input_tokens(model, tokenizer, asked: int | None = None) -> int:
    """Tokens kept per text: ``asked`` (--max-length), else the length the model was trained with (the
    tokenizer's ``model_max_length``, which the encode stage sets to ``model.max_length``); never more
    than the model's positions (a longer ``asked`` is lowered to that, with a warning)."""
    from textclf.models.loading import input_limit, position_limit  # torch: loaded with the model, not before

    limit = position_limit(model.config)
    if asked is not None:
        if limit is not None and asked > limit:
            log.warning(
                "--max-length %d is beyond the model's %d positions: texts are truncated at %d tokens",
                asked,
                limit,
                limit,
            )
            return limit
        return asked
    return input_limit(model.config, tokenizer) or 512


def predict_proba(
    model,
    tokenizer,
    texts: list[str],
    batch_size: int = 64,
    device: str = "auto",
    precision: str = "auto",
    max_length: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Class probabilities (rows x labels, float32) for ``texts``, in their order."""
    import torch

    from textclf.models import distributed
    from textclf.models.inference import run_batched
    from textclf.models.loading import encode_texts, resolve_device, use_bf16

    torch_device = distributed.local_device(resolve_device(device))
    input_ids = encode_texts(tokenizer, texts, max_input_tokens(model, tokenizer, max_length))
    logits = distributed.combine(
        run_batched(  # under several processes each ran its share of the batches
            model,
            input_ids,
            tokenizer.pad_token_id,
            batch_size,
            output="logits",
            device=torch_device,
            bf16=use_bf16(precision, torch_device),
            desc="predict",
            progress=len(texts) >= PROGRESS_MIN_ROWS if progress is None else progress,
        )
    )
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def label_rows(
    frame: pd.DataFrame, probabilities: np.ndarray, label_names: list[str], all_scores: bool, flat: bool = False
) -> pd.DataFrame:
    """The input rows with ``label`` and ``score`` (the predicted label's probability) added; with
    ``all_scores`` every label's probability too: ``scores`` (label -> probability), or with ``flat`` (CSV,
    Parquet) a ``score_<label>`` column each. An input column of one of those names (a gold ``label``, an
    earlier run's output) is kept, renamed ``input_<name>`` (``input_<name>_2``, ... when that is taken)."""
    best = probabilities.argmax(-1)
    rounded = np.round(probabilities.astype(float), 6)
    new = {"label": np.asarray(label_names, dtype=object)[best], "score": rounded[np.arange(len(best)), best]}
    if all_scores and flat:
        new.update({f"score_{name}": rounded[:, i] for i, name in enumerate(label_names)})
    elif all_scores:
        new["scores"] = [dict(zip(label_names, row, strict=True)) for row in rounded]
    taken, renames = {*frame.columns, *new}, {}
    for column in frame.columns:
        if column in new:
            name = f"input_{column}"
            name = (
                next(f"{name}_{n}" for n in itertools.count(2) if f"{name}_{n}" not in taken) if name in taken else name
            )
            renames[column] = name
            taken.add(name)
    return frame.rename(columns=renames).assign(**new)


def output_format(path: Path | None, fmt: str | None) -> str:
    """``fmt``, else the output file's extension, else jsonl (stdout); checked before any work is done."""
    fmt = fmt or (path.suffix.lower().lstrip(".") if path else "jsonl")
    if f".{fmt}" not in TABLE_SUFFIXES:
        raise PipelineError(f"{path}: unknown output format '{fmt}' (use .jsonl, .csv or .parquet)")
    if path is None and fmt == "parquet":
        raise PipelineError("--format parquet needs --output FILE")
    return fmt


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet columns are typed: JSON numbers kept as their text become numbers again."""
    for column in frame.columns:
        if pd.api.types.is_object_dtype(frame[column]):
            frame[column] = frame[column].map(lambda v: json.loads(v) if isinstance(v, RawNumber) else v)
    return frame


class OutputWriter:
    """Labelled slices, appended as they come: JSON lines, CSV (one header) or Parquet (one row group a
    slice), to ``path`` (written beside it and moved into place at the end, so a failure leaves no
    partial file) or to stdout."""

    def __init__(self, path: Path | None, fmt: str | None, inputs: tuple[Path, ...] = ()):
        self.path, self.fmt, self.inputs = path, output_format(path, fmt), inputs
        self.rows, self.columns, self._handle, self._parquet, self._atomic = 0, None, None, None, None

    def __enter__(self) -> OutputWriter:
        if self.path is not None:
            self._atomic = atomic_path(self.path, inputs=self.inputs)
            self._tmp = self._atomic.__enter__()
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.fmt != "jsonl":  # one header (CSV) or schema (Parquet): the columns of the first slice
            self.columns = self.columns or list(frame.columns)
            if new := [c for c in frame.columns if c not in self.columns]:
                raise PipelineError(
                    f"{self.path or 'stdout'}: column(s) {', '.join(map(str, new))} first appear after row "
                    f"{self.rows} of the input; a {self.fmt} output has the first rows' columns: write .jsonl"
                )
            frame = frame.reindex(columns=self.columns)
        try:
            if self.fmt == "parquet":
                frame = _typed(frame)
                if self._parquet is None:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    self._parquet = pq.ParquetWriter(self._tmp, table.schema)
                else:
                    table = pa.Table.from_pandas(frame, schema=self._parquet.schema, preserve_index=False)
                self._parquet.write_table(table)
            else:
                if self._handle is None:
                    self._handle = (
                        sys.stdout if self.path is None else open(self._tmp, "w", encoding="utf-8", newline="")
                    )
                _write(frame, self._handle, self.fmt, header=self.rows == 0)
        except OSError as exc:
            raise PipelineError(f"{self.path or 'stdout'}: could not write it: {exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:  # pyarrow: a column whose type changes between slices
            raise PipelineError(f"{self.path}: could not write it: {one_line(exc)[:200]}") from None
        self.rows += len(frame)

    def __exit__(self, *exc_info) -> None:
        try:  # closing flushes: a full disk shows here
            if self._parquet is not None:
                self._parquet.close()
            if self._handle is not None:
                self._handle.flush() if self._handle is sys.stdout else self._handle.close()
        except OSError as exc:
            error = PipelineError(f"{self.path or 'stdout'}: could not write it: {exc.strerror or exc}")
            if self._atomic is not None:
                self._atomic.__exit__(PipelineError, error, None)  # removes the partial file
            raise error from None
        if self._atomic is not None:
            self._atomic.__exit__(*exc_info)


def _write(frame: pd.DataFrame, handle, fmt: str, header: bool = True) -> None:
    if fmt == "csv":
        frame.to_csv(handle, index=False, header=header, lineterminator="\r\n")  # RFC 4180: a "\r" is quoted
        return
    for row in frame.to_dict(orient="records"):
        handle.write(to_json(row) + "\n")


def to_json(value) -> str:
    """Strict JSON for one value of a row: NaN, infinities and missing values are null (never ``NaN``),
    numbers read from a JSON input come back as written, numpy and pandas values as plain JSON."""
    if isinstance(value, RawNumber):
        return str(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}: {to_json(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and not np.isfinite(value)):
        return "null"
    if isinstance(value, (str, bool, int, float)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return json.dumps(pd.Timestamp(value).isoformat())
    if isinstance(value, bytes):
        return json.dumps(value.decode("utf-8", "replace"), ensure_ascii=False)
    return json.dumps(str(value), ensure_ascii=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textclf predict",
        description=__doc__.split("\n\n")[0].strip("` "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("texts", nargs="*", help="texts to label (else --input FILE, else stdin)")
    parser.add_argument(
        "-i", "--input", type=Path, help="a .txt (one text a line), .jsonl, .csv or .parquet file; - for stdin"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=str,
        help="a .jsonl, .csv or .parquet file, or a folder to write "
        "<input>.labelled.jsonl in (default: JSON lines on stdout)",
    )
    parser.add_argument(
        "--format", choices=("jsonl", "csv", "parquet"), help="output format (default: by --output's extension)"
    )
    parser.add_argument(
        "-m",
        "--model",
        type=Path,
        default=Path(DEFAULT_MODEL),
        help=f"a fine-tuned model folder (default: {DEFAULT_MODEL})",
    )
    parser.add_argument("--all-scores", action="store_true", help="add every label's probability")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per forward pass (default: 64)")
    parser.add_argument("--max-length", type=int, help="tokens kept per text (default: the model's limit)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 where the hardware computes it natively, else fp32",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    return parser


def output_path(output: str | None, source: Path | None, fmt: str | None) -> Path | None:
    """``--output``; an existing folder (or a path ending in /) means a file in it, named after the input
    (``<input>.labelled.<format>``, ``predictions.<format>`` for stdin or arguments): never the folder replaced."""
    if output is None or not (Path(output).is_dir() or output.endswith(("/", os.sep))):
        output_format(None if output is None else Path(output), fmt)
        return None if output is None else Path(output)
    output = Path(output)
    name = f"{source.stem}.labelled" if source is not None and str(source) != "-" else "predictions"
    return output / f"{name}.{fmt or 'jsonl'}"


def main(argv: list[str] | None = None) -> None:
    from textclf.models import distributed

    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or (args.max_length is not None and args.max_length < 2):
        raise PipelineError("--batch-size must be at least 1 and --max-length at least 2")
    if args.texts and args.input is not None:
        raise PipelineError("give texts as arguments or --input FILE, not both")
    output = output_path(args.output, args.input, args.format)
    if output is None and sys.stdout is None:  # descriptor 1 closed
        raise PipelineError("stdout is closed: write the labelled rows with --output FILE")
    inputs = tuple(p for p in (args.input, args.model) if p is not None and str(p) != "-")
    if output is not None:
        check_output(output, inputs)  # never the input, the model, a folder, the current folder: before any work
    slices = read_input(args.input, args.texts)
    first = next(slices)  # a bad or empty input stops here, before the model is loaded
    model, tokenizer = load_model(args.model)
    label_names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    flat = output_format(output, args.format) != "jsonl"  # CSV and Parquet: a score_<label> column each
    writer = OutputWriter(output, args.format, inputs) if distributed.is_main() else nullcontext()
    with distributed.process_group(), writer:
        for frame in itertools.chain([first], slices):
            probabilities = predict_proba(
                model,
                tokenizer,
                frame["text"].tolist(),
                batch_size=args.batch_size,
                device=args.device,
                precision=args.precision,
                max_length=args.max_length,
                progress=False if args.no_progress else None,
            )
            if distributed.is_main():
                writer.write(label_rows(frame, probabilities, label_names, args.all_scores, flat))


def cli(argv: list[str] | None = None) -> int:
    """Run ``main``; bad input prints one line ``error: ...`` on stderr and returns 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder only: never wait on the network
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bars: stderr keeps our own bar and errors only
    hf_logging.set_verbosity_error()

    def body() -> None:
        try:
            main(argv)
            if sys.stdout is not None:
                sys.stdout.flush()  # a full disk behind stdout shows here, not at exit
        except BrokenPipeError:  # `textclf predict ... | head`
            _quiet_stdout()
            sys.stderr.close()

    try:
        return run_cli(body, "stdout", before_error=_quiet_stdout)
    except KeyboardInterrupt:
        return 130


def _quiet_stdout() -> None:
    """After a failed write to stdout (closed pipe, full disk), point it at /dev/null: Python's final flush
    would otherwise print a second error and exit 120."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass

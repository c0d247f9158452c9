"""``textclf predict``: label new texts with a fine-tuned model, fast and offline.

    textclf predict "i feel great today" "this is so unfair"
    textclf predict --input tweets.csv --output labelled.jsonl --all-scores
    cat tweets.txt | textclf predict > labelled.jsonl

Texts come from the arguments, ``--input FILE`` (.txt: one text a line; .jsonl, .json, .csv, .tsv, .parquet:
a ``text`` column, the other columns kept as read) or stdin. Each row gets ``label`` and ``score``;
``--all-scores`` adds every label's probability (input columns of those names are kept as ``input_<name>``).
Output: ``--output FILE`` (.jsonl, .csv, .parquet) or JSON lines on stdout. Single-label classifiers only.
Texts are sorted by length and padded per batch, in slices of ``ROWS_PER_SLICE`` rows (on N processes via
``python -m textclf.models.launch``, the first writes). Bad input is one line ``error: ...``, exit code 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext, suppress
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.common.errors import PipelineError, one_line, run_cli
from textclf.common.user_paths import TABLE_SUFFIXES
from textclf.io.outputs import atomic_path, check_output
from textclf.io.sources import RawNumber, at, mend, read_slices

DEFAULT_MODEL = "models/finetuned"
log = logging.getLogger("textclf.commands.predict")
# Inputs at least this long show a progress bar (on stderr); shorter ones run silently.
PROGRESS_MIN_ROWS = 1000
# Rows read, sorted by length, labelled and written together (per-slice sorting keeps the padding
# saving: 20,000 tweets hold every length many times over).
ROWS_PER_SLICE = 20_000


def read_input(path: Path | None, texts: list[str], rows_per_slice: int | None = None) -> Iterator[pd.DataFrame]:
    """The rows to label, a slice at a time: ``texts``, else ``path`` (``None`` or ``-``: stdin) by ``read_slices``."""
    if texts:
        if (mended := [mend(text) for text in texts]) != texts:  # a byte that is not UTF-8, or half an emoji
            log.warning("arguments: a lone surrogate replaced by U+FFFD")
        yield pd.DataFrame({"text": mended})
        return
    source, numbers = "stdin" if path is None or str(path) == "-" else str(path), None
    for numbers, frame in read_slices(path, rows_per_slice or ROWS_PER_SLICE, ("text",)):
        texts = frame["text"] if "text" in frame else [None] * len(frame)  # JSON rows without it, so far
        is_text = [isinstance(t, str) and not isinstance(t, RawNumber) and t.strip() for t in texts]  # JSON number: no
        if bad := [n for n, ok in zip(numbers, is_text, strict=True) if not ok]:
            raise PipelineError(f"{at(source, bad[0])}: 'text' is empty or not a string")
        yield frame
    if numbers is None:  # no slice
        raise PipelineError(f"{source}: no texts to label (empty input)")


def load_model(folder: Path):
    """The fine-tuned classifier and its tokenizer from ``folder``; any load failure is one line."""
    from textclf.models.loading import load_finetuned, load_tokenizer

    model = load_finetuned(folder)  # checked whole first: tokenizer, id2label 0..n-1, trained head
    tokenizer = load_tokenizer(str(folder))
    head = model.config.problem_type or "single_label_classification"
    if head != "single_label_classification":  # load_finetuned refused fewer than two labels
        raise PipelineError(
            f"{folder}: a {head} head with {model.config.num_labels} output(s): textclf predict labels texts "
            "with single-label classifiers only (one label of two or more, by softmax)"
        )
    return model.eval(), tokenizer


def max_input_tokens(model, tokenizer, asked: int | None = None) -> int:
    """Tokens kept per text: ``asked`` (--max-length), else the trained length; at most the model's positions."""
    from textclf.common.checkpoints import input_limit, position_limit

    limit = position_limit(model.config)
    if asked is not None and limit is not None and asked > limit:
        log.warning("--max-length %d is beyond the model's %d positions: texts are truncated there", asked, limit)
        return limit
    return asked or input_limit(model.config, getattr(tokenizer, "model_max_length", None)) or 512


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
    """The rows with ``label``, ``score`` (and ``scores``, or ``score_<label>``s); input columns so named: input_*."""
    best = probabilities.argmax(-1)
    rounded = np.round(probabilities.astype(float), 6)
    new = {"label": np.asarray(label_names, dtype=object)[best], "score": rounded[np.arange(len(best)), best]}
    if all_scores and flat:
        new.update({f"score_{name}": rounded[:, i] for i, name in enumerate(label_names)})
    elif all_scores:
        new["scores"] = [dict(zip(label_names, row, strict=True)) for row in rounded]
    taken, renames = {*frame.columns, *new}, {}
    for column in [c for c in frame.columns if c in new]:
        names = itertools.chain([f"input_{column}"], (f"input_{column}_{n}" for n in itertools.count(2)))
        renames[column] = next(name for name in names if name not in taken)
        taken.add(renames[column])
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


class OutputWriter(ExitStack):
    """Labelled slices appended as JSON lines, CSV or Parquet to stdout or ``path`` (never a partial file)."""

    def __init__(self, path: Path | None, fmt: str | None, inputs: tuple[Path, ...] = ()):
        super().__init__()
        self.path, self.fmt, self.inputs = path, output_format(path, fmt), inputs
        self.rows, self.columns, self._handle, self._parquet = 0, None, None, None

    def __enter__(self) -> OutputWriter:
        if self.path is not None:  # removes the partial file on an error (of _close too), else moves it into place
            self._tmp = self.enter_context(atomic_path(self.path, inputs=self.inputs))
        self.callback(self._close)
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
            if self.fmt == "parquet":  # the first slice's schema for every row group
                schema = self._parquet.schema if self._parquet else None
                table = pa.Table.from_pandas(_typed(frame), schema=schema, preserve_index=False)
                self._parquet = self._parquet or pq.ParquetWriter(self._tmp, table.schema)
                self._parquet.write_table(table)
            else:
                self._handle = self._handle or (
                    sys.stdout if self.path is None else open(self._tmp, "w", encoding="utf-8", newline="")
                )
                _write(frame, self._handle, self.fmt, header=self.rows == 0)
        except (OSError, ValueError, TypeError) as exc:  # pyarrow: a column whose type changes between slices
            reason = getattr(exc, "strerror", None) or one_line(exc)[:200]
            raise PipelineError(f"{self.path or 'stdout'}: could not write it: {reason}") from None
        self.rows += len(frame)

    def _close(self) -> None:
        try:  # closing flushes: a full disk shows here
            if self._parquet is not None:
                self._parquet.close()
            if self._handle is not None:
                self._handle.flush() if self._handle is sys.stdout else self._handle.close()
        except OSError as exc:
            raise PipelineError(f"{self.path or 'stdout'}: could not write it: {exc.strerror or exc}") from None


def _write(frame: pd.DataFrame, handle, fmt: str, header: bool = True) -> None:
    if fmt == "csv":
        frame.to_csv(handle, index=False, header=header, lineterminator="\r\n")  # RFC 4180: a "\r" is quoted
    else:
        handle.writelines(to_json(row) + "\n" for row in frame.to_dict(orient="records"))


def to_json(value) -> str:
    """Strict JSON for one value of a row: NaN, infinities and missing values null, JSON input numbers as written."""
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
    if isinstance(value, pd.Timestamp):
        value = value.isoformat()
    elif isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return json.dumps(value if isinstance(value, (str, bool, int, float)) else str(value), ensure_ascii=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textclf predict",
        description=__doc__.split("\n\n")[0].strip("` "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    add = parser.add_argument
    add("texts", nargs="*", help="texts to label (else --input FILE, else stdin)")
    add("-i", "--input", type=Path, help="a .txt (one text a line), .jsonl, .csv or .parquet file; - for stdin")
    add("-o", "--output", help="a .jsonl, .csv or .parquet file, or a folder for <input>.labelled.jsonl (else stdout)")
    add("--format", choices=("jsonl", "csv", "parquet"), help="output format (default: by --output's extension)")
    add("-m", "--model", type=Path, default=Path(DEFAULT_MODEL), help=f"a fine-tuned model folder ({DEFAULT_MODEL})")
    add("--all-scores", action="store_true", help="add every label's probability")
    add("--batch-size", type=int, default=64, help="rows per forward pass (default: 64)")
    add("--max-length", type=int, help="tokens kept per text (default: the model's limit)")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present")
    add("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="auto: bf16 where the hardware has it")
    add("--no-progress", action="store_true", help="never show the progress bar")
    return parser


def output_path(output: str | None, source: Path | None, fmt: str | None) -> tuple[Path | None, str]:
    """(path, format) of ``--output``; in a folder (or ending in /): ``<input>.labelled.<format>`` or predictions.*"""
    path = None if output is None else Path(output)
    if path is not None and (path.is_dir() or output.endswith(("/", os.sep))):
        name = f"{source.stem}.labelled" if source is not None and str(source) != "-" else "predictions"
        path = path / f"{name}.{fmt or 'jsonl'}"
    return path, output_format(path, fmt)


def main(argv: list[str] | None = None) -> None:
    from textclf.models import distributed

    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or (args.max_length is not None and args.max_length < 2):
        raise PipelineError("--batch-size must be at least 1 and --max-length at least 2")
    if args.texts and args.input is not None:
        raise PipelineError("give texts as arguments or --input FILE, not both")
    output, fmt = output_path(args.output, args.input, args.format)
    if output is None and sys.stdout is None:  # descriptor 1 closed
        raise PipelineError("stdout is closed: write the labelled rows with --output FILE")
    inputs = tuple(p for p in (args.input, args.model) if p is not None and str(p) != "-")
    if output is not None:
        check_output(output, inputs)  # never the input, the model, a folder, the current folder: before any work
    slices = read_input(args.input, args.texts)
    first = next(slices)  # a bad or empty input stops here, before the model is loaded
    model, tokenizer = load_model(args.model)
    label_names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    writer = OutputWriter(output, fmt, inputs) if distributed.is_main() else nullcontext()
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
                writer.write(label_rows(frame, probabilities, label_names, args.all_scores, flat=fmt != "jsonl"))


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
    """After a failed write to stdout, point it at /dev/null: Python's final flush would print a second error."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        with suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

"""One error type for bad input, and the one way it reaches the user: ``error: <one line>``, exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from textclf.common.escape import terminal


class PipelineError(Exception):
    """Bad data, params or environment: the message is shown to the user as one line."""


def one_line(message: object) -> str:
    """``message`` with each run of whitespace (line breaks too) as one space, safe on a terminal (``terminal``)."""
    return terminal(" ".join(str(message).split()))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a library's, often several lines), or its type's name."""
    return one_line(str(exc).split("\n")[0]) or type(exc).__name__


def print_error(exc: BaseException | str, note: str = "") -> None:
    print(f"error: {one_line(exc)}{note}", file=sys.stderr)


def run_cli(body: Callable[[], object], written: str, before_error: Callable[[], None] = lambda: None) -> int:
    """Run a command's ``body``: 0, or 2 after ``error: <one line>`` for a ``PipelineError`` or ``OSError``."""
    try:
        body()
        return 0
    except (PipelineError, OSError) as exc:  # OSError: anything the file system refuses: one line, no traceback
        before_error()
        print_error(exc if isinstance(exc, PipelineError) else f"{exc.filename or written}: {exc.strerror or exc}")
        return 2

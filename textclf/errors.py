"""One error type for bad input, and the wrapper that turns it into a one-line exit."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable


class PipelineError(Exception):
    """Bad data, params or environment: the message is shown to the user as one line."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a ``PipelineError`` exits 2 with ``error: <message>`` on stderr.

    Any other exception keeps its traceback: that is a bug, not bad input.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    try:
        main()
    except PipelineError as exc:
        message = " ".join(str(exc).split())  # always exactly one line
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)

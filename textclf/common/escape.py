"""User text (label names, texts, file names, params) made safe where it is shown: one function per medium.

``terminal``: no control character or escape sequence (``\x1b[...``, ``\r``) reaches a terminal raw; every
``error: ...`` line goes through it (``errors.one_line``). ``markdown_cell``: one line of literal Markdown
that can neither break a table nor format (or script) the page. ``inert``: `dvc plots show` inlines plot
data into a ``<script>`` element unescaped, so plot files carry label names with ``<`` and ``>`` as
look-alikes: no tag, comment or ``</script>`` can form (``&`` means nothing there; Vega draws text).
"""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_MARKDOWN_SPECIAL = "\\`*_[]<>|~&#"
# look-alikes in every common font: the single angle quotation marks
LOOK_ALIKES = str.maketrans({"<": "\u2039", ">": "\u203a"})


def terminal(text: object) -> str:
    """``text`` with each control character, line separator, bidirectional override and lone surrogate
    written as its Python escape (``\\x1b``, ``\\u202e``); other text unchanged."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def markdown_cell(value: object) -> str:
    """``value`` as one line of literal Markdown text: whitespace runs (line breaks too) as one space,
    Markdown's special characters backslash-escaped, control characters as in ``terminal``."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in terminal(" ".join(str(value).split())))


def inert(text: object) -> str:
    """``text`` with ``<`` and ``>`` replaced by look-alike characters (other text unchanged)."""
    return str(text).translate(LOOK_ALIKES)


def inert_labels(names) -> list[str]:
    """Each label name made inert (see ``inert``), in the same order."""
    return [inert(name) for name in names]

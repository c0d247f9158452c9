"""User text made safe where it is shown: a terminal, a Markdown cell, plot data (inlined into a ``<script>``)."""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_MARKDOWN_SPECIAL = "\\`*_[]<>|~&#"
# look-alikes in every common font: the single angle quotation marks
LOOK_ALIKES = str.maketrans({"<": "\u2039", ">": "\u203a"})


def terminal(text: object) -> str:
    """``text`` with each control, line-separator, bidi-override or surrogate character as its Python escape."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def markdown_cell(value: object) -> str:
    """``value`` as one line of literal Markdown (special characters backslash-escaped, control ones escaped)."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in terminal(" ".join(str(value).split())))


def inert(text: object) -> str:
    """``text`` with ``<`` and ``>`` as look-alikes: no tag, comment or ``</script>`` can form (Vega draws text)."""
    return str(text).translate(LOOK_ALIKES)


def inert_labels(names) -> list[str]:
    return [inert(name) for name in names]

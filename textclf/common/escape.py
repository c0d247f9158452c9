"""Text that DVC puts on a web page: label names in plot files, made inert.

`dvc plots show` / `dvc plots diff` inline each plot's data into a ``<script>`` element of the page
without escaping it, so a label name holding ``</script><script>...`` would end that element and run
as code. Plot files (not the data, metrics or model) therefore carry label names with ``<`` and ``>``
replaced by look-alike characters: the plots read the same, and no tag, comment or ``</script>`` can
form. ``&`` stays: inside a script element it means nothing, and Vega draws labels as text, not HTML.
"""

from __future__ import annotations

# look-alikes in every common font: the single angle quotation marks
LOOK_ALIKES = str.maketrans({"<": "\u2039", ">": "\u203a"})


def inert(text: str) -> str:
    """``text`` with ``<`` and ``>`` replaced by look-alike characters (other text unchanged)."""
    return str(text).translate(LOOK_ALIKES)


def inert_labels(names) -> list[str]:
    """Each label name made inert (see ``inert``), in the same order."""
    return [inert(name) for name in names]

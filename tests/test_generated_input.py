"""Property-based tests (Hypothesis) of what the tools read and show: generated strings, tables and bytes."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from textclf.common.errors import one_line
from textclf.common.escape import inert, markdown_cell, terminal

FAST = settings(max_examples=80, deadline=None)
# any code point, lone surrogates and controls included, with the troublesome ones often
ANY_TEXT = st.text(
    st.one_of(st.characters(codec=None), st.sampled_from("\x1b\r\n\t|<>\\`*&\u202e\u2028\x9b\x00")), max_size=40
)


def _raw_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u2028\u2029\u202e\u2066" for ch in text)


@FAST
@given(ANY_TEXT)
def test_terminal_text_holds_no_control_character(text):
    shown = terminal(text)
    assert not _raw_control(shown)
    assert shown == text or _raw_control(text)  # plain text is left as it is
    assert not _raw_control(one_line(text)) and "\n" not in one_line(text)


@FAST
@given(ANY_TEXT)
def test_a_markdown_cell_is_one_line_with_every_pipe_and_tag_escaped(text):
    cell = markdown_cell(text)
    assert "\n" not in cell and "\r" not in cell and not _raw_control(cell)
    # every |, < and > is preceded by an odd number of backslashes: escaped, never a cell border or a tag
    for match in re.finditer(r"(\\*)([|<>])", cell):
        assert len(match.group(1)) % 2 == 1, cell


@FAST
@given(ANY_TEXT)
def test_page_text_never_forms_a_tag(text):
    assert "<" not in inert(text) and ">" not in inert(text)

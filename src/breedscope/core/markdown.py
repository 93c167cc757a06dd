"""Text from data or users (class names, paths, settings) as Markdown that shows exactly it."""

from __future__ import annotations

import html
import re

# In Markdown text from data or users (class names, paths, settings): the characters that would
# start code or emphasis, end a table cell, or close a link's text before its target (``](``),
# shown as themselves instead. (A lone bracket, as in a setting's ``[64]``, makes no link.)
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*|]|\](?=\())")


def markdown_literal(text: object) -> str:
    """``text`` as Markdown that shows exactly it: HTML characters as entities (a class named
    ``<img src=x onerror=...>`` is text in every viewer, not an element), Markdown's own
    punctuation escaped, a line break as a space (it would end a table row)."""
    escaped = html.escape(str(text), quote=False)
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", escaped).replace("\r", " ").replace("\n", " ")

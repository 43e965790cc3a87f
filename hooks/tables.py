"""Tables wrapped at build time the way Material's script wraps them at load.

Material's bundle puts every ``<table>`` without a class attribute inside
``<div class="md-typeset__scrollwrap"><div class="md-typeset__table">`` once the page has
loaded, so that wide tables scroll sideways on phones. Done at load, that moves things: a
table in view changes its box, and a new top-level wrapper under ``content-visibility: auto``
(docs/stylesheets/extra.css) starts as a 120px placeholder, which flips the blocks below it in
and out of view. Both are layout shifts a reader sees and Lighthouse counts.

So the HTML already carries the wrapper. Material still wraps the table again, inside ours
(it cannot tell); extra.css gives that inner pair no margin, padding or scrolling, so the box
a reader sees is the same before and after the script runs.
"""

from __future__ import annotations

import re

from mkdocs.structure.pages import Page

# A table Material would wrap: `table:not([class])`. Tables are never nested in our pages.
TABLE_RE = re.compile(r"<table(?=[\s>])(?![^>]*\bclass=)[^>]*>.*?</table>", re.DOTALL)
OPEN = '<div class="md-typeset__scrollwrap"><div class="md-typeset__table">'
CLOSE = "</div></div>"


def wrap_tables(html: str) -> str:
    """Wrap each table without a class attribute in Material's two scrolling divs."""
    return TABLE_RE.sub(lambda m: OPEN + m.group(0) + CLOSE, html)


def on_page_content(html: str, page: Page, **_: object) -> str:
    return wrap_tables(html)

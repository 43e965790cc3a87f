"""Tables wrapped and styled at build time, so Material's script never touches them at load.

Material's bundle takes every ``<table>`` without a class attribute (``table:not([class])``)
once the page has loaded, replaces it with a placeholder and puts it back inside
``<div class="md-typeset__scrollwrap"><div class="md-typeset__table">`` so that wide tables
scroll sideways on phones. Done at load, that costs twice:

- layout shifts: a table in view changes its box, and a new top-level wrapper under
  ``content-visibility: auto`` (docs/stylesheets/extra.css) starts as a 120px placeholder;
- main-thread time: a subtree taken out of the document and put back is styled again from
  scratch. On a page of tables full of formulas (rl/notation: ~3,000 elements in its tables)
  that restyle took about 180 ms on the development machine before Lighthouse's 4x CPU
  slowdown, the difference between a score of 83 and 99 (traced; it happens whenever the whole
  page is parsed before its first layout).

So this hook writes the wrapper into the HTML and gives each such table a class,
``data-table``, which Material's script skips (it only takes tables without one). Material's
stylesheet styles tables by the same selector, so the hook also derives, at build time from
the Material CSS of this very build, a copy of every ``table:not([class])`` rule with the
selector rewritten to ``table.data-table``, and inlines it (about 1 KB) into the pages that
have tables. Upgrading Material re-derives the rules; a browser test checks that a table
looks exactly as it does under Material's own rules.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import tinycss2
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.pages import Page

CLASS = "data-table"
# A table Material would wrap: `table:not([class])`. Tables are never nested in our pages.
TABLE_RE = re.compile(r"<table(?=[\s>])(?![^>]*\bclass=)([^>]*)>(.*?)</table>", re.DOTALL)
OPEN = '<div class="md-typeset__scrollwrap"><div class="md-typeset__table">'
CLOSE = "</div></div>"
MATERIAL_SELECTOR = "table:not([class])"
STYLE_ID = "data-table-css"
GROUPING = ("media", "supports")  # at-rules whose inner rules are searched too

_css_file: Path | None = None


def wrap_tables(html: str) -> str:
    """Give each table without a class attribute our class and Material's two scrolling divs."""
    return TABLE_RE.sub(
        lambda m: f'{OPEN}<table class="{CLASS}"{m.group(1)}>{m.group(2)}</table>{CLOSE}', html
    )


def _split_selectors(prelude: str) -> list[str]:
    """Split a selector list on its top-level commas (not those inside :is(...), [a=","])."""
    out, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(prelude):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(prelude[start:i].strip())
            start = i + 1
    out.append(prelude[start:].strip())
    return [s for s in out if s]


def _rewrite(rules: list, selector: str) -> list[str]:  # type: ignore[type-arg]
    out = []
    for rule in rules:
        if rule.type == "qualified-rule":
            mine = [
                s.replace(MATERIAL_SELECTOR, selector)
                for s in _split_selectors(tinycss2.serialize(rule.prelude))
                if MATERIAL_SELECTOR in s
            ]
            if mine:
                out.append(f"{','.join(mine)}{{{tinycss2.serialize(rule.content).strip()}}}")
        elif rule.type == "at-rule" and rule.lower_at_keyword in GROUPING and rule.content:
            inner = tinycss2.parse_rule_list(rule.content, skip_whitespace=True, skip_comments=True)
            body = _rewrite(inner, selector)
            if body:
                prelude = tinycss2.serialize(rule.prelude).strip()
                out.append(f"@{rule.lower_at_keyword} {prelude}{{{''.join(body)}}}")
    return out


def table_css(material_css: str, selector: str = f"table.{CLASS}") -> str:
    """Material's ``table:not([class])`` rules (in their @media blocks), for ``selector``."""
    rules = tinycss2.parse_stylesheet(material_css, skip_whitespace=True, skip_comments=True)
    return "".join(_rewrite(rules, selector))


def material_css_file(theme_dirs: list[str]) -> Path:
    """Material's main stylesheet among the theme's directories (the first one found)."""
    for directory in theme_dirs:
        found = sorted(Path(directory).glob("assets/stylesheets/main.*.min.css"))
        if found:
            return found[0]
    raise PluginError(f"hooks/tables.py: no assets/stylesheets/main.*.min.css in {theme_dirs}")


@functools.lru_cache(maxsize=4)
def _style_element(css_file: Path) -> str:
    css = table_css(css_file.read_text(encoding="utf-8"))
    if f"table.{CLASS}" not in css:
        raise PluginError(f"hooks/tables.py: no `{MATERIAL_SELECTOR}` rule in {css_file}")
    return f'<style id="{STYLE_ID}">{css}</style>'


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    global _css_file
    _css_file = material_css_file(config.theme.dirs)
    return config


def on_page_content(html: str, page: Page, **_: object) -> str:
    return wrap_tables(html)


def on_post_page(output: str, page: Page, **_: object) -> str:
    if f'<table class="{CLASS}"' not in output or _css_file is None:
        return output
    return output.replace("</head>", _style_element(_css_file) + "</head>", 1)

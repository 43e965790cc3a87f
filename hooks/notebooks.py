"""Executed notebook pages: a cache that knows what a notebook imports, and errors that name it.

mkdocs-jupyter (``plugins`` in ``mkdocs.yml``) executes each jupytext ``.py`` notebook at build
time with ``allow_errors: false`` and caches the result keyed on the notebook's own bytes. Our
notebooks import ``snippets/`` and read committed results, so this hook adds those files'
contents to the key: an unchanged tree re-uses the cache (``mkdocs serve`` stays fast), any
change to the code a notebook runs re-executes it. A failing cell fails the build with a
message naming the notebook.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import struct
from pathlib import Path

import mkdocs_jupyter.plugin as jupyter_plugin
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
# Everything a notebook may import or read, besides itself.
DEPENDENCIES = ("snippets", "results", "hooks/notebooks.py")

_original_key = jupyter_plugin._compute_cache_key
_original_nb2html = jupyter_plugin.convert.nb2html


def dependency_digest(root: Path = ROOT) -> str:
    """SHA-256 over the paths and bytes of every file notebooks depend on."""
    digest = hashlib.sha256()
    for name in DEPENDENCIES:
        base = root / name
        if not base.exists():
            continue
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in paths:
            if "__pycache__" in path.parts:
                continue
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _cache_key(nb_path: str, config: object, exec_nb: bool) -> str:
    own = _original_key(nb_path, config, exec_nb)
    return hashlib.sha256(f"{own}:{dependency_digest()}".encode()).hexdigest()


# nbconvert's template loads MathJax (with an empty src that fetches the page itself as a
# script) and, for mermaid cells, mermaid from a CDN. Math is rendered at build time here, so
# both go; what nbconvert left of the math ($...$ in markdown cells) becomes arithmatex markup
# that hooks/katex.py renders like any other page's.
MATHJAX_RE = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)
CDN_MODULE_RE = re.compile(
    r'<script type="module">(?:(?!</script>).)*?https?://(?:(?!</script>).)*</script>', re.DOTALL
)
MARKDOWN_CELL_RE = re.compile(
    r'(<div class="[^"]*jp-MarkdownOutput[^"]*"[^>]*>)(.*?)(</div>)', re.DOTALL
)
CODE_RE = re.compile(r"(<(code|pre)\b.*?</\2>)", re.DOTALL)
DISPLAY_RE = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
INLINE_RE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)")


def _math_to_arithmatex(fragment: str) -> str:
    parts = CODE_RE.split(fragment)
    out = []
    # CODE_RE.split yields [text, code, tagname, text, code, tagname, ...]
    for i in range(0, len(parts), 3):
        text = parts[i]
        text = DISPLAY_RE.sub(lambda m: f'<div class="arithmatex">\\[{m.group(1)}\\]</div>', text)
        text = INLINE_RE.sub(lambda m: f'<span class="arithmatex">\\({m.group(1)}\\)</span>', text)
        out.append(text)
        if i + 1 < len(parts):
            out.append(parts[i + 1])
    return "".join(out)


# An inline PNG output without a size: <img ... src="data:image/png;base64,...">.
PNG_IMG_RE = re.compile(
    r'<img(?![^>]*\bwidth=)([^>]*?)\ssrc="data:image/png;base64,([A-Za-z0-9+/=]+)"'
)


def _with_png_size(match: re.Match[str]) -> str:
    """Give an inline PNG its pixel size, so the page reserves its box before it is decoded.

    The size is read from the PNG's IHDR chunk (bytes 16-24: width, height, big-endian).
    Material's `max-width: 100%; height: auto` still scales it down on a narrow screen.
    """
    attrs, data = match.group(1), match.group(2)
    header = base64.b64decode(data[:44])  # 33 bytes: signature, IHDR length, type, size
    if header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR":
        return match.group(0)
    width, height = struct.unpack(">II", header[16:24])
    return f'<img{attrs} width="{width}" height="{height}" src="data:image/png;base64,{data}"'


def prepare_notebook_html(body: str) -> str:
    """Drop nbconvert's client-side math/mermaid loaders; mark math for build-time KaTeX;
    give inline images their size (an unsized image moves the text below it when it loads)."""
    body = MATHJAX_RE.sub("", body)
    body = CDN_MODULE_RE.sub("", body)
    body = PNG_IMG_RE.sub(_with_png_size, body)
    return MARKDOWN_CELL_RE.sub(
        lambda m: m.group(1) + _math_to_arithmatex(m.group(2)) + m.group(3), body
    )


def _nb2html(nb_path: str, *args: object, **kwargs: object) -> str:
    try:
        return prepare_notebook_html(_original_nb2html(nb_path, *args, **kwargs))
    except Exception as err:  # nbclient's CellExecutionError, kernel death, bad jupytext ...
        rel = Path(nb_path).resolve()
        try:
            rel = rel.relative_to(ROOT)
        except ValueError:
            pass
        raise PluginError(f"notebook {rel} failed to execute:\n{err}") from err


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    if "mkdocs-jupyter" not in config.plugins:
        raise PluginError("hooks/notebooks.py needs the mkdocs-jupyter plugin in mkdocs.yml")
    jupyter_plugin._compute_cache_key = _cache_key
    jupyter_plugin.convert.nb2html = _nb2html
    return config


# A sized inline PNG, as prepare_notebook_html leaves it.
INLINE_PNG_RE = re.compile(r'<img([^>]*?)\ssrc="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def extract_inline_pngs(output: str) -> tuple[str, dict[str, bytes]]:
    """Move inline PNGs out of the page: (page with file references, {file name: bytes}).

    A notebook's figures are base64 inside its HTML: a page of seven plots weighed 2 MB, which
    a phone had to download before showing the first line. As files next to the page, the
    text comes first and each figure loads when scrolled near (``loading="lazy"``: a figure
    comes after the code that draws it, so never first on the screen); the size from
    prepare_notebook_html keeps their boxes reserved.
    """
    files: dict[str, bytes] = {}

    def replace(match: re.Match[str]) -> str:
        data = base64.b64decode(match.group(2))
        name = f"figure-{hashlib.sha256(data).hexdigest()[:12]}.png"
        files[name] = data
        return f'<img{match.group(1)} loading="lazy" decoding="async" src="{name}"'

    return INLINE_PNG_RE.sub(replace, output), files


def on_post_page(output: str, page: Page, config: MkDocsConfig, **_: object) -> str:
    if not page.file.src_uri.endswith(".py"):  # only notebook pages
        return output
    output, files = extract_inline_pngs(output)
    output = purge_jupyter_css(output)
    folder = Path(config.site_dir) / Path(page.file.dest_uri).parent
    for name, data in files.items():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return output


# ---- Jupyter's stylesheet, cut down to what the page uses ----------------------------------

CLASS_ATTR_RE = re.compile(r'\bclass="([^"]*)"')
STYLE_BLOCK_RE = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.DOTALL)
SELECTOR_CLASS_RE = re.compile(r"\.(-?[_a-zA-Z][\w-]*)")
# Pseudo-classes that take a selector list: a class inside them is not simply "needed".
LIST_PSEUDO_RE = re.compile(r":(?:is|where|has|matches|any|-webkit-any)\(")


def _without_not(selector: str) -> str:
    """The selector with every ``:not(...)`` removed, nested parentheses included."""
    while (start := selector.find(":not(")) != -1:
        depth, end = 0, start + 4
        for end in range(start + 4, len(selector)):
            depth += (selector[end] == "(") - (selector[end] == ")")
            if depth == 0:
                break
        selector = selector[:start] + selector[end + 1 :]
    return selector


def _selector_can_match(selector: str, classes: set[str]) -> bool:
    """False only if the selector needs a class that no element of the page has.

    Classes inside ``:not(...)`` are ignored (their absence is what lets it match), and a
    selector with ``:is()``, ``:where()`` or ``:has()`` is always kept (any one of its
    alternatives may match).
    """
    selector = _without_not(selector)
    if LIST_PSEUDO_RE.search(selector):
        return True
    needed = SELECTOR_CLASS_RE.findall(selector)
    return all(name in classes for name in needed)


def _split_selectors(prelude: str) -> list[str]:
    """Split a selector list at its top-level commas (not those inside ``:is(a, b)``)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(prelude):
        depth += (ch in "([") - (ch in ")]")
        if ch == "," and depth == 0:
            parts.append(prelude[start:i].strip())
            start = i + 1
    parts.append(prelude[start:].strip())
    return parts


# A stylesheet reduced to what the purge needs: ("rule", selectors, body),
# ("group", "@media (...)", items) or ("keep", text) for other at-rules.
Item = tuple


def _outline(rules: list) -> list[Item]:  # type: ignore[type-arg]
    import tinycss2  # installed with nbconvert (bleach[css]); pinned in requirements.txt

    items: list[Item] = []
    for rule in rules:
        if rule.type == "qualified-rule":
            selectors = _split_selectors(tinycss2.serialize(rule.prelude))
            items.append(("rule", selectors, tinycss2.serialize(rule.content)))
        elif rule.type == "at-rule" and rule.lower_at_keyword in ("media", "supports"):
            inner = tinycss2.parse_rule_list(rule.content, skip_whitespace=True, skip_comments=True)
            head = f"@{rule.at_keyword}{tinycss2.serialize(rule.prelude)}"
            items.append(("group", head, _outline(inner)))
        elif rule.type == "at-rule":
            items.append(("keep", tinycss2.serialize([rule])))
    return items


@functools.lru_cache(maxsize=4)
def _parsed(css: str) -> list[Item]:
    """Parsed once per build: every notebook page carries the same stylesheet."""
    import tinycss2

    return _outline(tinycss2.parse_stylesheet(css, skip_whitespace=True, skip_comments=True))


def _purge_rules(items: list[Item], classes: set[str]) -> str:
    out: list[str] = []
    for item in items:
        if item[0] == "rule":
            kept = [s for s in item[1] if _selector_can_match(s, classes)]
            if kept:
                out.append(",".join(kept) + "{" + item[2] + "}")
        elif item[0] == "group":
            inner = _purge_rules(item[2], classes)
            if inner:
                out.append(f"{item[1]}{{{inner}}}")
        else:
            out.append(item[1])
    return "".join(out)


def purge_jupyter_css(output: str) -> str:
    """Drop the rules of mkdocs-jupyter's inline JupyterLab stylesheet (574 KB on every
    notebook page) whose selectors need a class that no element of this page carries."""
    classes = {c for attr in CLASS_ATTR_RE.findall(output) for c in attr.split()}

    def purge(match: re.Match[str]) -> str:
        css = match.group(2)
        if ".jupyter-wrapper" not in css:
            return match.group(0)
        return match.group(1) + _purge_rules(_parsed(css), classes) + match.group(3)

    return STYLE_BLOCK_RE.sub(purge, output)

"""Build-time math: render every arithmatex formula to HTML with KaTeX, once, at build time.

Readers download no math JavaScript. One Node process (``hooks/katex_server.mjs``) serves the
whole build; each page sends all of its formulas in one request. Bad TeX fails the build with
the page and the formula. KaTeX's CSS is inlined into each page that has math, and the fonts
that the page's first screen uses are preloaded (computed here from the CSS rules and the
rendered classes), so the text in view does not shift when the fonts arrive. Fonts used only
further down are fetched by the browser when that text is first laid out, which
``content-visibility: auto`` (docs/stylesheets/extra.css) defers until it nears the viewport;
preloading them too made them compete with the first screen for bandwidth. Fonts are copied
from the pinned npm package.
"""

from __future__ import annotations

import html
import json
import posixpath
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.pages import Page
from mkdocs.structure.toc import AnchorLink

ROOT = Path(__file__).resolve().parent.parent
KATEX_DIST = ROOT / "node_modules" / "katex" / "dist"
SERVER = Path(__file__).resolve().parent / "katex_server.mjs"
FONT_DIR = "assets/katex/fonts"

# arithmatex (generic mode) wraps inline math in <span class="arithmatex">\(...\)</span> and
# display math in <div class="arithmatex">\[...\]</div>.
MATH_RE = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*'
    r"(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<display>.*?)\\\])"
    r"\s*</(?P=tag)>",
    re.DOTALL,
)
# What must never survive rendering: a delimiter that arithmatex did not claim.
RAW_TEX_RE = re.compile(r"\\\(|\\\[|\$\$")
CLASS_RE = re.compile(r'class="([^"]+)"')
FONT_FACE_RE = re.compile(r"@font-face\{([^}]*)\}")
RULE_RE = re.compile(r"([^{}@]+)\{([^{}]*font-family:[^{}]*)\}")
TAG_RE = re.compile(r"<[^>]*>")
INVISIBLE_RE = re.compile(r"<(style|script)\b.*?</\1>", re.DOTALL | re.IGNORECASE)
# How much of a page counts as its first screen, in characters of text before a formula: a
# phone shows about 40 lines of 45 characters; a desktop shows less text plus the TOC.
FIRST_SCREEN_CHARS = 1500


class KatexRenderer:
    """A Node process running KaTeX, fed one page (a batch of formulas) at a time."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if not (KATEX_DIST / "katex.min.css").is_file():
            raise PluginError(
                f"KaTeX is not installed ({KATEX_DIST} is missing): run `npm ci` at the repo root"
            )
        node = shutil.which("node")
        if node is None:
            raise PluginError("Node.js is needed to render math at build time: install node")
        return subprocess.Popen(
            [node, str(SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )

    def render(self, items: list[tuple[str, bool]]) -> list[dict[str, str]]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        request = {"items": [{"tex": tex, "display": display} for tex, display in items]}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise PluginError("the KaTeX renderer (node hooks/katex_server.mjs) exited")
        return json.loads(line)["results"]

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.stdin:
                self._proc.stdin.close()
            self._proc.wait(timeout=10)
            self._proc = None


class KatexAssets:
    """KaTeX's CSS (fonts pointed at the site's copy, woff2 only) and its font map."""

    def __init__(self) -> None:
        css = (KATEX_DIST / "katex.min.css").read_text(encoding="utf-8")
        # (family, style, weight) -> woff2 file name, from the @font-face rules
        self.font_files: dict[tuple[str, str, str], str] = {}
        for body in FONT_FACE_RE.findall(css):
            decl = dict(
                part.split(":", 1) for part in body.split(";") if ":" in part and "src" not in part
            )
            woff2 = re.search(r"url\(fonts/([^)]+\.woff2)\)", body)
            if woff2 is None:
                raise RuntimeError(f"Unknown KaTeX @font-face without woff2: {body[:80]}")
            key = (decl["font-family"], decl.get("font-style", "normal"), decl["font-weight"])
            self.font_files[key] = woff2.group(1)
        # class sets -> (family, style, weight), from rules such as
        # `.katex .mathnormal{font-family:KaTeX_Math;font-style:italic}`
        self.class_fonts: list[tuple[frozenset[str], tuple[str, str, str]]] = []
        for selectors, body in RULE_RE.findall(css):
            decl = dict(part.split(":", 1) for part in body.split(";") if ":" in part)
            family = decl["font-family"].split(",")[0].strip()
            if not family.startswith("KaTeX_"):
                continue
            weight = decl.get("font-weight", "400")
            weight = {"bold": "700", "normal": "400"}.get(weight, weight)
            font = (family, decl.get("font-style", "normal"), weight)
            for selector in selectors.split(","):
                classes = frozenset(re.findall(r"\.([\w-]+)", selector)) - {"katex"}
                if classes:
                    self.class_fonts.append((classes, font))
        # woff2 only: every browser that runs Material reads it; woff/ttf would be dead weight.
        self.css = re.sub(
            r'src:url\(fonts/([^)]+\.woff2)\) format\("woff2"\)[^;}]*',
            lambda m: f'src:url(__FONT_BASE__/{m.group(1)}) format("woff2")',
            css,
        )

    def fonts_for(self, rendered: str) -> list[str]:
        """The woff2 files a page's rendered math uses (KaTeX_Main regular always)."""
        used = set()
        for attr in CLASS_RE.findall(rendered):
            used.update(attr.split())
        fonts = {("KaTeX_Main", "normal", "400")}
        for classes, font in self.class_fonts:
            if classes <= used:
                fonts.add(font)
        return sorted(self.font_files[f] for f in fonts if f in self.font_files)


_renderer = KatexRenderer()
_assets: KatexAssets | None = None
_site_path = "/"
# page src path -> woff2 files used, and rendered formulas by slot number
# (filled by on_page_content, read by on_post_page)
_page_fonts: dict[str, list[str]] = {}
_page_slots: dict[str, list[str]] = {}


def _render_html(text: str, where: str, slots: list[str]) -> tuple[str, str]:
    """Render every arithmatex formula in ``text``.

    Returns (text with each formula replaced by a slot, all rendered math). A slot is
    ``<span|div class="arithmatex" data-katex-slot="N">TeX</span|div>``: the search plugin
    indexes the page between on_page_content and on_post_page, so it sees clean TeX
    ("The k_3 estimator") instead of KaTeX's three copies of each formula; on_post_page
    then swaps the rendered HTML (``slots[N]``) in.
    """
    matches = list(MATH_RE.finditer(text))
    if not matches:
        return text, ""
    items = []
    for m in matches:
        display = m.group("display") is not None
        tex = html.unescape(m.group("display") if display else m.group("inline"))
        items.append((tex, display))
    results = _renderer.render(items)
    pieces: list[str] = []
    rendered: list[str] = []
    last = 0
    for m, (tex, display), result in zip(matches, items, results, strict=True):
        if "error" in result:
            raise PluginError(f"KaTeX error in {where}: {result['error']}\n  formula: {tex}")
        pieces.append(text[last : m.start()])
        tag = "div" if display else "span"
        slots.append(f'<{tag} class="arithmatex">{result["html"]}</{tag}>')
        rendered.append(result["html"])
        n = len(slots) - 1
        pieces.append(f'<{tag} class="arithmatex" data-katex-slot="{n}">{html.escape(tex)}</{tag}>')
        last = m.end()
    pieces.append(text[last:])
    return "".join(pieces), "".join(rendered)


SLOT_RE = re.compile(r'<(span|div) class="arithmatex" data-katex-slot="(\d+)">[^<]*</\1>')


def first_screen_slots(text: str, limit: int = FIRST_SCREEN_CHARS) -> list[int]:
    """The slots (see _render_html) whose formula starts within ``limit`` characters of text.

    Characters are those a reader sees: tags and the contents of <style> and <script> (a
    notebook page starts with 100 KB of CSS) are dropped, runs of whitespace count as one, and
    a formula counts as long as its TeX (a rough width).
    """
    found: list[int] = []
    chars = 0
    last = 0
    for m in SLOT_RE.finditer(text):
        seen = INVISIBLE_RE.sub(" ", text[last : m.start()])
        chars += len(" ".join(TAG_RE.sub(" ", seen).split()))
        if chars > limit:
            break
        found.append(int(m.group(2)))
        chars += len(html.unescape(TAG_RE.sub("", m.group(0))))
        last = m.end()
    return found


# Inline math in a TOC title: \( ... \) from Markdown pages (arithmatex's text), $ ... $ from
# notebook pages (mkdocs-jupyter takes the titles from the raw notebook Markdown).
TOC_MATH_RE = re.compile(r"\\\((.*?)\\\)|(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$(?!\$)")


def _render_toc(items: list[AnchorLink], where: str, slots: list[str]) -> None:
    """Headings with math: the TOC shows the rendered formula, never raw TeX."""
    for item in items:
        title = item.title
        if TOC_MATH_RE.search(title):
            # The TOC title is plain text: wrap it as arithmatex would, then render.
            wrapped = TOC_MATH_RE.sub(
                lambda m: (
                    f'<span class="arithmatex">\\({html.escape(m.group(1) or m.group(2))}\\)</span>'
                ),
                title,
            )
            item.title, _ = _render_html(wrapped, f"{where} (table of contents)", slots)
        _render_toc(item.children, where, slots)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    global _assets, _site_path
    if not KATEX_DIST.is_dir():
        raise PluginError(f"KaTeX is not installed ({KATEX_DIST} is missing): run `npm ci`")
    _assets = KatexAssets()
    _site_path = urlsplit(config.site_url or "/").path or "/"
    if not _site_path.endswith("/"):
        _site_path += "/"
    return config


def on_page_content(html_text: str, page: Page, **_: object) -> str:
    assert _assets is not None
    where = page.file.src_uri
    slots: list[str] = []
    text, _ = _render_html(html_text, where, slots)
    in_content = len(slots)
    _render_toc(list(page.toc), where, slots)
    # Preload what the first screen shows: its formulas, and the TOC's (beside it on desktop).
    first = first_screen_slots(text) + list(range(in_content, len(slots)))
    _page_fonts[where] = _assets.fonts_for("".join(slots[n] for n in first)) if slots else []
    _page_slots[where] = slots
    return text


def on_post_page(output: str, page: Page, **_: object) -> str:
    """Inline KaTeX's CSS and preload the first screen's fonts, inside the content container.

    Material's instant navigation swaps the content container (and re-runs its scripts) but
    keeps the old <head>, so per-page assets go in the container, not in <head>. Font URLs are
    absolute paths under site_url, so they resolve the same after an instant navigation.
    """
    assert _assets is not None
    slots = _page_slots.pop(page.file.src_uri, [])
    output = SLOT_RE.sub(lambda m: slots[int(m.group(2))], output)
    fonts = _page_fonts.get(page.file.src_uri)
    if not fonts:
        return output
    base = posixpath.join(_site_path, FONT_DIR)
    links = "".join(
        f'<link rel="preload" href="{base}/{name}" as="font" type="font/woff2" crossorigin>'
        for name in fonts
    )
    style = "<style>" + _assets.css.replace("__FONT_BASE__", base) + "</style>"
    marker = '<article class="md-content__inner md-typeset">'
    if marker not in output:
        raise PluginError(f"{page.file.src_uri}: cannot find the content container to add KaTeX")
    return output.replace(marker, marker + links + style, 1)


def on_post_build(config: MkDocsConfig) -> None:
    target = Path(config.site_dir) / FONT_DIR
    target.mkdir(parents=True, exist_ok=True)
    for font in (KATEX_DIST / "fonts").glob("*.woff2"):
        shutil.copy2(font, target / font.name)
    _renderer.close()


def on_build_error(error: Exception) -> None:
    _renderer.close()


def on_shutdown() -> None:
    _renderer.close()

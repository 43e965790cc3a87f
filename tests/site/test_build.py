"""The real site builds with --strict, with zero warnings, and has what a reader needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import locked_build
from tests.docs_fences import DOCS, collected_python_fences, count_python_fences

pytestmark = [pytest.mark.build]


def test_build_is_strict_and_clean(built_site: Path) -> None:
    assert (built_site / "index.html").is_file()
    assert (built_site / "404.html").is_file()
    assert (built_site / "search" / "search_index.json").is_file()


def test_no_raw_tex_left_and_no_katex_errors(built_site: Path) -> None:
    pages = list(built_site.rglob("*.html"))
    assert len(pages) > 3
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "katex-error" not in html, page
        body = re.sub(r"<(script|style|code|pre)\b.*?</\1>", "", html, flags=re.DOTALL)
        body = re.sub(
            r'<annotation encoding="application/x-tex">.*?</annotation>', "", body, flags=re.DOTALL
        )
        for raw in ("\\(", "\\[", "$$"):
            assert raw not in body, f"raw TeX {raw!r} left in {page}"
        # $...$ in headings and in the table of contents (notebook pages take their TOC titles
        # from the raw notebook Markdown, which writes math between single dollars)
        for title in re.findall(r'<span class="md-ellipsis">(.*?)</span>', body, flags=re.DOTALL):
            assert not re.search(r"\$[^$\s][^$]*\$", title), f"raw $ math in the TOC of {page}"


def test_no_math_javascript_and_no_foreign_urls(built_site: Path) -> None:
    for page in built_site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "katex.min.js" not in html and "mathjax" not in html.lower(), page
        # What a browser loads by itself: src= attributes and <link href=> (links are fine).
        loads = re.findall(r'\bsrc="(https?://[^"]+)"', html)
        loads += re.findall(r'<link\b[^>]*\bhref="(https?://[^"]+)"', html)
        for url in loads:
            assert url.startswith("http://127.0.0.1"), f"{page} loads {url}"
        assert not re.search(r"@import\s+url\(https?:", html), page


def test_katex_fonts_are_self_hosted(built_site: Path) -> None:
    fonts = list((built_site / "assets" / "katex" / "fonts").glob("*.woff2"))
    assert len(fonts) == 20
    page = (built_site / "rl" / "kl" / "index.html").read_text(encoding="utf-8")
    preloads = re.findall(r'rel="preload" href="([^"]+\.woff2)"', page)
    assert any("KaTeX_Main-Regular" in p for p in preloads)
    for href in preloads:
        assert (built_site / href.split("/assets/", 1)[1].join(["assets/", ""])).is_file()


def test_lazy_code_blocks_feature_is_on_and_honoured_by_the_bundle(built_site: Path) -> None:
    """`content.lazy` (mkdocs.yml) is read by the pinned Material bundle, not documented.

    Material mounts a code block (copy button, overflow check) only once it nears the viewport
    when the flag is set; that took the PPO page's Lighthouse score from 83 to the high 90s. If
    an upgrade drops the flag, this fails instead of the pages silently getting slow again.
    """
    page = (built_site / "rl" / "ppo" / "index.html").read_text(encoding="utf-8")
    assert '"content.lazy"' in page  # the features list Material embeds in each page
    bundle = next((built_site / "assets" / "javascripts").glob("bundle.*.min.js"))
    # The minified feature check, e.g. `V("content.lazy")`: a call taking the flag's name.
    assert re.search(r'\w\("content\.lazy"\)', bundle.read_text(encoding="utf-8"))


def test_mermaid_is_served_locally_and_only_where_needed(built_site: Path) -> None:
    mermaid = built_site / "assets" / "javascripts" / "mermaid"
    assert (mermaid / "mermaid.esm.min.mjs").is_file()
    chunks = list((mermaid / "chunks" / "mermaid.esm.min").glob("*.mjs"))
    assert len(chunks) > 50 and not list(mermaid.rglob("*.map"))  # chunks, no source maps
    for page in built_site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        has_diagram = 'class="mermaid-diagram"' in html
        assert ("mermaid.esm.min.mjs" in html) == has_diagram, page


def test_tables_are_wrapped_and_styled_at_build_time(built_site: Path) -> None:
    """hooks/tables.py: wrapper and class in the HTML, the table CSS inlined where needed."""
    html = (built_site / "rl" / "notation" / "index.html").read_text(encoding="utf-8")
    tables = html.count("<table")
    assert tables >= 5
    wrapped = '<div class="md-typeset__scrollwrap"><div class="md-typeset__table"><table class="data-table">'
    assert html.count(wrapped) == tables
    head = html.split("</head>", 1)[0]
    assert head.count('<style id="data-table-css">.md-typeset table.data-table{') == 1
    for page in built_site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert ('<table class="data-table"' in text) == ('id="data-table-css"' in text), page
        assert "<table>" not in text, page  # no table left for Material's script to move


def test_every_python_fence_is_collected() -> None:
    """Guard: no python fence of docs/ escapes the collector (tilde fences, odd info strings)."""
    total = 0
    for page in sorted(DOCS.rglob("*.md")):
        if "includes" in page.parts:
            continue
        raw = count_python_fences(page.read_text(encoding="utf-8"))
        assert collected_python_fences(page) == raw, f"{page}: fences not all collected"
        total += raw
    assert total > 0


def test_rebuild_reuses_executed_notebooks(built_site: Path, tmp_path: Path) -> None:
    """An unchanged tree re-uses every executed notebook (what keeps `mkdocs serve` fast)."""
    notebooks = sorted((DOCS / "notebooks").glob("*.py"))
    assert notebooks
    result = locked_build(tmp_path / "site")
    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    assert "Converting notebook" not in log, log
    for nb in notebooks:
        assert f"Cache hit: {nb}" in log, log


def test_equation_index_lists_every_named_equation(built_site: Path) -> None:
    """Every anchored equation of every page is linked, rendered, from the equation index."""
    index = (built_site / "study" / "equations" / "index.html").read_text(encoding="utf-8")
    anchored: dict[str, str] = {}
    for page in built_site.rglob("index.html"):
        if page.parent.name == "equations":
            continue
        for eq_id in re.findall(r'<div class="eq" id="(eq-[a-z0-9-]+)"', page.read_text("utf-8")):
            assert eq_id not in anchored, f"#{eq_id} on {page} and {anchored[eq_id]}"
            anchored[eq_id] = str(page)
    assert len(anchored) > 50
    missing = [eq_id for eq_id in anchored if f'#{eq_id}"' not in index]
    assert not missing, f"not in the equation index: {missing}"
    assert index.count('class="katex-display"') >= len(anchored)


def test_notebook_figures_are_sized_files_not_inline_data(built_site: Path) -> None:
    page = built_site / "notebooks" / "lab_curves" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert 'src="data:image/png' not in html  # (the notebook CSS has tiny data: icons)
    images = re.findall(r"<img[^>]*>", html)
    assert len(images) >= 5
    for img in images:
        src = re.search(r'src="(figure-[0-9a-f]{12}\.png)"', img)
        assert src and (page.parent / src.group(1)).is_file(), img[:120]
        assert re.search(r'width="\d+" height="\d+"', img), img[:120]


HEADING_RE = re.compile(r"^(##|###) \S", re.MULTILINE)
FENCE_BLOCK_RE = re.compile(r"^(`{3,}|~{3,}).*?^\1", re.MULTILINE | re.DOTALL)


def test_every_heading_of_every_page_reaches_the_built_page(built_site: Path) -> None:
    """Guard against a page cut short without a warning: a stray ``<t`` in a raw-HTML block
    once swallowed everything after it (sft-vs-rl). Each level-2/3 heading of the Markdown
    source must come out as an <h2>/<h3> of the built page."""
    checked = 0
    for source in sorted(DOCS.rglob("*.md")):
        rel = source.relative_to(DOCS)
        if "includes" in rel.parts:
            continue
        text = FENCE_BLOCK_RE.sub("", source.read_text(encoding="utf-8"))
        expected = len(HEADING_RE.findall(text))
        folder = rel.with_suffix("") if rel.stem != "index" else rel.parent
        html = (built_site / folder / "index.html").read_text(encoding="utf-8")
        article = html.split('<article class="md-content__inner', 1)[1].split("</article>", 1)[0]
        built = len(re.findall(r"<h[23][\s>]", article))
        if rel.as_posix() == "study/equations.md":
            assert built >= expected, rel  # the generated index adds one heading per page
        else:
            assert built == expected, f"{rel}: {expected} headings in the source, {built} built"
        checked += 1
    assert checked > 40

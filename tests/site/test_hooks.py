"""Unit tests of the MkDocs hooks: each rule they enforce, and each error they raise."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from mkdocs.exceptions import PluginError

from tests.conftest import ROOT


def load_hook(name: str):  # type: ignore[no-untyped-def]
    """Import hooks/<name>.py as MkDocs does (a file, not a package)."""
    spec = importlib.util.spec_from_file_location(f"hook_{name}", ROOT / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


equations = load_hook("equations")
katex = load_hook("katex")
notebooks = load_hook("notebooks")
tables = load_hook("tables")


# ---- equations ------------------------------------------------------------------------------

GOOD = """# Page

$$
a = b
$$
{: #eq-a name="the a equation" aliases="first; alpha" }

!!! note
    $$
    c = d
    $$
    {: #eq-c name="c" }
"""


def test_named_equations_are_parsed_with_indentation() -> None:
    found = [eq for _, eq in equations._parse(GOOD, "p.md")]
    assert [(e.id, e.name, e.aliases, e.tex, e.line) for e in found] == [
        ("eq-a", "the a equation", ("first", "alpha"), "a = b", 3),
        ("eq-c", "c", (), "c = d", 9),
    ]


def test_named_equation_block_keeps_indentation_and_anchor() -> None:
    _, eq = equations._parse(GOOD, "p.md")[1]
    block = equations._render_block(eq, "    ")
    assert block.startswith('    <div class="eq" id="eq-c" markdown="block">')
    assert "\n    $$\n    c = d\n    $$\n" in block


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$$\nx\n$$\n{: #eq-x }\n", 'needs name="..."'),
        ('$$\nx\n$$\n{: #eq-x name="x" colour="red" }\n', "unknown equation attribute"),
        ('$$\nx\n$$\n{: #eq-x #eq-y name="x" }\n', "exactly one"),
        ('Some text\n{: #eq-x name="x" }\n', "must follow a $$ ... $$ block"),
    ],
)
def test_malformed_equations_fail_with_page_and_line(text: str, message: str) -> None:
    with pytest.raises(PluginError, match=r"p\.md:") as err:
        equations._parse(text, "p.md")
    assert message in str(err.value)


def test_duplicate_equation_ids_fail(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text('$$\nx\n$$\n{: #eq-x name="x" }\n', encoding="utf-8")
    (tmp_path / "b.md").write_text('$$\ny\n$$\n{: #eq-x name="y" }\n', encoding="utf-8")
    with pytest.raises(PluginError, match=r"b.md:1: duplicate equation id #eq-x \(first at a.md"):
        equations.collect(tmp_path)


def test_equation_index_links_every_equation() -> None:
    eqs = [eq for _, eq in equations._parse(GOOD, "rl/p.md")]
    index = equations._index_markdown(eqs, "study/equations.md", {"rl/p.md": "Page"})
    assert "## [Page](../rl/p.md)" in index
    assert "**[the a equation](../rl/p.md#eq-a)** — also: first, alpha" in index
    assert "**[c](../rl/p.md#eq-c)**" in index


# ---- katex ----------------------------------------------------------------------------------


def test_font_map_covers_the_classes_katex_uses() -> None:
    assets = katex.KatexAssets()
    assert len(assets.font_files) == 20
    assert assets.fonts_for('<span class="mord mathnormal">x</span>') == [
        "KaTeX_Main-Regular.woff2",
        "KaTeX_Math-Italic.woff2",
    ]
    big = assets.fonts_for('<span class="delimsizing size2">(</span><span class="mathbb">R</span>')
    assert "KaTeX_Size2-Regular.woff2" in big and "KaTeX_AMS-Regular.woff2" in big
    assert "src:url(fonts/" not in assets.css and ".woff)" not in assets.css


def test_first_screen_is_the_formulas_within_the_first_characters() -> None:
    def slot(n: int, tex: str, tag: str = "span") -> str:
        return f'<{tag} class="arithmatex" data-katex-slot="{n}">{tex}</{tag}>'

    words = " ".join(["word"] * 100)  # 499 characters of text
    big = slot(2, r"\big(", "div")
    text = (
        f"<h1>T</h1><p>{slot(0, 'x')} {words}</p>\n\n<p>{words} {slot(1, 'y')}</p>"
        f"<p>{words}</p><div>{big}</div>"
    )
    assert katex.first_screen_slots(text) == [0, 1]  # slot 2 starts after ~1500 characters
    assert katex.first_screen_slots(text, limit=5000) == [0, 1, 2]
    assert katex.first_screen_slots(text, limit=0) == []  # "T" comes first
    assert katex.first_screen_slots("<p>no math</p>") == []
    # a notebook page starts with pages of CSS: none of it is on screen
    styled = f"<style>{'.a{color:red} ' * 500}</style><script>{'x();' * 500}</script>{text}"
    assert katex.first_screen_slots(styled) == [0, 1]


def test_toc_math_in_both_notations_and_nothing_else() -> None:
    found = lambda t: [m.group(1) or m.group(2) for m in katex.TOC_MATH_RE.finditer(t)]  # noqa: E731
    assert found("Bias: $k_2$ drifts, $k_1$ do not") == ["k_2", "k_1"]  # notebook titles
    assert found("The \\(k_3\\) estimator") == ["k_3"]  # Markdown titles (arithmatex text)
    assert found("display $$x$$ and a price \\$5") == []


def test_renderer_renders_and_reports_bad_tex() -> None:
    renderer = katex.KatexRenderer()
    try:
        good, bad = renderer.render([("x^2", False), ("\\frac{1}{", True)])
    finally:
        renderer.close()
    assert 'class="katex"' in good["html"] and "<math" in good["html"]
    assert "error" in bad


def test_math_becomes_slots_for_search_then_rendered_html() -> None:
    slots: list[str] = []
    html = '<p>see <span class="arithmatex">\\(a &lt; b\\)</span></p>'
    text, rendered = katex._render_html(html, "p.md", slots)
    assert text == '<p>see <span class="arithmatex" data-katex-slot="0">a &lt; b</span></p>'
    assert len(slots) == 1 and "katex" in slots[0] and rendered
    with pytest.raises(PluginError, match=r"p\.md"):
        katex._render_html('<div class="arithmatex">\\[\\frac{\\]</div>', "p.md", [])
    katex._renderer.close()


# ---- notebooks ------------------------------------------------------------------------------


def test_notebook_html_loses_mathjax_and_cdn_and_gains_arithmatex() -> None:
    html = (
        '<!-- Load mathjax --><script src=""></script><!-- End of mathjax configuration -->'
        '<script type="module">import("https://cdnjs.example/mermaid.mjs")</script>'
        '<div class="jp-RenderedMarkdown jp-MarkdownOutput" data-mime-type="text/markdown">'
        "<p>cost $5 and $x^2$ and <code>$keep$</code></p><p>$$\ny\n$$</p></div>"
    )
    out = notebooks.prepare_notebook_html(html)
    assert "mathjax" not in out.lower() and "https://" not in out
    assert '<span class="arithmatex">\\(x^2\\)</span>' in out
    assert '<div class="arithmatex">\\[\ny\n\\]</div>' in out
    assert "<code>$keep$</code>" in out


def test_notebook_cache_key_follows_the_code_it_imports(tmp_path: Path) -> None:
    (tmp_path / "snippets").mkdir()
    module = tmp_path / "snippets" / "m.py"
    module.write_text("x = 1\n", encoding="utf-8")
    before = notebooks.dependency_digest(tmp_path)
    assert notebooks.dependency_digest(tmp_path) == before
    module.write_text("x = 2\n", encoding="utf-8")
    assert notebooks.dependency_digest(tmp_path) != before


def test_equation_syntax_inside_code_fences_is_left_alone() -> None:
    text = '````markdown\n$$\nx\n$$\n{: #eq-x name="x" }\n````\n\n$$\ny\n$$\n{: #eq-y name="y" }\n'
    assert [eq.id for _, eq in equations._parse(text, "p.md")] == ["eq-y"]


def test_a_named_equation_never_swallows_an_unnamed_block_before_it() -> None:
    text = '$$\na\n$$\n\nText with [a link](x.md).\n\n$$\nb\n$$\n{: #eq-b name="b" }\n'
    ((m, eq),) = equations._parse(text, "p.md")
    assert eq.tex == "b" and eq.line == 7 and "link" not in m.group(0)


def test_a_less_than_before_a_letter_cannot_open_a_tag_in_a_named_equation() -> None:
    """``y_{<t}`` inside the equation's raw-HTML div was read as an opening tag: the page's
    structure broke after it (in the real build, the rest of the page vanished)."""
    import markdown

    text = "$$\nP(y_t \\mid y_{<t})\n$$\n{: #eq-x name=\"x\" }\n\nAfter.\n\n## Next\n"
    ((m, eq),) = equations._parse(text, "p.md")
    rendered = text[: m.start()] + equations._render_block(eq, "") + text[m.end() :]
    assert "y_{< t}" in rendered and "y_{<t}" not in rendered

    def convert(source: str) -> str:
        md = markdown.Markdown(
            extensions=["md_in_html", "pymdownx.arithmatex"],
            extension_configs={"pymdownx.arithmatex": {"generic": True}},
        )
        return md.convert(source)

    fixed = convert(rendered)
    assert fixed.count("<div") == fixed.count("</div>") and fixed.endswith("<h2>Next</h2>")
    broken = convert(rendered.replace("y_{< t}", "y_{<t}"))  # the block before the fix
    assert broken.count("</div>") > broken.count("<div")


# ---- tables ---------------------------------------------------------------------------------


def test_tables_without_a_class_get_our_class_and_materials_wrapper() -> None:
    html = (
        "<p>a</p><table>\n<tr><td>1</td></tr></table>"
        '<table class="highlighttable"><tr><td>code</td></tr></table>'
        '<table style="x"><tr><td>2</td></tr></table><tablet>not a table</tablet>'
    )
    out = tables.wrap_tables(html)
    assert out.count(tables.OPEN) == 2 and out.count(tables.CLOSE) == 2
    assert tables.OPEN + '<table class="data-table">\n<tr><td>1</td></tr></table>' + tables.CLOSE in out
    assert tables.OPEN + '<table class="data-table" style="x">' in out
    assert '</div></div><table class="highlighttable">' in out  # classed tables: left alone
    assert "<tablet>not a table</tablet>" in out
    assert tables.wrap_tables(out) == out  # a second pass changes nothing


MATERIAL_LIKE_CSS = """
.md-typeset table:not([class]){display:inline-block;font-size:.64rem}
.md-typeset code,.md-typeset table:not([class]) th,.md-typeset kbd{min-width:5rem}
@media print{.md-typeset table:not([class]){display:table}.md-typeset h1{color:red}}
@media screen{.md-typeset h2{color:blue}}
.md-typeset :is(table:not([class]),div) td{padding:0}
[data-x="a,table:not([class])"] p{margin:0}
"""


def test_material_table_rules_are_rewritten_for_our_class_and_nothing_else() -> None:
    css = tables.table_css(MATERIAL_LIKE_CSS)
    assert css == (
        ".md-typeset table.data-table{display:inline-block;font-size:.64rem}"
        ".md-typeset table.data-table th{min-width:5rem}"  # only the matching selector of a list
        "@media print{.md-typeset table.data-table{display:table}}"  # media kept, others dropped
        ".md-typeset :is(table.data-table,div) td{padding:0}"  # commas inside :is() kept
        '[data-x="a,table.data-table"] p{margin:0}'
    )


def test_selector_lists_split_on_top_level_commas_only() -> None:
    assert tables._split_selectors('a, b:is(c, d) , [x=","] e,') == ["a", "b:is(c, d)", '[x=","] e']


def test_every_material_table_rule_has_a_copy_for_our_class() -> None:
    from mkdocs.config import load_config

    config = load_config(str(ROOT / "mkdocs.yml"))
    material = tables.material_css_file(config.theme.dirs).read_text(encoding="utf-8")
    ours = tables.table_css(material)
    assert material.count("table:not([class])") == ours.count("table.data-table") >= 10
    assert "table:not([class])" not in ours


def test_a_theme_without_materials_stylesheet_fails_the_build(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"no assets/stylesheets/main\.\*\.min\.css"):
        tables.material_css_file([str(tmp_path)])


def test_inline_png_outputs_get_their_pixel_size() -> None:
    import base64
    import struct
    import zlib

    def png(width: int, height: int) -> str:
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()

    html = (
        f'<img alt="a" class="" src="data:image/png;base64,{png(640, 480)}"/>'
        f'<img width="10" src="data:image/png;base64,{png(5, 5)}"/>'
        '<img src="data:image/png;base64,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"/>'
    )
    out = notebooks.prepare_notebook_html(html)
    assert '<img alt="a" class="" width="640" height="480" src="data:image/png' in out
    assert out.count('width="') == 2  # an image that has a width, or is no PNG, is left alone


def test_inline_pngs_become_files_that_load_lazily() -> None:
    import base64

    a, b = b"\x89PNG first", b"\x89PNG second"
    html = "".join(
        f'<img alt="" width="9" height="9" src="data:image/png;base64,{base64.b64encode(d).decode()}"/>'
        for d in (a, b)
    )
    out, files = notebooks.extract_inline_pngs(html)
    assert sorted(files.values()) == sorted([a, b]) and "base64" not in out
    assert out.count('loading="lazy"') == 2
    for name in files:
        assert name.startswith("figure-") and f'src="{name}"' in out


def test_selector_lists_split_at_top_level_commas_only() -> None:
    assert notebooks._split_selectors(".a, .b:is(.c, .d) > e,f") == [".a", ".b:is(.c, .d) > e", "f"]


def test_a_selector_is_dropped_only_when_it_needs_a_missing_class() -> None:
    used = {"jupyter-wrapper", "jp-Cell"}
    assert notebooks._selector_can_match(".jupyter-wrapper .jp-Cell", used)
    assert not notebooks._selector_can_match(".jupyter-wrapper .jp-Toolbar", used)
    assert notebooks._selector_can_match(".jp-Cell:not(.jp-mod-active)", used)  # absent: matches
    assert notebooks._selector_can_match("pre code", used)  # no class needed
    assert notebooks._selector_can_match(".jp-Cell:not(:is(.x, .y))", used)  # nested :not
    assert notebooks._selector_can_match(":is(.jp-Cell, .jp-Toolbar) p", used)  # one may match
    assert not notebooks._selector_can_match(".jp-Toolbar:not(.jp-Cell)", used)


def test_purge_keeps_what_the_page_can_use_and_only_touches_jupyter_css() -> None:
    css = (
        ".jupyter-wrapper .jp-Cell{color:red}.jupyter-wrapper .jp-Toolbar{color:blue}"
        "@media (max-width:760px){.jp-Toolbar{margin:0}.jp-Cell{margin:1px}}"
        "@keyframes spin{to{transform:rotate(1turn)}}"
    )
    html = (
        f'<style>{css}</style><style>.jp-Toolbar{{x:y}}</style>'
        '<div class="jupyter-wrapper"><div class="jp-Cell">x</div></div>'
    )
    out = notebooks.purge_jupyter_css(html)
    assert ".jupyter-wrapper .jp-Cell{color:red}" in out
    assert "@media (max-width:760px){.jp-Cell{margin:1px}}" in out
    assert "@keyframes spin" in out
    assert out.count("jp-Toolbar") == 1  # only the other stylesheet's rule is left

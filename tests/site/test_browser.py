"""The built site in a real browser: Playwright driving Debian's chromium on loopback.

No browser is ever downloaded. Without /usr/bin/chromium these tests skip with one line of
reason, except under CI (``CI`` set), where they must run. Screenshots land in
``test-output/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.chromium import CHROMIUM, FLAGS, require_chromium
from tests.conftest import ROOT
from tests.site.test_hooks import katex

pytestmark = [pytest.mark.browser]

SHOTS = ROOT / "test-output" / "screenshots"

require_chromium()
sync_api = pytest.importorskip("playwright.sync_api")


class Recorder:
    """Every request the browser makes and every console error it reports."""

    def __init__(self) -> None:
        self.hosts: set[str] = set()
        self.foreign: list[str] = []
        self.errors: list[str] = []

    def attach(self, page) -> None:  # type: ignore[no-untyped-def]
        page.on("request", self._request)
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request(self, request) -> None:  # type: ignore[no-untyped-def]
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        self.hosts.add(parts.hostname or "")
        if parts.hostname not in ("127.0.0.1", "localhost"):
            self.foreign.append(request.url)


@pytest.fixture(scope="module")
def browser(built_site: Path) -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def page(browser, recorder: Recorder, site_server: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=site_server, viewport={"width": 1280, "height": 900})
    # Generous timeouts: on a loaded 2-core CI machine a cold page can take seconds.
    context.set_default_timeout(60_000)
    pg = context.new_page()
    recorder.attach(pg)
    yield pg
    context.close()


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_math_is_rendered(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("rl/kl/")
    assert page.locator(".md-content .katex").count() > 5
    assert page.locator(".katex-error").count() == 0
    text = page.locator("article").inner_text()
    for raw in ("\\(", "\\[", "$$"):
        assert raw not in text
    # The inlined KaTeX stylesheet applies (fonts from this site, not a fallback).
    family = page.locator(".md-content .katex").first.evaluate(
        "el => getComputedStyle(el).fontFamily"
    )
    assert "KaTeX_Main" in family
    page.wait_for_function("document.fonts.status === 'loaded'")
    shot(page, "kl")


def test_tab_switch_shows_its_content(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("rl/kl/")
    tabs = page.locator(".tabbed-set").first
    labels = tabs.locator(".tabbed-labels > label")
    labels.first.wait_for()
    assert labels.count() >= 2
    second = labels.nth(1)
    second.click()
    blocks = tabs.locator(".tabbed-content > .tabbed-block")
    assert blocks.nth(1).is_visible()
    assert not blocks.nth(0).is_visible()
    assert blocks.nth(1).locator(".katex").count() > 0  # math inside tabs is rendered too


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("k3 estimator", "rl/kl/"),
        ("clipped surrogate", "rl/ppo/"),
        ("Bradley-Terry", "rl/bradley-terry/"),
        ("GAE recursion", "rl/gae/"),
    ],
)
def test_search_finds_an_equation_by_name(page, query: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("")
    box = page.locator("input[data-md-component='search-query']")
    box.click()
    page.wait_for_timeout(500)  # the search worker loads its index first
    box.press_sequentially(query, delay=30)
    results = page.locator(".md-search-result__item a")
    results.first.wait_for(timeout=15000)
    hrefs = [results.nth(i).get_attribute("href") or "" for i in range(results.count())]
    assert any(expected in h or "study/equations/" in h for h in hrefs[:5]), hrefs
    assert any(expected in h for h in hrefs), hrefs
    shot(page, "search-" + query.split()[0].lower())


def test_search_index_waits_for_an_intent_to_search(page) -> None:  # type: ignore[no-untyped-def]
    """overrides/partials/lazy-search-index.html: no 1 MB index download while a page loads."""
    requested: list[str] = []
    page.on("request", lambda r: "search_index.json" in r.url and requested.append(r.url))
    page.goto("rl/kl/", wait_until="load")
    page.wait_for_timeout(1000)  # well inside the idle delay (4 s after load)
    assert requested == [], "the search index was fetched before anyone searched"
    box = page.locator("input[data-md-component='search-query']")
    box.hover()  # pointing at the search box is intent enough
    page.wait_for_timeout(1000)
    assert len(requested) == 1, requested
    box.click()
    box.press_sequentially("k3 estimator", delay=30)
    page.locator(".md-search-result__item a").first.wait_for(timeout=15000)


def test_search_index_is_fetched_when_idle_or_highlighting(page) -> None:  # type: ignore[no-untyped-def]
    requested: list[str] = []
    page.on("request", lambda r: "search_index.json" in r.url and requested.append(r.url))
    page.goto("rl/kl/?h=estimator", wait_until="load")  # search.highlight needs the index
    page.locator("mark[data-md-highlight]").first.wait_for(state="attached", timeout=15000)
    assert len(requested) == 1
    requested.clear()
    page.goto("rl/dpo/", wait_until="load")  # a full load, without any search intent
    page.wait_for_timeout(6000)  # the idle prefetch starts about 4 s after load
    assert len(requested) == 1, "the search index was never prefetched"


def test_instant_navigation_keeps_math_rendered(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("about/")
    page.evaluate("window.__noReload = 1")
    page.locator("article a[href$='rl/kl/']").first.click()
    page.wait_for_url("**/rl/kl/")
    page.locator(".md-content .katex").first.wait_for()
    assert page.evaluate("window.__noReload") == 1, "the click reloaded the page"
    family = page.locator(".md-content .katex").first.evaluate(
        "el => getComputedStyle(el).fontFamily"
    )
    assert "KaTeX_Main" in family
    assert page.locator(".katex-error").count() == 0


def test_mermaid_diagram_renders_from_this_site(page, built_site: Path) -> None:  # type: ignore[no-untyped-def]
    with_diagram = sorted(
        p
        for p in built_site.rglob("index.html")
        if 'class="mermaid-diagram"' in p.read_text(encoding="utf-8")
    )
    assert with_diagram, "no page of the site has a mermaid diagram"
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(with_diagram[0].parent.relative_to(built_site).as_posix() + "/")
    first = page.locator(".mermaid-diagram").first
    box = first.bounding_box()
    if box is not None and box["y"] > 900 + 600 + 100:  # far below the fold: not fetched yet
        page.wait_for_timeout(500)
        assert not any("/mermaid/" in u for u in requested), "mermaid loaded eagerly"
    first.scroll_into_view_if_needed()
    page.locator(".mermaid-diagram svg").first.wait_for(timeout=20000)
    fetched = [u for u in requested if "/assets/javascripts/mermaid/" in u]
    assert fetched, "the diagram was not drawn by the site's own mermaid"
    # The ES-module build fetches only the chunks a flowchart needs, not all ~100 of them.
    chunks = list((built_site / "assets" / "javascripts" / "mermaid").rglob("*.mjs"))
    assert len(fetched) < len(chunks) / 2, (len(fetched), len(chunks))


def test_code_blocks_get_copy_buttons_as_they_near_the_viewport(page) -> None:  # type: ignore[no-untyped-def]
    """content.lazy: Material mounts a code block (copy button) only when it becomes visible."""
    page.goto("rl/ppo/")
    # Top-level code blocks only: one in a closed <details> or a hidden tab is never "seen".
    blocks = page.locator("article > div.highlight pre")
    page.wait_for_function("document.querySelectorAll('article > div.highlight pre').length > 2")
    last = blocks.last
    copy = "button.md-code__button[data-md-type='copy']"
    page.wait_for_timeout(300)
    assert last.locator(copy).count() == 0, "the last code block was mounted before it was seen"
    last.scroll_into_view_if_needed()
    last.locator(copy).wait_for(state="attached", timeout=10000)
    target = last.locator(copy).get_attribute("data-clipboard-target") or ""
    assert target.endswith(" > code") and page.locator(target).count() == 1


def test_fonts_below_the_first_screen_load_when_reached(page, built_site: Path) -> None:  # type: ignore[no-untyped-def]
    """Only the first screen's KaTeX fonts are preloaded; the rest arrive as the reader scrolls."""
    html = (built_site / "rl" / "ppo" / "index.html").read_text(encoding="utf-8")
    used = set(katex.KatexAssets().fonts_for(html))  # every font the page's math needs
    fonts: set[str] = set()
    page.on("request", lambda r: r.url.endswith(".woff2") and fonts.add(r.url.rsplit("/", 1)[1]))
    page.set_viewport_size({"width": 412, "height": 823})  # Lighthouse's mobile screen
    page.goto("rl/ppo/")
    page.wait_for_function("document.fonts.status === 'loaded'")
    page.wait_for_timeout(300)
    preloaded = {
        href.rsplit("/", 1)[1]
        for href in page.eval_on_selector_all(
            "link[rel=preload][as=font]", "els => els.map(e => e.href)"
        )
    }
    assert "KaTeX_Main-Regular.woff2" in preloaded and preloaded < used, (preloaded, used)
    # The browser lays out a margin beyond the screen too, so it may fetch a few more itself.
    at_load = set(fonts)
    assert preloaded <= at_load < used, "every font was fetched at load"
    height = page.evaluate("document.body.scrollHeight")
    for _ in range(0, height, 400):
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(20)
    page.wait_for_function("document.fonts.status === 'loaded'")
    # Fonts used only in closed <details> or hidden tabs are never needed; everything else is.
    missing = used - fonts
    hidden = page.locator(
        "article details:not([open]) .katex, article .tabbed-block:not(:first-child) .katex"
    ).count()
    assert fonts <= used
    assert not missing or hidden > 0, missing
    assert len(fonts) > len(at_load), "scrolling fetched no further font"


TABLE_PAGES = ["rl/process-vs-outcome/", "study/papers/", "rl/dpo-family/", "rl/a2c/"]
# The box of each top-level block of the content that starts on the first screen: what a
# layout shift would move. (Blocks further down are content-visibility placeholders until
# seen, so their heights depend on timing, not on Material's script.)
BLOCKS_JS = """() => [...document.querySelectorAll('.md-content__inner > *')]
  .map(el => { const r = el.getBoundingClientRect();
               return [el.tagName, Math.round(r.top), Math.round(r.height)]; })
  .filter(([, top]) => top < innerHeight)"""


@pytest.mark.parametrize("width", [412, 1280])
def test_material_script_moves_no_block_of_a_page(browser, site_server: str, width: int) -> None:  # type: ignore[no-untyped-def]
    """hooks/tables.py: the page lays out the same before and after Material's script."""
    for path in TABLE_PAGES:
        boxes = []
        for javascript in (False, True):
            context = browser.new_context(
                base_url=site_server,
                viewport={"width": width, "height": 900},
                java_script_enabled=javascript,
            )
            pg = context.new_page()
            pg.goto(path, wait_until="load")
            pg.wait_for_timeout(300)
            pg.evaluate("document.fonts.ready")
            boxes.append(pg.evaluate(BLOCKS_JS))
            context.close()
        assert boxes[0] == boxes[1], path


# Computed values that are layout results (offsets and sizes), not styles: they can differ
# between two reads while content-visibility blocks below are laid out, whatever the rules.
LAYOUT_PROPERTIES = (
    "^(top|right|bottom|left|inset-.*|width|height|inline-size|block-size|"
    "perspective-origin|transform-origin)$"
)
TABLE_STYLES_JS = f"""() => {{ const layout = new RegExp('{LAYOUT_PROPERTIES}');
  return [...document.querySelectorAll('.md-typeset__scrollwrap, .md-typeset__scrollwrap *')]
  .map(el => {{ const cs = getComputedStyle(el); const out = [];
               for (let i = 0; i < cs.length; i++)
                 if (!layout.test(cs[i])) out.push(cs[i] + ':' + cs.getPropertyValue(cs[i]));
               return el.tagName + '|' + out.join(';'); }}); }}"""
MATERIAL_RULES_JS = """() => { document.getElementById('data-table-css').remove();
  for (const t of document.querySelectorAll('table.data-table')) t.removeAttribute('class'); }"""


@pytest.mark.parametrize("width", [412, 1280])
def test_tables_look_as_under_materials_own_rules(browser, site_server: str, width: int) -> None:  # type: ignore[no-untyped-def]
    """hooks/tables.py: Material's script leaves our tables alone, and Material's table rules,
    copied for our class, style every element of a table exactly as the originals would
    (every computed property but the layout results: offsets and sizes)."""
    context = browser.new_context(base_url=site_server, viewport={"width": width, "height": 900})
    for path in ["rl/notation/", "rl/a2c/", "study/papers/"]:
        pg = context.new_page()
        pg.goto(path, wait_until="load")
        pg.wait_for_timeout(200)
        assert pg.evaluate("document.querySelectorAll('table.data-table').length") >= 1, path
        # Not taken out and re-wrapped by Material's script (its wrap would nest inside ours).
        assert (
            pg.evaluate("document.querySelectorAll('.md-typeset__table .md-typeset__table').length")
            == 0
        ), path
        ours = pg.evaluate(TABLE_STYLES_JS)
        pg.evaluate(MATERIAL_RULES_JS)  # back to `table:not([class])` and Material's own rules
        material = pg.evaluate(TABLE_STYLES_JS)
        assert len(ours) == len(material) > 50, path
        diff = [(a, b) for a, b in zip(ours, material, strict=True) if a != b]
        assert not diff, f"{path}: {len(diff)} elements styled differently, first: {diff[0]}"
        pg.close()
    context.close()


def test_pages_do_not_shift_while_loading(browser, site_server: str) -> None:  # type: ignore[no-untyped-def]
    """Tables (hooks/tables.py), a notebook page (one big block) on Lighthouse's phone screen."""
    context = browser.new_context(
        base_url=site_server,
        viewport={"width": 412, "height": 823},
        device_scale_factor=1.75,
        is_mobile=True,
        has_touch=True,
    )
    context.add_init_script(
        """window.__shifts = [];
        new PerformanceObserver(list => { for (const e of list.getEntries())
          if (!e.hadRecentInput) window.__shifts.push(e.value); })
          .observe({type: "layout-shift", buffered: true});"""
    )
    for path in [*TABLE_PAGES, "notebooks/kl_estimators/"]:
        pg = context.new_page()
        pg.goto(path, wait_until="load")
        pg.wait_for_timeout(1500)
        cls = pg.evaluate("window.__shifts.reduce((a, b) => a + b, 0)")
        assert cls < 0.005, f"{path}: layout shift {cls:.4f} while loading"
        if path.startswith("notebooks/"):
            # A notebook is one top-level block: as a content-visibility placeholder it would
            # leave the footer in view, then push it away (a shift Lighthouse measured at 0.14).
            visibility = pg.evaluate(
                "getComputedStyle(document.querySelector('.jupyter-wrapper')).contentVisibility"
            )
            assert visibility == "visible"
        pg.close()
    context.close()


STYLES_JS = """() => [...document.querySelectorAll('.jupyter-wrapper, .jupyter-wrapper *')]
  .map(el => { const cs = getComputedStyle(el); const out = [];
               for (let i = 0; i < cs.length; i++) out.push(cs[i] + ':' + cs.getPropertyValue(cs[i]));
               return el.tagName + '.' + el.className + '|' + out.join(';'); })"""


@pytest.mark.parametrize("width", [412, 1280])
def test_purged_notebook_css_styles_every_element_as_the_full_css(
    browser, site_server: str, built_site: Path, width: int
) -> None:  # type: ignore[no-untyped-def]
    """hooks/notebooks.py drops the Jupyter CSS rules no element of the page can match.

    Put the full stylesheet (as mkdocs-jupyter produced it, from its cache) back in place of
    the purged one: every element's computed style must stay exactly the same.
    """
    cached = [
        json.loads(p.read_text(encoding="utf-8"))["content"]
        for p in (ROOT / ".cache" / "mkdocs-jupyter").glob("*.json")
    ]
    full = next(c for c in cached if 'id="kl-estimators-numerically"' in c)
    full_css = next(
        css
        for css in re.findall(r"<style[^>]*>(.*?)</style>", full, re.DOTALL)
        if ".jupyter-wrapper" in css
    )
    context = browser.new_context(base_url=site_server, viewport={"width": width, "height": 900})
    pg = context.new_page()
    pg.goto("notebooks/kl_estimators/", wait_until="load")
    purged = pg.evaluate(STYLES_JS)
    size = pg.evaluate(
        """(css) => { const el = [...document.querySelectorAll('article style')]
                          .find(s => s.textContent.includes('.jupyter-wrapper'));
                      const before = el.textContent.length; el.textContent = css;
                      return [before, css.length]; }""",
        full_css,
    )
    assert size[0] < size[1] / 2, size  # the purge removed most of the stylesheet
    restored = pg.evaluate(STYLES_JS)
    context.close()
    assert len(purged) == len(restored) > 500
    differing = [a.split("|")[0] for a, b in zip(purged, restored, strict=True) if a != b]
    assert not differing, differing[:5]


def test_dark_mode_toggles(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("rl/kl/")
    before = page.locator("body").get_attribute("data-md-color-scheme")
    page.locator("form[data-md-component='palette'] label:visible").first.click()
    after = page.locator("body").get_attribute("data-md-color-scheme")
    assert {before, after} == {"default", "slate"}
    shot(page, f"kl-{after}")


def test_checklist_ticks_persist_and_reset(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("study/checklist/")
    boxes = page.locator("#interview-checklist input[type=checkbox]")
    assert boxes.count() >= 10
    assert not boxes.nth(0).is_checked() and not boxes.nth(2).is_checked()
    boxes.nth(0).click(force=True)
    boxes.nth(2).click(force=True)
    page.reload()
    boxes = page.locator("#interview-checklist input[type=checkbox]")
    assert boxes.nth(0).is_checked() and boxes.nth(2).is_checked()
    assert not boxes.nth(1).is_checked()
    shot(page, "checklist")
    page.locator("#interview-checklist-reset").click()
    page.reload()
    boxes = page.locator("#interview-checklist input[type=checkbox]")
    assert not any(boxes.nth(i).is_checked() for i in range(boxes.count()))


def test_quick_reference_prints_on_few_pages(page) -> None:  # type: ignore[no-untyped-def]
    """The print stylesheet: no navigation, header or search; equations intact; few pages."""
    page.goto("study/quick-reference/")
    page.emulate_media(media="print")
    for hidden in (".md-header", ".md-sidebar--primary", ".md-footer"):
        assert not page.locator(hidden).first.is_visible(), hidden
    assert page.locator(".md-content .katex").count() > 10
    SHOTS.mkdir(parents=True, exist_ok=True)
    pdf = page.pdf(path=str(SHOTS / "quick-reference.pdf"), format="A4")
    pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
    assert 1 <= pages <= 12, f"the quick reference prints on {pages} pages"


def test_no_request_left_loopback_and_no_console_errors(recorder: Recorder) -> None:
    """Runs last in this module: checks what every test above made the browser do."""
    assert recorder.hosts, "no request was recorded"
    assert recorder.foreign == [], recorder.foreign
    assert recorder.errors == [], recorder.errors

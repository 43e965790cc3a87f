"""The study pages' scripts (docs/javascripts/) in a real browser, on a stand-in page.

The stand-in page has the markup Material gives a task list (disabled checkboxes inside
``label.task-list-control``) and a minimal ``document$`` that, like Material's, calls its
subscribers once per page view. Requests are answered by Playwright's router, so nothing
leaves the machine and the scripts are tested whether or not mkdocs.yml loads them yet.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, FLAGS, require_chromium

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "http://127.0.0.1:8765"

pytestmark = [pytest.mark.browser]

require_chromium()

sync_api = pytest.importorskip("playwright.sync_api")

# A tiny stand-in for Material's document$ observable: subscribe() runs the callback now and
# after every simulated instant navigation (window.__navigate()).
DOCUMENT_SHIM = """
<script>
  window.__subscribers = [];
  window.document$ = { subscribe: function (fn) { window.__subscribers.push(fn); fn(); } };
  window.__navigate = function (html) {
    document.querySelector("article").innerHTML = html;
    window.__subscribers.forEach(function (fn) { fn(); });
  };
</script>
"""

ITEM = (
    '<li class="task-list-item"><label class="task-list-control">'
    '<input type="checkbox" disabled/><span class="task-list-indicator"></span></label> '
    "<strong>{title}</strong>: explained here.</li>"
)
CHECKLIST = (
    '<div id="interview-checklist"><h2>Must know</h2><ul class="task-list">'
    + "".join(ITEM.format(title=t) for t in ["Policy gradient", "PPO clipping", "DPO loss"])
    + "</ul></div>"
)
OTHER_LIST = '<ul class="task-list">' + ITEM.format(title="Elsewhere") + "</ul>"


def page_html(body: str, script: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><style>"
        # Material's custom_checkbox look: the input hidden, a box drawn by the indicator.
        ".task-list-control [type=checkbox]{opacity:0;position:absolute;z-index:-1}"
        ".task-list-indicator{display:inline-block;width:1em;height:1em;border:1px solid}"
        "</style></head><body>"
        f"{DOCUMENT_SHIM}<article class='md-typeset'>{body}</article>"
        f"<script src='/javascripts/{script}'></script></body></html>"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def open_page(browser, pages: dict[str, str]):  # type: ignore[no-untyped-def]
    """A fresh browser context whose origin serves ``pages`` and docs/javascripts/."""
    context = browser.new_context()
    errors: list[str] = []

    def handle(route) -> None:  # type: ignore[no-untyped-def]
        path = route.request.url[len(ORIGIN) :]
        if path.startswith("/javascripts/"):
            js = ROOT / "docs" / path.lstrip("/")
            route.fulfill(body=js.read_text(), content_type="application/javascript")
        elif path in pages:
            route.fulfill(body=pages[path], content_type="text/html")
        else:
            route.abort()

    context.route("**/*", handle)
    page = context.new_page()
    page.set_default_timeout(5000)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


def states(page) -> list[bool]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all(
        "#interview-checklist input[type=checkbox]", "els => els.map(e => e.checked)"
    )


def test_checklist_ticks_persist_and_reset(browser) -> None:  # type: ignore[no-untyped-def]
    html = page_html(CHECKLIST + OTHER_LIST, "checklist.js")
    context, page, errors = open_page(browser, {"/checklist/": html})
    page.goto(f"{ORIGIN}/checklist/")
    # Enabled inside the checklist, untouched outside it.
    assert page.eval_on_selector_all(
        "#interview-checklist input", "els => els.every(e => !e.disabled)"
    )
    assert page.eval_on_selector("article > ul input", "e => e.disabled")
    assert states(page) == [False, False, False]
    # Clicking the visible indicator (the input itself is hidden by Material's CSS) ticks it.
    page.locator("#interview-checklist .task-list-indicator").nth(1).click()
    assert states(page) == [False, True, False]
    assert page.text_content("#interview-checklist-status") == "1 of 3 ticked"
    # A full reload restores the tick from localStorage.
    page.reload()
    assert states(page) == [False, True, False]
    # A simulated instant navigation away and back: restored, and exactly one Reset button.
    page.evaluate("window.__navigate('<p>another page</p>')")
    page.evaluate(f"window.__navigate({CHECKLIST!r})")
    assert states(page) == [False, True, False]
    assert page.locator("#interview-checklist-reset").count() == 1
    # Reset clears the boxes and the storage.
    page.click("#interview-checklist-reset")
    assert states(page) == [False, False, False]
    page.reload()
    assert states(page) == [False, False, False]
    assert errors == []
    context.close()


def test_checklist_survives_corrupt_storage(browser) -> None:  # type: ignore[no-untyped-def]
    html = page_html(CHECKLIST, "checklist.js")
    context, page, errors = open_page(browser, {"/checklist/": html})
    page.goto(f"{ORIGIN}/checklist/")
    page.evaluate("localStorage.setItem('llm-post-training:interview-checklist:v1', '{not json')")
    page.reload()
    assert states(page) == [False, False, False]
    page.locator("#interview-checklist .task-list-indicator").first.click()
    assert states(page) == [True, False, False]
    assert errors == []
    context.close()


QUESTION = '<details class="question"><summary>Q{n}</summary><p>Answer {n}</p></details>'


def test_random_question_button_picks_a_closed_question(browser) -> None:  # type: ignore[no-untyped-def]
    body = '<div id="random-question"></div>' + "".join(QUESTION.format(n=n) for n in range(5))
    context, page, errors = open_page(
        browser, {"/self-test/": page_html(body, "random-question.js")}
    )
    page.goto(f"{ORIGIN}/self-test/")
    button = page.locator("#random-question-button")
    assert button.count() == 1
    page.evaluate("document.querySelectorAll('details.question')[2].open = true")
    picks = []
    for _ in range(12):
        button.click()
        picked = page.eval_on_selector_all(
            "details.question",
            "els => els.map((e, i) => [i, e.open, e.dataset.randomPick === 'true'])",
        )
        assert not any(is_open for _, is_open, _ in picked)  # every answer closed
        chosen = [i for i, _, mark in picked if mark]
        assert len(chosen) == 1
        picks.append(chosen[0])
    assert all(a != b for a, b in itertools.pairwise(picks))  # never twice in a row
    assert len(set(picks)) > 1
    # A simulated instant navigation back to the page keeps exactly one button.
    page.evaluate(f"window.__navigate({body!r})")
    assert page.locator("#random-question-button").count() == 1
    assert errors == []
    context.close()


def test_random_question_does_nothing_without_its_marker(browser) -> None:  # type: ignore[no-untyped-def]
    body = "".join(QUESTION.format(n=n) for n in range(3))
    context, page, errors = open_page(browser, {"/other/": page_html(body, "random-question.js")})
    page.goto(f"{ORIGIN}/other/")
    assert page.locator("#random-question-button").count() == 0
    assert errors == []
    context.close()

"""Mermaid diagrams from the pinned npm package, loaded only by pages that have a diagram.

Material's own integration fetches mermaid from a CDN whenever a page holds a ``.mermaid``
block. Our fences use the class ``mermaid-diagram`` instead (see ``mkdocs.yml``), so Material
ignores them, and this hook adds a tiny loader to those pages only; it fetches mermaid when
the first diagram comes within 600 px of the viewport, so a reader who never scrolls to a
diagram never pays for it. It loads mermaid's ES-module build, which fetches the chunks of the
diagram types a page uses (about 200 KB gzipped for a flowchart) instead of the 1 MB bundle
of every diagram type: a quarter of the JavaScript to parse. The loader sits inside the
content container, so it also runs after Material's instant navigation swaps the page in.
"""

from __future__ import annotations

import posixpath
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
MERMAID_DIST = ROOT / "node_modules" / "mermaid" / "dist"
MERMAID_JS = MERMAID_DIST / "mermaid.esm.min.mjs"
CHUNKS = "chunks/mermaid.esm.min"
TARGET_DIR = "assets/javascripts/mermaid"
TARGET = TARGET_DIR + "/mermaid.esm.min.mjs"
DIAGRAM_CLASS = 'class="mermaid-diagram"'

LOADER = """<script>
(function () {
  // Load mermaid (about 1 MB gzipped) only when a diagram is about to scroll into view.
  var diagrams = document.querySelectorAll(".mermaid-diagram:not([data-processed])");
  if (!diagrams.length) { return; }
  function render() {
    var dark = document.body.getAttribute("data-md-color-scheme") === "slate";
    window.mermaid.initialize({startOnLoad: false, securityLevel: "strict",
                               theme: dark ? "dark" : "default"});
    window.mermaid.run({querySelector: ".mermaid-diagram:not([data-processed])"});
  }
  function load() {
    if (window.mermaid) { render(); return; }
    // The ES-module build: the core, then only the chunks the page's diagram types need.
    import("__SRC__").then(function (module) {
      window.mermaid = module.default;
      render();
    });
  }
  if (!("IntersectionObserver" in window)) { load(); return; }
  var observer = new IntersectionObserver(function (entries) {
    if (entries.some(function (e) { return e.isIntersecting; })) {
      observer.disconnect();
      load();
    }
  }, {rootMargin: "600px 0px"});
  diagrams.forEach(function (d) { observer.observe(d); });
})();
</script>"""

_src = "/" + TARGET


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    global _src
    if not MERMAID_JS.is_file():
        raise PluginError(f"mermaid is not installed ({MERMAID_JS} is missing): run `npm ci`")
    base = urlsplit(config.site_url or "/").path or "/"
    _src = posixpath.join(base if base.endswith("/") else base + "/", TARGET)
    return config


def on_post_page(output: str, page: Page, **_: object) -> str:
    if DIAGRAM_CLASS not in output:
        return output
    marker = "</article>"
    if marker not in output:
        raise PluginError(f"{page.file.src_uri}: cannot find the content container for mermaid")
    return output.replace(marker, LOADER.replace("__SRC__", _src) + marker, 1)


def on_post_build(config: MkDocsConfig) -> None:
    target = Path(config.site_dir) / TARGET_DIR
    (target / CHUNKS).mkdir(parents=True, exist_ok=True)
    shutil.copy2(MERMAID_JS, target / MERMAID_JS.name)
    for chunk in (MERMAID_DIST / CHUNKS).glob("*.mjs"):  # no source maps
        shutil.copy2(chunk, target / CHUNKS / chunk.name)

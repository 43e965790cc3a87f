"""Site benchmarks: build times, and what a reader downloads, with and without build-time math.

Prints figures, asserts nothing about time. Run from the repository root:

    python benchmarks/bench_site.py              # build times + bytes/requests per page
    python benchmarks/bench_site.py --lighthouse # also Lighthouse (needs benchmarks/lighthouse:
                                                 #   cd benchmarks/lighthouse && npm ci)
    python benchmarks/bench_site.py --lighthouse --pages rl/notation/   # other pages
    python benchmarks/bench_site.py --sweep      # Lighthouse once on every page with math

"Client-side KaTeX" is the setup Material for MkDocs documents (arithmatex generic, KaTeX's
katex.min.js + auto-render + katex.min.css, a document$ subscription that renders each page),
served from this machine instead of a CDN so both variants are measured the same way.
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make tests.chromium importable
from tests.chromium import CHROMIUM, FLAGS  # noqa: E402

KATEX = ROOT / "node_modules" / "katex" / "dist"
PAGES = ["", "rl/kl/", "rl/ppo/", "rl/dpo/", "study/quick-reference/", "about/"]

CLIENT_JS = """document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "$", right: "$", display: false },
      { left: "\\\\(", right: "\\\\)", display: false },
      { left: "\\\\[", right: "\\\\]", display: true },
    ],
  });
});
"""


def env() -> dict[str, str]:
    return dict(os.environ, NO_MKDOCS_2_WARNING="1")


def build(config: Path, site: Path, site_url: str | None = None) -> float:
    e = env()
    if site_url:
        e["SITE_URL"] = site_url
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(config), "-d", str(site)],
        cwd=ROOT,
        env=e,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def inherited_config(
    tmp: Path, docs: Path, skip_hooks: tuple[str, ...] = (), extra: str = ""
) -> Path:
    """A config in ``tmp`` that inherits mkdocs.yml but builds ``docs`` (a copy of docs/)."""
    hooks = [p for p in sorted((ROOT / "hooks").glob("*.py")) if p.name not in skip_hooks]
    config = tmp / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {ROOT / 'mkdocs.yml'}\n"
        f"docs_dir: {docs}\n"
        f"theme:\n  name: material\n  custom_dir: {ROOT / 'overrides'}\n"
        "hooks:\n" + "".join(f"  - {p}\n" for p in hooks) + extra,
        encoding="utf-8",
    )
    return config


def client_side_config(tmp: Path) -> Path:
    """A copy of the site configured the documented client-side way (no hooks/katex.py)."""
    docs = tmp / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "javascripts").mkdir(exist_ok=True)
    (docs / "javascripts" / "katex-init.js").write_text(CLIENT_JS, encoding="utf-8")
    vendor = docs / "katex-client"
    shutil.copytree(KATEX, vendor, ignore=shutil.ignore_patterns("*.mjs", "*.ts"))
    return inherited_config(
        tmp,
        docs,
        skip_hooks=("katex.py",),
        extra="validation:\n  links:\n    not_found: info\n    anchors: info\n"
        "extra_javascript:\n  - javascripts/katex-init.js\n"
        "  - katex-client/katex.min.js\n  - katex-client/contrib/auto-render.min.js\n"
        "extra_css:\n  - stylesheets/extra.css\n  - katex-client/katex.min.css\n",
    )


class GzipHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, gzip-encoded when the client accepts it (as any real host does)."""

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if "gzip" not in self.headers.get("Accept-Encoding", "") or not path.is_file():
            return super().send_head()
        body = gzip.compress(path.read_bytes(), 6)
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        import io

        return io.BytesIO(body)


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = lambda *a, **k: GzipHandler(*a, directory=str(site), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.handle_error = lambda *_: None  # type: ignore[method-assign]  # early closes are normal
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def page_weight(url: str) -> tuple[int, int, int]:
    """(bytes on the wire, requests, font requests) for a cold load of ``url`` in chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        requests = []
        page.on("requestfinished", lambda r: requests.append(r))
        page.goto(url, wait_until="networkidle")
        page.wait_for_function("document.fonts.status === 'loaded'")
        total = fonts = 0
        for r in requests:
            sizes = r.sizes()
            total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
            fonts += r.resource_type == "font"
        n = len(requests)
        browser.close()
    return total, n, fonts


def lighthouse(url: str, attempts: int = 3) -> dict[str, float]:
    """One Lighthouse run; a run that crashes (it happens, rarely) is retried, then reported."""
    for attempt in range(1, attempts + 1):
        try:
            return _lighthouse_once(url)
        except (json.JSONDecodeError, KeyError) as err:
            print(f"  (Lighthouse run {attempt} on {url} failed: {err!r})", file=sys.stderr)
    raise RuntimeError(f"Lighthouse failed {attempts} times on {url}")


def _lighthouse_once(url: str) -> dict[str, float]:
    binary = ROOT / "benchmarks" / "lighthouse" / "node_modules" / ".bin" / "lighthouse"
    out = subprocess.run(
        [
            str(binary),
            url,
            "--quiet",
            "--output=json",
            "--output-path=stdout",
            "--only-categories=performance",
            f"--chrome-flags={' '.join(FLAGS)}",
        ],
        env=dict(env(), CHROME_PATH=CHROMIUM),
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(out.stdout)
    audits = report["audits"]
    return {
        "score": 100 * (report["categories"]["performance"]["score"] or 0),
        "cls": audits["cumulative-layout-shift"]["numericValue"],
        "lcp_s": audits["largest-contentful-paint"]["numericValue"] / 1000,
        "fcp_s": audits["first-contentful-paint"]["numericValue"] / 1000,
        "tbt_ms": audits["total-blocking-time"]["numericValue"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lighthouse", action="store_true", help="also run Lighthouse (slow)")
    parser.add_argument("--runs", type=int, default=3, help="Lighthouse runs per page")
    parser.add_argument(
        "--pages",
        nargs="+",
        default=["rl/kl/", "rl/ppo/", "rl/dpo/"],
        help="pages (paths under the site root) Lighthouse measures, e.g. rl/notation/",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="only: Lighthouse once on every page with math"
    )
    args = parser.parse_args()
    if args.sweep:
        sweep()
        return

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        cache = ROOT / ".cache" / "mkdocs-jupyter"
        saved = tmp / "nb-cache"
        if cache.exists():
            shutil.copytree(cache, saved)
            shutil.rmtree(cache)
        try:
            cold = build(ROOT / "mkdocs.yml", tmp / "site-a")
            warm = build(ROOT / "mkdocs.yml", tmp / "site-b")
        finally:  # never leave the tree without its notebook cache
            if saved.exists() and not cache.exists():
                shutil.copytree(saved, cache)
        print("== build (2 cores, strict config)")
        print(f"cold build (notebooks executed): {cold:6.2f} s")
        print(f"warm build (notebook cache hit): {warm:6.2f} s   cold/warm = {cold / warm:.1f}x")
        print(f"serve rebuild after a one-line edit: {serve_rebuild():6.2f} s")

        ours_site, client_site = tmp / "ours", tmp / "client"
        ours_server, ours_url = serve(ours_site)
        client_server, client_url = serve(client_site)
        build(ROOT / "mkdocs.yml", ours_site, ours_url)
        build(client_side_config(tmp / "client-src"), client_site, client_url)

        index = (ours_site / "search" / "search_index.json").read_bytes()
        print(
            f"search index (fetched on intent, not at load): {len(index) / 1024:.0f} KB, "
            f"{len(gzip.compress(index, 6)) / 1024:.0f} KB gzipped"
        )
        print("\n== per page, cold cache, gzip on loopback: build-time KaTeX vs client-side KaTeX")
        print(
            f"{'page':26} {'KB ours':>8} {'KB client':>9} {'ratio':>6} "
            f"{'req ours':>8} {'req client':>10} {'fonts o/c':>9}"
        )
        for path in PAGES:
            if not (ours_site / path / "index.html").is_file():
                continue
            b1, n1, f1 = page_weight(ours_url + path)
            b2, n2, f2 = page_weight(client_url + path)
            print(
                f"{'/' + path:26} {b1 / 1024:8.1f} {b2 / 1024:9.1f} {b1 / b2:6.2f} "
                f"{n1:8d} {n2:10d} {f1:4d}/{f2:<4d}"
            )

        if args.lighthouse:
            print(f"\n== Lighthouse 12.2.3, mobile preset, median of {args.runs} interleaved runs")
            print(
                f"{'page':26} {'variant':8} {'score':>6} {'CLS':>7} {'LCP s':>6} {'FCP s':>6} "
                f"{'TBT ms':>7}"
            )
            for path in args.pages:
                results: dict[str, list[dict[str, float]]] = {"ours": [], "client": []}
                for _ in range(args.runs):
                    results["ours"].append(lighthouse(ours_url + path))
                    results["client"].append(lighthouse(client_url + path))
                for variant, runs in results.items():
                    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    print(
                        f"{'/' + path:26} {variant:8} {med['score']:6.0f} {med['cls']:7.3f} "
                        f"{med['lcp_s']:6.2f} {med['fcp_s']:6.2f} {med['tbt_ms']:7.0f}"
                    )
        ours_server.shutdown()
        client_server.shutdown()


def sweep() -> None:
    """One Lighthouse run on every built page that has math: the spread across the site."""
    with tempfile.TemporaryDirectory() as tmpdir:
        site = Path(tmpdir) / "site"
        server, url = serve(site)
        build(ROOT / "mkdocs.yml", site, url)
        pages = sorted(
            (p.parent.relative_to(site).as_posix() + "/").removeprefix("./")
            for p in site.rglob("index.html")
            if 'class="katex"' in p.read_text(encoding="utf-8")
        )
        print(f"== Lighthouse 12.2.3, mobile preset, one run on each of {len(pages)} math pages")
        rows = []
        for path in pages:
            r = lighthouse(url + path)
            rows.append((path, r))
            print(
                f"/{path:36} {r['score']:4.0f} CLS {r['cls']:.3f} LCP {r['lcp_s']:.2f} s "
                f"TBT {r['tbt_ms']:4.0f} ms"
            )
        scores = [r["score"] for _, r in rows]
        print(
            f"score: min {min(scores):.0f}, median {statistics.median(scores):.0f}; "
            f"max CLS {max(r['cls'] for _, r in rows):.3f}; "
            f"max LCP {max(r['lcp_s'] for _, r in rows):.2f} s; "
            f"below 90: {[p for p, r in rows if r['score'] < 90] or 'none'}"
        )
        server.shutdown()


def serve_rebuild() -> float:
    """Seconds from a one-line edit of about.md to `mkdocs serve` finishing its rebuild.

    The edit goes to a copy of docs/ (served through a config that inherits mkdocs.yml), so
    the benchmark never touches the working tree.
    """
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        shutil.copytree(ROOT / "docs", tmp / "docs")
        config = inherited_config(tmp, tmp / "docs")
        page = tmp / "docs" / "about.md"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mkdocs", "serve", "-f", str(config), "-a", "127.0.0.1:8765"],
            cwd=ROOT,
            env=env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                if "Serving on" in line:
                    break
            time.sleep(1.0)
            t0 = time.perf_counter()
            page.write_text(page.read_text(encoding="utf-8") + "\nOne more line.\n", "utf-8")
            for line in proc.stderr:
                if "Documentation built" in line:
                    return time.perf_counter() - t0
            raise RuntimeError("mkdocs serve did not rebuild")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()

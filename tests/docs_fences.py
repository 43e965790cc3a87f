"""Run every fenced code block of docs/ as the reader sees it (pytest plugin).

Loaded with ``-p tests.docs_fences`` (see ``pyproject.toml``). For each ``docs/**/*.md`` page:

1. expand ``--8<--`` includes with pymdownx.snippets' own preprocessor, configured from
   ``mkdocs.yml`` exactly as the site build is (so a test sees what the page shows);
2. hand the result to ``pytest_codeblocks.extract_from_buffer``, which understands the
   ``<!--pytest-codeblocks:cont-->``, ``expected-output`` and ``<!--pytest.mark.*-->`` markers;
3. run every fence whose language is ``python`` or ``py`` whatever its attributes
   (``python title="..."``, ``py hl_lines="2"``), with ``__name__ == "__main__"`` so main guards
   run, comparing printed output with an ``expected-output`` block when there is one.

A failure names the page and line, and for included code the snippet file and its line. Shell
fences are listed but not executed (they install things or start servers): the terminal
summary says how many. The stock pytest-codeblocks collector is disabled (``-p no:codeblocks``).
"""

from __future__ import annotations

import difflib
import importlib
import io
import re
import sys
import traceback
from contextlib import redirect_stdout
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from pytest_codeblocks.main import CodeBlock, extract_from_buffer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PYTHON = {"python", "py", "python3", "pycon"}
SHELL = {"sh", "bash", "shell", "console", "zsh"}
FENCE_RE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})(?P<info>.*)$")
# For the guard only: tilde fences are valid Markdown but pytest-codeblocks cannot read them.
ANY_FENCE_RE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,}|~{3,})(?P<info>.*)$")
CONT_RE = re.compile(r"^\s*<!--[-\s]*pytest-codeblocks:cont[-\s]*-->\s*$")
SNIPPET_LINE_RE = re.compile(r"""^\s*-{1,}8<-{1,}\s+(?P<q>["'])(?P<target>.+?)(?P=q)\s*$""")


@cache
def _snippet_preprocessor():  # type: ignore[no-untyped-def]
    """pymdownx.snippets configured from mkdocs.yml (base_path, check_paths, ...)."""
    import markdown
    from mkdocs.config import load_config

    config = load_config(str(ROOT / "mkdocs.yml"))
    md = markdown.Markdown(
        extensions=config["markdown_extensions"], extension_configs=config["mdx_configs"]
    )
    return md.preprocessors["snippet"]


def language(info: str) -> str:
    """The language word of a fence's info string: 'python title="x.py"' -> 'python'."""
    info = info.strip().lstrip("{").strip()
    word = re.split(r"[\s{}]", info, maxsplit=1)[0] if info else ""
    return word.lstrip(".").lower()


@dataclass
class Origin:
    """Where an expanded line came from: the page line, and the included file's line."""

    page_line: int
    include: str | None = None
    include_line: int | None = None

    def describe(self, page: str) -> str:
        where = f"{page}:{self.page_line}"
        if self.include:
            where += f" (included from {self.include}:{self.include_line})"
        return where


def expand(page: Path) -> tuple[list[str], list[Origin]]:
    """Expand includes; return the expanded lines and, for each, where it came from."""
    original = page.read_text(encoding="utf-8").split("\n")
    cwd = Path.cwd()
    try:
        import os

        os.chdir(ROOT)  # base_path "." is relative to the repository root, as in the build
        expanded = _snippet_preprocessor().run(list(original))
    finally:
        os.chdir(cwd)
    origins: list[Origin] = []
    matcher = difflib.SequenceMatcher(a=original, b=expanded, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            origins += [Origin(a0 + i + 1) for i in range(b1 - b0)]
            continue
        # Lines produced by an include: find the --8<-- line and the snippet file.
        include, first_line = None, None
        for ln in original[a0:a1]:
            m = SNIPPET_LINE_RE.match(ln)
            if m:
                include = m.group("target").split(":")[0]
                break
        block = expanded[b0:b1]
        if include and (ROOT / include).is_file():
            source = (ROOT / include).read_text(encoding="utf-8").split("\n")
            first = next((ln for ln in block if ln.strip()), None)
            if first is not None:
                stripped = first.strip()
                first_line = next(
                    (i + 1 for i, s in enumerate(source) if s.strip() == stripped), None
                )
        for i in range(b1 - b0):
            inc_line = first_line + i if first_line is not None else None
            origins.append(Origin(a0 + 1, include, inc_line))
    return expanded, origins


def normalise_fences(lines: list[str]) -> tuple[list[str], dict[int, str]]:
    """Rewrite each fence opener to a bare language pytest-codeblocks recognises.

    ``python title="x"`` / ``py`` become ``python``; shell fences become ``shell-skipped``
    (collected by nobody). Returns the new lines and {1-based line: original language}.
    """
    out = []
    langs: dict[int, str] = {}
    open_ticks: str | None = None
    for i, line in enumerate(lines, start=1):
        m = FENCE_RE.match(line)
        if m and open_ticks is None:
            lang = language(m.group("info"))
            langs[i] = lang
            open_ticks = m.group("ticks")
            if lang in PYTHON:
                line = f"{m.group('indent')}{m.group('ticks')}python"
            elif lang in SHELL:
                line = f"{m.group('indent')}{m.group('ticks')}shell-skipped"
            out.append(line)
            continue
        if m and open_ticks is not None and m.group("ticks").startswith(open_ticks):
            if not m.group("info").strip():
                open_ticks = None
        out.append(line)
    return out, langs


def count_python_fences(text: str) -> int:
    """Python fences in raw page text, tilde fences included (what the guard compares)."""
    n = 0
    open_ticks = None
    for line in text.split("\n"):
        m = ANY_FENCE_RE.match(line)
        if not m:
            continue
        if open_ticks is None:
            open_ticks = m.group("ticks")
            n += language(m.group("info")) in PYTHON
        elif m.group("ticks").startswith(open_ticks) and not m.group("info").strip():
            open_ticks = None
    return n


def collected_python_fences(page: Path) -> int:
    """How many python fences the collector runs for ``page`` (continuations included)."""
    expanded, _ = expand(page)
    lines, _ = normalise_fences(expanded)
    blocks = extract_from_buffer(io.StringIO("\n".join(lines) + "\n"))
    conts = sum(1 for ln in lines if CONT_RE.match(ln))
    return sum(b.syntax == "python" for b in blocks) + conts


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    in_docs = DOCS in file_path.parents and "includes" not in file_path.parts
    if file_path.suffix == ".md" and in_docs:
        return DocsPage.from_parent(parent, path=file_path)
    return None


class DocsPage(pytest.File):
    """A page of docs/: one test item per Python fence (continuations merged)."""

    def collect(self):  # type: ignore[no-untyped-def]
        expanded, origins = expand(self.path)
        lines, _ = normalise_fences(expanded)
        page = self.path.relative_to(ROOT).as_posix()
        blocks = extract_from_buffer(io.StringIO("\n".join(lines) + "\n"))
        for block in blocks:
            if block.syntax != "python":
                continue
            origin = origins[block.lineno - 1]
            item = Fence.from_parent(self, name=f"line {origin.page_line}")
            item.block, item.origin, item.page = block, origin, page
            item.module = _included_module(origins, block, lines)
            for mark in block.marks:
                item.add_marker(eval(mark, {"sys": sys, "pytest": pytest}))
            yield item


def _included_module(origins: list[Origin], block: CodeBlock, lines: list[str]) -> str | None:
    """The module a fence shows, when every code line of it comes from one snippets/ file."""
    n = block.code.count("\n")
    body = range(block.lineno, block.lineno + n)  # 0-based indices of the fence's code lines
    sources = {origins[i].include for i in body if i < len(lines) and lines[i].strip()}
    if len(sources) != 1:
        return None
    (source,) = sources
    if source is None or not source.startswith("snippets/") or not source.endswith(".py"):
        return None
    return source[: -len(".py")].replace("/", ".")


class FenceFailure(Exception):
    """A fence raised, or printed something other than its expected output."""


class Fence(pytest.Item):
    block: CodeBlock
    origin: Origin
    page: str
    module: str | None = None

    def runtest(self) -> None:
        if self.block.importorskip is not None:
            pytest.importorskip(self.block.importorskip)
        buffer = io.StringIO()
        namespace = {"__name__": "__main__", "__file__": str(ROOT / self.page)}
        if self.module is not None:
            # A fence that shows one section of snippets/x/y.py runs with that module's globals
            # (its imports), exactly what the reader is told the code is part of.
            namespace = {**vars(importlib.import_module(self.module)), **namespace}
        try:
            code = compile(self.block.code, f"{self.page}:fence@{self.origin.page_line}", "exec")
            with redirect_stdout(buffer):
                exec(code, namespace)
        except Exception as err:
            raise FenceFailure(
                f"{self.origin.describe(self.page)}: fence raised {type(err).__name__}: {err}\n"
                + "".join(traceback.format_exception(err)[-6:])
            ) from err
        expected = self.block.expected_output
        if expected is not None:
            got = buffer.getvalue()
            if self.block.expected_output_ignore_whitespace:
                ok = got.split() == expected.split()
            else:
                ok = got.rstrip("\n") == expected.rstrip("\n")
            if not ok:
                diff = "\n".join(
                    difflib.unified_diff(
                        expected.rstrip("\n").split("\n"),
                        got.rstrip("\n").split("\n"),
                        "expected (shown on the page)",
                        "printed",
                        lineterm="",
                    )
                )
                raise FenceFailure(
                    f"{self.origin.describe(self.page)}: printed output differs from the page:\n"
                    + diff
                )

    def repr_failure(self, excinfo, style=None):  # type: ignore[no-untyped-def]
        if isinstance(excinfo.value, FenceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):  # type: ignore[no-untyped-def]
        return self.path, self.origin.page_line - 1, f"{self.page}:{self.origin.page_line}"


def shell_fences() -> list[str]:
    """Every shell fence of docs/ as 'page:line (lang)', found by scanning the pages."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        if "includes" in page.parts:
            continue
        _, langs = normalise_fences(page.read_text(encoding="utf-8").split("\n"))
        rel = page.relative_to(ROOT).as_posix()
        found += [f"{rel}:{line} ({lang})" for line, lang in langs.items() if lang in SHELL]
    return found


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    # Computed here, not during collection: under pytest-xdist the controller collects nothing.
    if not terminalreporter.config.getoption("collectonly", False):
        ran = {
            report.nodeid
            for reports in terminalreporter.stats.values()
            for report in reports
            if getattr(report, "when", None) == "call"
            and str(getattr(report, "nodeid", "")).startswith("docs/")
        }
        if ran:
            pages = {nodeid.split("::")[0] for nodeid in ran}
            total = sum(
                count_python_fences((ROOT / page).read_text(encoding="utf-8")) for page in pages
            )
            terminalreporter.write_line(
                f"docs fences: {len(ran)} fence tests ran on {len(pages)} pages, covering their "
                f"{total} python fences (a continued fence runs with the one before it)"
            )
        fences = shell_fences()
        if fences:
            terminalreporter.write_line(
                f"docs fences: {len(fences)} shell fence(s) shown but not executed (they install "
                "software or start servers), e.g. " + ", ".join(fences[:3])
            )

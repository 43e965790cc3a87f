"""Named equations and the generated equation index.

A display equation gets a name, a stable anchor and search aliases with one line right
after its closing ``$$``::

    $$
    k_3 = \\frac{\\pi_{\\text{ref}}}{\\pi_\\theta} - \\log\\frac{\\pi_{\\text{ref}}}{\\pi_\\theta}
    $$
    {: #eq-k3 name="k3 estimator" aliases="k3; low-variance KL estimator" }

The block becomes a ``div.eq`` with that id, a visible, linkable name (so the page's search
entry holds it) and the aliases as hidden-but-indexed text. Every named equation of the site is
listed, rendered, on the page that contains the line ``<!-- equation-index -->``; the list is
built from the Markdown sources at build time, so it never drifts. A malformed line, a
missing name or a duplicate id fails the build with the page and line.
"""

from __future__ import annotations

import html
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

INDEX_MARKER = "<!-- equation-index -->"
# A $$ ... $$ block (own lines, any indentation) followed directly by a {: #eq-... } line.
BLOCK_RE = re.compile(
    r"^(?P<indent>[ \t]*)\$\$[ \t]*\n"
    # the TeX: whole lines, none of them a $$ line (so a match never spans two blocks)
    r"(?P<tex>(?:(?![ \t]*\$\$[ \t]*$).*\n)*?)"
    r"(?P=indent)\$\$[ \t]*\n"
    r"(?P=indent)\{:(?P<attrs>[^}\n]*#eq-[^}\n]*)\}[ \t]*$",
    re.MULTILINE,
)
ANY_EQ_ATTR_RE = re.compile(r"^[ \t]*\{:[^}\n]*#eq-", re.MULTILINE)
ATTR_RE = re.compile(r'(\w+)="([^"]*)"')
ID_RE = re.compile(r"#(eq-[a-z0-9][a-z0-9-]*)(?=\s|$)")


@dataclass(frozen=True)
class Equation:
    """One named equation: where it lives and how it is found."""

    id: str
    name: str
    aliases: tuple[str, ...]
    tex: str
    page: str  # docs-relative path of the page, e.g. "rl/kl.md"
    line: int


FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})")


def _mask_code_fences(markdown: str) -> str:
    """Blank out fenced code (same length, newlines kept): examples of the syntax stay inert."""
    out: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        m = FENCE_RE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append(" " * len(line))
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                if not line.strip().lstrip(fence[0]):
                    fence = None
            out.append(" " * len(line))
        else:
            out.append(line)
    return "\n".join(out)


def _parse(markdown: str, page: str) -> list[tuple[re.Match[str], Equation]]:
    found = []
    markdown = _mask_code_fences(markdown)
    for m in BLOCK_RE.finditer(markdown):
        line = markdown.count("\n", 0, m.start()) + 1
        attrs = dict(ATTR_RE.findall(m.group("attrs")))
        ids = ID_RE.findall(m.group("attrs"))
        where = f"{page}:{line}"
        if len(ids) != 1:
            raise PluginError(f"{where}: a named equation needs exactly one '#eq-...' id")
        unknown = set(attrs) - {"name", "aliases"}
        if unknown:
            raise PluginError(f"{where}: unknown equation attribute(s) {sorted(unknown)}")
        if not attrs.get("name", "").strip():
            raise PluginError(f'{where}: equation #{ids[0]} needs name="..."')
        aliases = tuple(a.strip() for a in attrs.get("aliases", "").split(";") if a.strip())
        tex = "\n".join(
            ln[len(m.group("indent")) :] for ln in m.group("tex").rstrip("\n").split("\n")
        )
        found.append((m, Equation(ids[0], attrs["name"].strip(), aliases, tex, page, line)))
    # An {: #eq-...} line that did not follow a $$ block is a mistake, not a no-op.
    claimed = {m.end() for m, _ in found}
    for m in ANY_EQ_ATTR_RE.finditer(markdown):
        line_end = markdown.find("\n", m.start())
        end = len(markdown) if line_end == -1 else line_end
        if end not in claimed:
            line = markdown.count("\n", 0, m.start()) + 1
            raise PluginError(
                f"{page}:{line}: an equation attribute line must follow a $$ ... $$ block directly"
            )
    return found


def collect(docs_dir: Path) -> list[Equation]:
    """Every named equation under ``docs_dir``, in file order; duplicate ids are an error."""
    equations: list[Equation] = []
    seen: dict[str, Equation] = {}
    for path in sorted(docs_dir.rglob("*.md")):
        page = path.relative_to(docs_dir).as_posix()
        for _, eq in _parse(path.read_text(encoding="utf-8"), page):
            if eq.id in seen:
                first = seen[eq.id]
                raise PluginError(
                    f"{page}:{eq.line}: duplicate equation id #{eq.id} "
                    f"(first at {first.page}:{first.line})"
                )
            seen[eq.id] = eq
            equations.append(eq)
    return equations


# Inside the raw-HTML ``div`` the block is read by an HTML parser before any Markdown or math
# handling, and ``<`` followed by a letter (``y_{<t}``) opens a tag there: the rest of the
# page vanished into it. A space after ``<`` is invisible in TeX math and is no tag.
TAG_OPEN_RE = re.compile(r"<(?=[A-Za-z!/?])")


def _html_safe_tex(tex: str) -> str:
    """TeX that an HTML parser cannot mistake for a tag: ``<t`` becomes ``< t``."""
    return TAG_OPEN_RE.sub("< ", tex)


def _render_block(eq: Equation, indent: str) -> str:
    aliases = ""
    if eq.aliases:
        aliases = f'<span class="eq__aliases">Also: {html.escape(", ".join(eq.aliases))}</span>'
    lines = [
        f'<div class="eq" id="{eq.id}" markdown="block">',
        f'<p class="eq__name"><a class="eq__link" href="#{eq.id}">{html.escape(eq.name)}</a>'
        f"{aliases}</p>",
        "",
        "$$",
        _html_safe_tex(eq.tex),
        "$$",
        "",
        "</div>",
    ]
    return "\n".join(indent + ln if ln else ln for ln in "\n".join(lines).split("\n"))


def _index_markdown(equations: list[Equation], page: str, titles: dict[str, str]) -> str:
    if not equations:
        return "*No named equations yet.*"
    out: list[str] = []
    current = None
    for eq in equations:
        if eq.page != current:
            current = eq.page
            link = posixpath.relpath(eq.page, posixpath.dirname(page) or ".")
            out.append(f"\n## [{titles.get(eq.page, eq.page)}]({link})\n")
        link = posixpath.relpath(eq.page, posixpath.dirname(page) or ".") + f"#{eq.id}"
        aliases = f" — also: {', '.join(eq.aliases)}" if eq.aliases else ""
        out += [f"**[{eq.name}]({link})**{aliases}", "", "$$", eq.tex, "$$", ""]
    return "\n".join(out)


_equations: list[Equation] = []
_titles: dict[str, str] = {}  # page -> its first "# " heading, for the index's section titles
H1_RE = re.compile(r"^# (.+)$", re.MULTILINE)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    global _equations
    docs = Path(config.docs_dir)
    _equations = collect(docs)
    for page in {eq.page for eq in _equations}:
        h1 = H1_RE.search((docs / page).read_text(encoding="utf-8"))
        _titles[page] = h1.group(1).strip() if h1 else page
    return files


def on_page_markdown(markdown: str, page: Page, **_: object) -> str:
    src = page.file.src_uri
    parsed = _parse(markdown, src)
    for m, eq in reversed(parsed):
        block = _render_block(eq, m.group("indent"))
        markdown = markdown[: m.start()] + block + markdown[m.end() :]
    if INDEX_MARKER in markdown:
        markdown = markdown.replace(INDEX_MARKER, _index_markdown(_equations, src, _titles))
    return markdown

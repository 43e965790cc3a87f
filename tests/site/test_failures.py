"""Broken input fails the build, and the message names the page.

Each case builds a small fixture site that inherits the real mkdocs.yml (same hooks, same
extensions) with one page that is broken in one way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, mkdocs_build

pytestmark = [pytest.mark.build, pytest.mark.slow]


# mkdocs-jupyter without its cache: a fixture build must never evict the real site's cached
# notebooks (the plugin deletes every cache entry its own build did not use).
PLUGINS = (
    "plugins:\n  - search\n  - mkdocs-jupyter:\n"
    '      include: ["notebooks/*.py"]\n      execute: true\n      allow_errors: false\n'
    "      cache: false\n"
)


def fixture_config(docs: Path, nav: list[str]) -> str:
    """A config inheriting the real one; paths that INHERIT would resolve locally made absolute."""
    hooks = "".join(f"  - {p}\n" for p in sorted((ROOT / "hooks").glob("*.py")))
    return (
        f"INHERIT: {ROOT / 'mkdocs.yml'}\n"
        f"docs_dir: {docs}\n"
        f"theme:\n  name: material\n  custom_dir: {ROOT / 'overrides'}\n"
        f"hooks:\n{hooks}"
        "nav:\n" + "".join(f"  - {n}\n" for n in nav) + PLUGINS
    )


CASES = {
    "missing-include": (
        "broken.md",
        '# Broken\n\n```python\n--8<-- "snippets/does_not_exist.py"\n```\n',
        ("broken.md", "does_not_exist.py"),
    ),
    "missing-section": (
        "broken.md",
        '# Broken\n\n```python\n--8<-- "snippets/_checks.py:no-such-section"\n```\n',
        ("broken.md", "no-such-section"),
    ),
    "bad-tex": ("broken.md", "# Broken\n\n$$\n\\frac{1}{\n$$\n", "broken.md"),
    "bad-inline-tex": ("broken.md", "# Broken\n\nSee \\(\\undefinedmacro x\\).\n", "broken.md"),
    "broken-link": ("broken.md", "# Broken\n\nSee [here](nowhere.md).\n", "broken.md"),
    "broken-anchor": ("broken.md", "# Broken\n\nSee [here](#no-such-anchor).\n", "broken.md"),
    "equation-without-name": (
        "broken.md",
        "# Broken\n\n$$\nx\n$$\n{: #eq-x }\n",
        "broken.md:3",
    ),
    "failing-notebook": (
        "notebooks/broken.py",
        '# %% [markdown]\n# # Broken\n\n# %%\nraise RuntimeError("cell fails")\n',
        "notebooks/broken.py",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_input_fails_the_build_naming_the_page(case: str, tmp_path: Path) -> None:
    name, text, must_mention = CASES[case]
    docs = tmp_path / "docs"
    (docs / name).parent.mkdir(parents=True, exist_ok=True)
    (docs / "index.md").write_text("# Fixture\n", encoding="utf-8")
    (docs / name).write_text(text, encoding="utf-8")
    includes = docs / "includes"
    includes.mkdir()
    (includes / "abbreviations.md").write_text("", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(fixture_config(docs, ["index.md", name]), encoding="utf-8")
    result = mkdocs_build(tmp_path / "site", config=config)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{case}: the build passed\n{output}"
    for expected in (must_mention,) if isinstance(must_mention, str) else must_mention:
        assert expected in output, f"{case}: the error does not name {expected!r}:\n{output}"


def test_fixture_site_builds_when_nothing_is_broken(tmp_path: Path) -> None:
    """The control: the fixture setup itself is sound, so the failures above are real."""
    docs = tmp_path / "docs"
    (docs / "includes").mkdir(parents=True)
    (docs / "includes" / "abbreviations.md").write_text("", encoding="utf-8")
    (docs / "index.md").write_text(
        '# Fixture\n\n$$\nx^2\n$$\n{: #eq-x name="x squared" }\n\n```python\n'
        '--8<-- "snippets/_checks.py:1:3"\n```\n',
        encoding="utf-8",
    )
    config = tmp_path / "mkdocs.yml"
    config.write_text(fixture_config(docs, ["index.md"]), encoding="utf-8")
    result = mkdocs_build(tmp_path / "site", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'id="eq-x"' in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")

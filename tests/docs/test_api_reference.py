"""The documentation site builds without warnings and documents every public name.

``mkdocs build --strict`` runs into a temporary folder, so a broken nav entry,
a bad anchor or a docstring that mkdocstrings cannot render fails here and not
only when someone publishes the site. Each name in ``dorm_sqlalchemy.__all__``
and ``alembic_ext.__all__`` must have a docstring and a heading in the
generated API reference.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import griffe
import pytest

import alembic_ext
import dorm_sqlalchemy

ROOT = Path(__file__).resolve().parents[2]

PACKAGES = {"dorm_sqlalchemy": dorm_sqlalchemy, "alembic_ext": alembic_ext}

PUBLIC_NAMES = [
    (package, name) for package, module in PACKAGES.items() for name in module.__all__
]

BUILD_TIMEOUT = 120.0

# [text](target) with a relative target, outside code spans and blocks.
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the site once for the module and return its folder."""
    output = tmp_path_factory.mktemp("site")
    environment = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(output)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return output


@pytest.fixture(scope="module")
def reference_html(site: Path) -> str:
    return "\n".join(
        path.read_text(encoding="utf-8") for path in sorted((site / "reference").rglob("*.html"))
    )


@pytest.fixture(scope="module")
def loaded() -> dict[str, griffe.Object]:
    return {
        name: griffe.load(name, search_paths=[str(ROOT)], resolve_aliases=True)
        for name in PACKAGES
    }


def test_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").is_file()


def test_site_has_reference_pages(site: Path) -> None:
    pages = sorted(path.parent.name for path in (site / "reference").glob("*/index.html"))

    assert "registry" in pages


@pytest.mark.parametrize(("package", "name"), PUBLIC_NAMES, ids=lambda value: str(value))
def test_public_name_in_reference(package: str, name: str, reference_html: str) -> None:
    assert f'id="{package}.{name}"' in reference_html, (
        f"{package}.{name} is in __all__ but has no entry in docs/reference/: "
        f"add '::: {package}.{name}' to the page it belongs to"
    )


@pytest.mark.parametrize(("package", "name"), PUBLIC_NAMES, ids=lambda value: str(value))
def test_public_name_has_docstring(
    package: str, name: str, loaded: dict[str, griffe.Object]
) -> None:
    target = loaded[package][name]
    if target.is_alias:
        target = target.final_target
    docstring = target.docstring.value.strip() if target.docstring else ""

    assert docstring, (
        f"{package}.{name} has no docstring: document it where it is defined "
        f"({target.relative_filepath}:{target.lineno}); for a constant, put a "
        "string literal on the line after the assignment"
    )


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _prose(text: str) -> str:
    """Return ``text`` without fenced code blocks and code spans."""
    without_blocks = re.sub(r"^([ \t]*)(```|~~~).*?^\1\2[ \t]*$", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", without_blocks)


@pytest.mark.parametrize("page", _pages(), ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_point_to_files(page: Path) -> None:
    broken = []
    for match in _LINK.finditer(_prose(page.read_text(encoding="utf-8"))):
        target = match.group("target")
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)

    assert not broken, f"{page.name} links to missing files: {broken}"

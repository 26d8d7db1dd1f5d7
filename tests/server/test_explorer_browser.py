"""The explorer page end to end in headless Chromium (Debian's ``chromium``, driven by Playwright).

Needs the ``chromium`` package at /usr/bin/chromium and the ``playwright``
Python package; Playwright's own browser download is not used.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import SECRET, LiveServer

import playwright.sync_api as playwright_api

expect = playwright_api.expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE = '<img src=x onerror="window.__injected = 1">'


@pytest.fixture(autouse=True)
def require_chromium() -> None:
    # A missing browser fails the test: scripts/dev.py test installs it.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def explorer(server: LiveServer, browser: Any) -> Iterator[tuple[LiveServer, Any]]:
    server.sql("acme", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB)")
    server.transaction(
        "acme",
        *[
            (
                "INSERT INTO notes (body, data) VALUES (?, ?)",
                [f"note {index:03}", {"$blob": "AAE="}],
            )
            for index in range(119)
        ],
        ("INSERT INTO notes (body) VALUES (?)", [HOSTILE]),
    )
    server.sql("globex", "CREATE TABLE t (x)")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    yield server, page
    page.close()


def _connect(page: Any, server: LiveServer, token: str = SECRET) -> None:
    page.goto(server.url + "/")
    page.fill("#token-input", token)
    page.click("#token-save")


def test_explorer_browse_query_and_errors(explorer: tuple[LiveServer, Any], tmp_path: Path) -> None:
    server, page = explorer
    _connect(page, server)

    # Tenants, then tables with row counts.
    page.wait_for_selector("#tenant-list button[data-tenant='globex']")
    tenants = page.locator("#tenant-list button").all_inner_texts()
    page.click("#tenant-list button[data-tenant='acme']")
    page.wait_for_selector("#table-list button[data-table='notes']")
    notes_entry = page.inner_text("#table-list button[data-table='notes']")

    # Rows, page by page.
    page.click("#table-list button[data-table='notes']")
    expect(page.locator("#rows-table tbody tr")).to_have_count(50)
    first_page = page.inner_text("#page-info")
    screenshot = page.locator("#rows-table").screenshot(path=str(tmp_path / "rows.png"))
    page.click("#next-page")
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^Rows 51"))
    page.click("#next-page")
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^Rows 101"))
    last_page_rows = page.locator("#rows-table tbody tr").count()
    next_disabled = page.is_disabled("#next-page")
    hostile_cell = page.locator("#rows-table tbody tr").last.locator("td").nth(1).inner_text()

    # Schema.
    page.click("button[data-tab='schema']")
    page.wait_for_selector("#schema-columns tbody tr")
    schema_sql = page.inner_text("#schema-sql")
    schema_columns = page.locator("#schema-columns tbody tr").count()

    # SQL console: a result, then an error shown inline.
    page.click("button[data-tab='sql']")
    page.fill("#sql-input", "SELECT count(*) AS n, max(id) AS top FROM notes")
    page.click("#run-sql")
    page.wait_for_selector("#sql-result tbody tr")
    console_cells = page.locator("#sql-result tbody td").all_inner_texts()
    page.fill("#sql-input", "SELECT nope FROM notes")
    page.click("#run-sql")
    page.wait_for_selector("#sql-error:not([hidden])")
    console_error = page.inner_text("#sql-error")
    console_rows_after_error = page.locator("#sql-result tbody tr").count()

    assert [text.split()[0] for text in tenants] == ["acme", "globex"]
    assert notes_entry.split() == ["notes", "120"]
    assert first_page == "Rows 1–50 of 120"
    assert last_page_rows == 20
    assert next_disabled
    assert hostile_cell == HOSTILE
    assert page.evaluate("window.__injected") is None
    assert page.locator("#rows-table img").count() == 0
    assert schema_sql.startswith("CREATE TABLE notes")
    assert schema_columns == 3
    assert console_cells == ["120", "120"]
    assert "no such column: nope" in console_error
    assert console_rows_after_error == 0
    _assert_table_drawn(screenshot)


def test_explorer_wrong_token_shows_not_connected(explorer: tuple[LiveServer, Any]) -> None:
    server, page = explorer

    _connect(page, server, token="wrong")
    expect(page.locator("#auth-status")).to_have_text(re.compile(r"^Not connected"))

    assert page.locator("#tenant-list button").count() == 0
    assert "invalid token" in page.inner_text("#auth-status")


def test_explorer_keeps_token_for_the_tab_only(
    explorer: tuple[LiveServer, Any], browser: Any
) -> None:
    server, page = explorer
    _connect(page, server)
    page.wait_for_selector("#tenant-list button[data-tenant='acme']")

    page.reload()
    page.wait_for_selector("#tenant-list button[data-tenant='acme']")
    stored = page.evaluate("sessionStorage.getItem('dorm.explorer.token')")
    other_tab = browser.new_page()
    other_tab.goto(server.url + "/explorer/")
    other_stored = other_tab.evaluate("sessionStorage.getItem('dorm.explorer.token')")
    other_tab.close()

    assert stored == SECRET
    assert other_stored is None


# -- screenshot check -------------------------------------------------------------------


def _assert_table_drawn(png: bytes) -> None:
    width, height, pixels = _decode_png(png)
    white = sum(1 for pixel in pixels if min(pixel) >= 245)
    dark = sum(1 for pixel in pixels if max(pixel) <= 110)

    assert width > 300
    assert height > 300
    assert white / len(pixels) < 0.98, "the rows table looks blank"
    assert dark / len(pixels) > 0.005, "no text is drawn in the rows table"


def _decode_png(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) into pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position = 8
    idat = b""
    width = height = channels = 0
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunk = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8
            assert color in (2, 6)
            assert interlace == 0
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk

    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, ...]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for index in range(stride):
            left = line[index - channels] if index >= channels else 0
            up = previous[index]
            upper_left = previous[index - channels] if index >= channels else 0
            if kind == 1:
                line[index] = (line[index] + left) & 0xFF
            elif kind == 2:
                line[index] = (line[index] + up) & 0xFF
            elif kind == 3:
                line[index] = (line[index] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - upper_left
                distances = (abs(estimate - left), abs(estimate - up), abs(estimate - upper_left))
                predictor = (left, up, upper_left)[distances.index(min(distances))]
                line[index] = (line[index] + predictor) & 0xFF
        pixels.extend(tuple(line[index : index + 3]) for index in range(0, stride, channels))
        previous = line
    return width, height, pixels


def test_explorer_address_selects_tenant_and_table(explorer: tuple[LiveServer, Any]) -> None:
    server, page = explorer
    page.goto(server.url + "/explorer/#tenant=acme&table=notes")
    page.fill("#token-input", SECRET)
    page.click("#token-save")

    expect(page.locator("#rows-table tbody tr")).to_have_count(50)
    location = page.inner_text("#location")

    page.click("#tenant-list button[data-tenant='globex']")
    page.wait_for_selector("#table-list button[data-table='t']")

    assert location == "acme / notes"
    assert page.evaluate("location.hash") == "#tenant=globex"


def test_explorer_works_without_secret(start_server: Any, browser: Any) -> None:
    live = start_server(secret=None)
    live.dorm.exec("acme", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    page = browser.new_page()
    page.set_default_timeout(10_000)

    # The page's own requests carry its origin, which the server accepts.
    page.goto(live.url + "/")
    page.click("#tenant-list button[data-tenant='acme']")
    page.click("button[data-tab='sql']")
    page.fill("#sql-input", "INSERT INTO notes (body) VALUES ('from the page') RETURNING id")
    page.click("#run-sql")
    page.wait_for_selector("#sql-result tbody tr")
    page.close()

    assert live.dorm.exec("acme", "SELECT body FROM notes").scalar() == "from the page"

"""A replay of an Outerbase Studio session over its "starbase" connection, request by request.

The requests are built the way Studio's starbase driver and its SQLite driver
build them. A query is ``POST <url>/query/raw`` with ``{"sql": ...}``, and a
batch sends ``{"transaction": [{"sql": ...}, ...]}``. The SQL is literal, with
no parameters. Every request carries ``Authorization: Bearer <token>``, and
``X-Starbase-Source`` when the connection type is not "internal". :func:`studio_rows` reads a result the
way Studio does, as objects keyed by column name.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import SECRET, LiveServer

ARTISTS = (
    "CREATE TABLE artists (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, "
    "country TEXT, photo BLOB)"
)


class Studio:
    """What Studio's starbase driver sends, for one connection URL and token."""

    def __init__(self, url: str, token: str, starbase_type: str = "internal") -> None:
        self.url = url.rstrip("/") + "/query/raw"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if starbase_type != "internal":
            self.headers["X-Starbase-Source"] = starbase_type

    def query(self, sql: str) -> httpx.Response:
        return httpx.post(self.url, json={"sql": sql}, headers=self.headers)

    def transaction(self, statements: list[str]) -> httpx.Response:
        return httpx.post(
            self.url,
            json={"transaction": [{"sql": sql} for sql in statements]},
            headers=self.headers,
        )


def studio_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Read one result as Studio's transformRawResult does: rows become objects by column name."""
    columns = result["columns"]
    assert isinstance(result["meta"]["rows_read"], int)
    assert isinstance(result["meta"]["rows_written"], int)
    return [dict(zip(columns, row, strict=True)) for row in result["rows"]]


def single(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert isinstance(result, dict)
    return result


def batch(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["transaction"] == {"success": True}
    assert isinstance(document["result"], list)
    return document["result"]


@pytest.fixture
def chinook(server: LiveServer) -> LiveServer:
    server.sql("chinook", ARTISTS)
    server.sql("chinook", "CREATE TABLE notes (body TEXT, created TEXT)")
    server.sql("chinook", "CREATE VIEW artist_names AS SELECT name FROM artists")
    server.sql(
        "chinook", "CREATE TRIGGER artists_touch AFTER UPDATE ON artists BEGIN SELECT 1; END"
    )
    for index in range(120):
        server.sql(
            "chinook",
            "INSERT INTO artists (name, country) VALUES (?, ?)",
            [f"Artist {index:03}", "SE"],
        )
    server.sql(
        "chinook", "INSERT INTO notes VALUES ('first', '2024-01-01'), ('second', '2024-01-02')"
    )
    return server


def test_studio_session(chinook: LiveServer) -> None:
    studio = Studio(f"{chinook.url}/chinook/api/db/", SECRET)

    # Connecting: older Studio builds list the databases first, then read each schema in one batch.
    databases = studio_rows(single(studio.query("PRAGMA database_list;")))
    assert [database["name"] for database in databases] == ["main"]
    schemas = batch(
        studio.transaction([f'SELECT * FROM "{d["name"]}".sqlite_schema;' for d in databases])
    )
    objects = studio_rows(schemas[0])
    assert schemas[0]["columns"] == ["type", "name", "tbl_name", "rootpage", "sql"]
    assert {(row["type"], row["name"]) for row in objects} >= {
        ("table", "artists"),
        ("table", "notes"),
        ("view", "artist_names"),
        ("trigger", "artists_touch"),
    }

    # Opening a table: its definition, the column fallback and the AUTOINCREMENT check.
    definition = studio_rows(
        single(studio.query("SELECT * FROM \"main\".sqlite_schema WHERE tbl_name = 'artists';"))
    )
    assert any(
        row["type"] == "table" and row["sql"].startswith("CREATE TABLE artists")
        for row in definition
    )
    columns = studio_rows(
        single(studio.query("SELECT * FROM \"main\".pragma_table_info('artists');"))
    )
    assert [column["name"] for column in columns] == ["id", "name", "country", "photo"]
    assert [column["pk"] for column in columns] == [1, 0, 0, 0]
    sequence = single(
        studio.query("SELECT COUNT(*) AS total FROM \"main\".sqlite_sequence WHERE name='artists';")
    )
    assert sequence["rows"] == [[1]]

    # Browsing: pages of 50, then sorted and filtered.
    first_page = studio_rows(
        single(studio.query('SELECT * FROM "main"."artists"  LIMIT 50 OFFSET 0;'))
    )
    third_page = studio_rows(
        single(studio.query('SELECT * FROM "main"."artists"  LIMIT 50 OFFSET 100;'))
    )
    assert len(first_page) == 50
    assert first_page[0] == {"id": 1, "name": "Artist 000", "country": "SE", "photo": None}
    assert [row["id"] for row in third_page] == list(range(101, 121))
    sorted_page = studio_rows(
        single(
            studio.query('SELECT * FROM "main"."artists"   ORDER BY "name" DESC LIMIT 50 OFFSET 0;')
        )
    )
    assert sorted_page[0]["name"] == "Artist 119"
    filtered = single(
        studio.query(
            'SELECT * FROM "main"."artists" WHERE name LIKE \'Artist 00%\'   LIMIT 50 OFFSET 0;'
        )
    )
    assert len(filtered["rows"]) == 10

    # A table without a primary key is browsed by rowid.
    notes = studio_rows(
        single(studio.query('SELECT rowid, * FROM "main"."notes"  LIMIT 50 OFFSET 0;'))
    )
    assert notes == [
        {"rowid": 1, "body": "first", "created": "2024-01-01"},
        {"rowid": 2, "body": "second", "created": "2024-01-02"},
    ]

    # Committing edits: one batch of INSERT/UPDATE ... RETURNING rowid, * and DELETE.
    edits = batch(
        studio.transaction(
            [
                'INSERT INTO "main"."artists" ("name", "country") VALUES(\'Björk\', \'IS\') RETURNING rowid, *',
                'UPDATE "main"."artists" SET "name" = \'ABBA\', "photo" = x\'89504e47\' WHERE "id" = 1 RETURNING rowid, *',
                'DELETE FROM "main"."artists" WHERE "id" = 2',
                'UPDATE "main"."notes" SET "body" = \'edited\' WHERE "rowid" = 2 RETURNING rowid, *',
            ]
        )
    )
    assert [len(result["rows"]) for result in edits] == [1, 1, 0, 1]
    assert studio_rows(edits[0])[0] == {"id": 121, "name": "Björk", "country": "IS", "photo": None}
    assert edits[0]["columns"] == ["id", "id", "name", "country", "photo"]
    assert edits[1]["rows"][0][2:] == ["ABBA", "SE", {"$blob": "iVBORw=="}]
    assert edits[2]["meta"]["rows_written"] == 1
    assert studio_rows(edits[3])[0] == {"rowid": 2, "body": "edited", "created": "2024-01-02"}

    # Studio reads the edited rows back.
    reread = studio_rows(
        single(studio.query('SELECT * FROM "main"."artists" WHERE "id" = 1 LIMIT 1 OFFSET 0'))
    )
    assert reread[0]["name"] == "ABBA"
    assert chinook.rows("chinook", "SELECT count(*) FROM artists") == [[120]]

    # Schema editor: create a table, then alter it.
    created = batch(
        studio.transaction(
            [
                'CREATE TABLE "main"."genres"(\n  "id" INTEGER PRIMARY KEY AUTOINCREMENT,\n  "name" TEXT\n)'
            ]
        )
    )
    altered = batch(
        studio.transaction(
            [
                'ALTER TABLE "main"."genres" ADD "parent" INTEGER',
                'ALTER TABLE "main"."genres" RENAME TO "styles"',
            ]
        )
    )
    assert created[0]["rows"] == []
    assert len(altered) == 2
    assert [
        row["name"]
        for row in studio_rows(
            single(studio.query("SELECT * FROM \"main\".pragma_table_info('styles');"))
        )
    ] == [
        "id",
        "name",
        "parent",
    ]

    # The query tab runs what the user types.
    console = single(studio.query("SELECT count(*) AS n FROM artists"))
    assert console["rows"] == [[120]]


def test_studio_failed_edit_commits_nothing(chinook: LiveServer) -> None:
    studio = Studio(f"{chinook.url}/chinook/api/db", SECRET)

    response = studio.transaction(
        [
            'UPDATE "main"."artists" SET "country" = \'NO\' WHERE "id" = 3 RETURNING rowid, *',
            'INSERT INTO "main"."artists" ("name") VALUES(\'Artist 005\') RETURNING rowid, *',
        ]
    )

    assert response.status_code == 409
    assert "result" not in response.json()
    assert chinook.rows("chinook", "SELECT country FROM artists WHERE id = 3") == [["SE"]]


@pytest.mark.parametrize("starbase_type", ["internal", "external", "hyperdrive"])
def test_studio_connection_types_accepted(chinook: LiveServer, starbase_type: str) -> None:
    studio = Studio(f"{chinook.url}/chinook/api/db", SECRET, starbase_type)

    result = single(studio.query('SELECT * FROM "main".sqlite_schema;'))

    assert result["rows"]


def test_studio_browser_preflight(chinook: LiveServer) -> None:
    response = httpx.options(
        f"{chinook.url}/chinook/api/db/query/raw",
        headers={
            "Origin": "https://studio.outerbase.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-starbase-source",
        },
    )

    allowed = {
        name.strip().lower() for name in response.headers["access-control-allow-headers"].split(",")
    }
    assert response.status_code == 204
    assert {"authorization", "content-type", "x-starbase-source", "x-data-source"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]


def test_studio_wrong_token_gets_json_error(chinook: LiveServer) -> None:
    studio = Studio(f"{chinook.url}/chinook/api/db", "not-the-token")

    response = studio.query('SELECT * FROM "main".sqlite_schema;')

    assert response.status_code == 401
    assert "result" not in response.json()
    assert response.headers["access-control-allow-origin"] == "*"

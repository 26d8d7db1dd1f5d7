"""JSON Schema tables: DDL run on real SQLite files, constraint by constraint."""

from __future__ import annotations

import _sqlite3
import ctypes
import dataclasses
import datetime
import decimal
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine, insert, select
from sqlalchemy.dialects import sqlite

from dorm_sqlalchemy.json_schema import (
    json_schema_to_sql,
    json_schema_to_table,
    json_schemas_to_metadata,
    render_schema_file,
)
from dorm_sqlalchemy.json_schema.identifiers import SQLITE_KEYWORDS

_quote = sqlite.dialect().identifier_preparer.quote


@pytest.fixture
def open_database(tmp_path: Path) -> Iterator[Any]:
    """Create SQLite files from DDL with foreign keys on; close them after the test."""
    connections: list[sqlite3.Connection] = []

    def open_(statements: list[str], name: str = "tenant.db") -> sqlite3.Connection:
        connection = sqlite3.connect(tmp_path / name, isolation_level=None)
        connections.append(connection)
        connection.execute("PRAGMA foreign_keys=ON")
        for statement in statements:
            connection.execute(statement)
        return connection

    yield open_
    for connection in connections:
        connection.close()


def insert_row(connection: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    if not row:
        connection.execute(f"INSERT INTO {_quote(table)} DEFAULT VALUES")
        return
    columns = ", ".join(_quote(name) for name in row)
    marks = ", ".join("?" for _ in row)
    connection.execute(
        f"INSERT INTO {_quote(table)} ({columns}) VALUES ({marks})", tuple(row.values())
    )


def ddl_for(schemas: list[dict[str, Any]]) -> list[str]:
    return [statement for schema in schemas for statement in json_schema_to_sql(schema)]


def table(name: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"$id": name, "type": "object", "properties": properties, **extra}


PARENTS = table(
    "parents",
    {
        "id": {"type": "integer", "x-dorm-primary-key": True},
        "code": {"type": "string", "x-dorm-unique": True},
    },
)


@dataclasses.dataclass
class Case:
    """Schemas, rows every constraint accepts, and rows that break one constraint each."""

    name: str
    schemas: list[dict[str, Any]]
    valid: list[tuple[str, dict[str, Any]]]
    violations: list[tuple[str, dict[str, Any]]]


CASES = [
    Case(
        "not_null",
        [table("t", {"name": {"type": "string"}}, required=["name"])],
        valid=[("t", {"name": "a"})],
        violations=[("t", {"name": None}), ("t", {})],
    ),
    Case(
        "primary_key",
        [table("t", {"id": {"type": "string", "x-dorm-primary-key": True}})],
        valid=[("t", {"id": "a"}), ("t", {"id": "b"})],
        violations=[("t", {"id": "a"}), ("t", {"id": None})],
    ),
    Case(
        "composite_primary_key",
        [
            table(
                "t",
                {"a": {"type": "integer"}, "b": {"type": "string"}},
                **{"x-dorm-primary-key": ["a", "b"]},
            )
        ],
        valid=[("t", {"a": 1, "b": "x"}), ("t", {"a": 1, "b": "y"}), ("t", {"a": 2, "b": "x"})],
        violations=[("t", {"a": 1, "b": "x"}), ("t", {"a": 3, "b": None})],
    ),
    Case(
        "unique",
        [table("t", {"email": {"type": "string", "x-dorm-unique": True}})],
        valid=[("t", {"email": "a@x"}), ("t", {"email": "b@x"}), ("t", {"email": None})],
        violations=[("t", {"email": "a@x"})],
    ),
    Case(
        "composite_unique",
        [
            table(
                "t",
                {"a": {"type": "integer"}, "b": {"type": "integer"}},
                **{"x-dorm-unique": [["a", "b"]]},
            )
        ],
        valid=[("t", {"a": 1, "b": 1}), ("t", {"a": 1, "b": 2})],
        violations=[("t", {"a": 1, "b": 1})],
    ),
    Case(
        "unique_index",
        [table("t", {"slug": {"type": "string", "x-dorm-index": {"unique": True}}})],
        valid=[("t", {"slug": "a"}), ("t", {"slug": "b"})],
        violations=[("t", {"slug": "a"})],
    ),
    Case(
        "composite_unique_index",
        [
            table(
                "t",
                {"a": {"type": "integer"}, "b": {"type": "integer"}},
                **{"x-dorm-index": [{"columns": ["a", "b"], "unique": True}]},
            )
        ],
        valid=[("t", {"a": 1, "b": 1}), ("t", {"a": 2, "b": 1})],
        violations=[("t", {"a": 1, "b": 1})],
    ),
    Case(
        "foreign_key_to_primary_key",
        [
            PARENTS,
            table(
                "children",
                {
                    "parent_id": {
                        "type": "integer",
                        "x-dorm-references": {"table": "parents", "column": "id"},
                    }
                },
            ),
        ],
        valid=[("parents", {"id": 1, "code": "p1"}), ("children", {"parent_id": 1})],
        violations=[("children", {"parent_id": 99})],
    ),
    Case(
        "foreign_key_to_unique",
        [
            PARENTS,
            table(
                "children",
                {
                    "parent_code": {
                        "type": "string",
                        "x-dorm-references": {"table": "parents", "column": "code"},
                    }
                },
            ),
        ],
        valid=[("parents", {"id": 1, "code": "p1"}), ("children", {"parent_code": "p1"})],
        violations=[("children", {"parent_code": "p2"})],
    ),
    Case(
        "integer_type",
        [table("t", {"n": {"type": "integer"}}, required=["n"])],
        valid=[("t", {"n": 5}), ("t", {"n": "6"})],
        violations=[("t", {"n": "abc"}), ("t", {"n": 1.5}), ("t", {"n": b"\x01"})],
    ),
    Case(
        "number_type",
        [table("t", {"x": {"type": ["number", "null"]}})],
        valid=[("t", {"x": 1.5}), ("t", {"x": 2}), ("t", {"x": "2.5"}), ("t", {"x": None})],
        violations=[("t", {"x": "abc"}), ("t", {"x": b"\x01"})],
    ),
    Case(
        "boolean",
        [table("t", {"flag": {"type": ["boolean", "null"]}})],
        valid=[("t", {"flag": True}), ("t", {"flag": 0}), ("t", {"flag": None})],
        violations=[("t", {"flag": 2}), ("t", {"flag": "yes"})],
    ),
    Case(
        "enum_string",
        [table("t", {"status": {"type": "string", "enum": ["draft", "it's done"]}})],
        valid=[("t", {"status": "draft"}), ("t", {"status": "it's done"})],
        violations=[("t", {"status": "Draft"}), ("t", {"status": "other"})],
    ),
    Case(
        "enum_integer",
        [table("t", {"level": {"type": "integer", "enum": [1, 2, 3]}})],
        valid=[("t", {"level": 1}), ("t", {"level": 3})],
        violations=[("t", {"level": 4}), ("t", {"level": 0})],
    ),
    Case(
        "minimum",
        [table("t", {"age": {"type": "integer", "minimum": 0}})],
        valid=[("t", {"age": 0}), ("t", {"age": None})],
        violations=[("t", {"age": -1})],
    ),
    Case(
        "exclusive_minimum",
        [table("t", {"price": {"type": "number", "exclusiveMinimum": 0}})],
        valid=[("t", {"price": 0.5})],
        violations=[("t", {"price": 0}), ("t", {"price": -0.5})],
    ),
    Case(
        "maximum",
        [table("t", {"score": {"type": "number", "maximum": 10}})],
        valid=[("t", {"score": 10})],
        violations=[("t", {"score": 10.5})],
    ),
    Case(
        "exclusive_maximum",
        [table("t", {"ratio": {"type": "number", "exclusiveMaximum": 1.5}})],
        valid=[("t", {"ratio": 1.49})],
        violations=[("t", {"ratio": 1.5})],
    ),
    Case(
        "multiple_of",
        [table("t", {"minutes": {"type": "integer", "multipleOf": 15}})],
        valid=[("t", {"minutes": 30}), ("t", {"minutes": -15})],
        violations=[("t", {"minutes": 20})],
    ),
    Case(
        "min_length",
        [table("t", {"code": {"type": "string", "minLength": 3}})],
        valid=[("t", {"code": "abc"})],
        violations=[("t", {"code": "ab"}), ("t", {"code": ""})],
    ),
    Case(
        "max_length",
        [table("t", {"code": {"type": "string", "maxLength": 3}})],
        # length() counts characters, as JSON Schema does, not bytes.
        valid=[("t", {"code": "ééé"})],
        violations=[("t", {"code": "abcd"})],
    ),
    Case(
        "json_object",
        [table("t", {"doc": {"type": ["object", "null"]}})],
        valid=[("t", {"doc": '{"a": 1}'}), ("t", {"doc": None})],
        violations=[("t", {"doc": "[1]"}), ("t", {"doc": "not json"}), ("t", {"doc": "1"})],
    ),
    Case(
        "json_array",
        [table("t", {"tags": {"type": "array"}}, required=["tags"])],
        valid=[("t", {"tags": '["a", "b"]'}), ("t", {"tags": "[]"})],
        violations=[("t", {"tags": "{}"}), ("t", {"tags": "[1,"})],
    ),
    Case(
        "decimal_text",
        [table("t", {"amount": {"type": "number", "format": "decimal"}})],
        valid=[("t", {"amount": "12.5"}), ("t", {"amount": "-3"}), ("t", {"amount": None})],
        violations=[
            ("t", {"amount": "1e5"}),
            ("t", {"amount": "1.2.3"}),
            ("t", {"amount": "--1"}),
            ("t", {"amount": "1-2"}),
            ("t", {"amount": ".5"}),
            ("t", {"amount": "5."}),
            ("t", {"amount": "abc"}),
        ],
    ),
    Case(
        "decimal_scale",
        [table("t", {"amount": {"type": "number", "format": "decimal", "multipleOf": 0.01}})],
        valid=[("t", {"amount": "1.25"}), ("t", {"amount": "7"})],
        violations=[("t", {"amount": "1.255"})],
    ),
    Case(
        "decimal_minimum",
        [table("t", {"amount": {"type": "number", "format": "decimal", "minimum": 0}})],
        valid=[("t", {"amount": "0"}), ("t", {"amount": "0.01"})],
        violations=[("t", {"amount": "-0.01"})],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_constraints_accept_valid_rows(case: Case, open_database: Any) -> None:
    connection = open_database(ddl_for(case.schemas))

    for table_name, row in case.valid:
        insert_row(connection, table_name, row)

    last_table = case.valid[-1][0]
    expected = sum(1 for name, _ in case.valid if name == last_table)
    count = connection.execute(f"SELECT count(*) FROM {_quote(last_table)}").fetchone()[0]
    assert count == expected


VIOLATIONS = [
    pytest.param(case, table_name, row, id=f"{case.name}-{position}")
    for case in CASES
    for position, (table_name, row) in enumerate(case.violations)
]


@pytest.mark.parametrize(("case", "table_name", "row"), VIOLATIONS)
def test_constraints_reject_violating_row(
    case: Case, table_name: str, row: dict[str, Any], open_database: Any
) -> None:
    connection = open_database(ddl_for(case.schemas))
    for valid_table, valid_row in case.valid:
        insert_row(connection, valid_table, valid_row)

    with pytest.raises(sqlite3.IntegrityError):
        insert_row(connection, table_name, row)


def test_check_constraints_have_deterministic_names() -> None:
    schema = table(
        "people",
        {
            "age": {"type": "integer", "minimum": 0, "exclusiveMaximum": 150},
            "name": {"type": "string", "minLength": 1, "maxLength": 80},
            "role": {"type": "string", "enum": ["a", "b"]},
            "active": {"type": "boolean"},
            "doc": {"type": "object"},
        },
    )

    create_table = json_schema_to_sql(schema)[0]

    for name in [
        "ck_people_age_minimum",
        "ck_people_age_exclusive_maximum",
        "ck_people_name_min_length",
        "ck_people_name_max_length",
        "ck_people_role_enum",
        "ck_people_active_boolean",
        "ck_people_doc_json",
    ]:
        assert f"CONSTRAINT {name} CHECK" in create_table, name


def test_ddl_for_dorm_style_schema() -> None:
    schema = table(
        "items",
        {
            "id": {"type": "integer", "x-dorm-primary-key": True, "x-dorm-auto-increment": True},
            "title": {"type": "string", "maxLength": 100, "x-dorm-index": True},
            "done": {"type": "boolean", "x-dorm-default": False},
            "list_id": {
                "type": "integer",
                "x-dorm-references": {"table": "lists", "column": "id", "onDelete": "CASCADE"},
            },
        },
        required=["title"],
    )

    statements = json_schema_to_sql(schema)

    assert statements == [
        "CREATE TABLE items (\n"
        "\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n"
        "\ttitle TEXT NOT NULL, \n"
        "\tdone BOOLEAN DEFAULT 0, \n"
        "\tlist_id INTEGER, \n"
        "\tCONSTRAINT ck_items_title_max_length CHECK (length(title) <= 100), \n"
        "\tCONSTRAINT ck_items_done_boolean CHECK (done IN (0, 1)), \n"
        "\tCONSTRAINT ck_items_list_id_type "
        "CHECK (list_id IS NULL OR typeof(list_id) = 'integer'), \n"
        "\tCONSTRAINT fk_items_list_id_lists FOREIGN KEY(list_id) "
        "REFERENCES lists (id) ON DELETE CASCADE\n"
        ")",
        "CREATE INDEX idx_items_title ON items (title)",
    ]


def test_ddl_if_not_exists_runs_twice(open_database: Any) -> None:
    schema = table("t", {"a": {"type": "integer", "x-dorm-index": True}})
    statements = json_schema_to_sql(schema, if_not_exists=True)

    connection = open_database(statements)
    for statement in statements:
        connection.execute(statement)

    assert [s.split(" (")[0] for s in statements] == [
        "CREATE TABLE IF NOT EXISTS t",
        "CREATE INDEX IF NOT EXISTS idx_t_a ON t",
    ]


def test_sql_and_table_give_same_ddl() -> None:
    from sqlalchemy.schema import CreateTable

    schema = table("t", {"a": {"type": "integer", "minimum": 1}})
    table_object = json_schema_to_table(schema, MetaData())

    compiled = str(CreateTable(table_object).compile(dialect=sqlite.dialect())).strip()

    assert json_schema_to_sql(schema)[0] == compiled


def test_auto_increment_never_reuses_ids(open_database: Any) -> None:
    schema = table(
        "t", {"id": {"type": "integer", "x-dorm-primary-key": True, "x-dorm-auto-increment": True}}
    )
    connection = open_database(json_schema_to_sql(schema))
    insert_row(connection, "t", {})
    insert_row(connection, "t", {})
    connection.execute("DELETE FROM t WHERE id = 2")

    insert_row(connection, "t", {})

    ids = [row[0] for row in connection.execute("SELECT id FROM t ORDER BY id")]
    assert ids == [1, 3]


@pytest.mark.parametrize(
    ("action", "expected"),
    [("CASCADE", []), ("SET NULL", [(None,)]), ("RESTRICT", "rejected")],
)
def test_on_delete_action(action: str, expected: Any, open_database: Any) -> None:
    child = table(
        "children",
        {
            "parent_id": {
                "type": "integer",
                "x-dorm-references": {"table": "parents", "column": "id", "onDelete": action},
            }
        },
    )
    connection = open_database(ddl_for([PARENTS, child]))
    insert_row(connection, "parents", {"id": 1})
    insert_row(connection, "children", {"parent_id": 1})

    if expected == "rejected":
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute("DELETE FROM parents WHERE id = 1")
        return
    connection.execute("DELETE FROM parents WHERE id = 1")
    assert connection.execute("SELECT parent_id FROM children").fetchall() == expected


def test_on_update_cascade(open_database: Any) -> None:
    child = table(
        "children",
        {
            "parent_code": {
                "type": "string",
                "x-dorm-references": {"table": "parents", "column": "code", "onUpdate": "cascade"},
            }
        },
    )
    connection = open_database(ddl_for([PARENTS, child]))
    insert_row(connection, "parents", {"id": 1, "code": "old"})
    insert_row(connection, "children", {"parent_code": "old"})

    connection.execute("UPDATE parents SET code = 'new'")

    assert connection.execute("SELECT parent_code FROM children").fetchall() == [("new",)]


HOSTILE = "it's'); DROP TABLE x; --"


def test_hostile_names_and_defaults_are_quoted(open_database: Any) -> None:
    schema = table(
        "order",
        {
            "select": {"type": "string", "x-dorm-primary-key": True},
            "user name": {"type": "string", "x-dorm-default": HOSTILE, "x-dorm-index": True},
            'say "hi"': {"type": "string", "enum": [HOSTILE, "plain"], "x-dorm-default": "plain"},
            "from": {"type": "integer", "x-dorm-default": -5},
        },
    )
    connection = open_database(["CREATE TABLE x (a INTEGER)", *json_schema_to_sql(schema)])

    insert_row(connection, "order", {"select": "k"})

    row = connection.execute(f"SELECT * FROM {_quote('order')}").fetchone()
    assert row == ("k", HOSTILE, "plain", -5)
    tables = connection.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
    assert ("x",) in tables


def test_hostile_enum_value_is_accepted_literally(open_database: Any) -> None:
    schema = table("t", {"s": {"type": "string", "enum": [HOSTILE]}})
    connection = open_database(json_schema_to_sql(schema))

    insert_row(connection, "t", {"s": HOSTILE})

    assert connection.execute("SELECT s FROM t").fetchone() == (HOSTILE,)


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("order", "select"),
        ("my table", "my column"),
        ('quote"d', "it's"),
        ("ünïcode", "名前"),
        ("a.b", "c.d"),
    ],
)
def test_unusual_identifiers_work(name: str, column: str, open_database: Any) -> None:
    schema = table(
        name,
        {
            column: {"type": "string", "minLength": 1, "x-dorm-unique": True, "x-dorm-index": True},
            "ref": {"type": "string", "x-dorm-references": {"table": name, "column": column}},
        },
    )
    connection = open_database(json_schema_to_sql(schema))
    insert_row(connection, name, {column: "v"})
    insert_row(connection, name, {column: "w", "ref": "v"})

    with pytest.raises(sqlite3.IntegrityError):
        insert_row(connection, name, {column: ""})


def test_defaults_of_every_kind(open_database: Any) -> None:
    schema = table(
        "t",
        {
            "id": {"type": "integer", "x-dorm-primary-key": True},
            "n": {"type": "number", "x-dorm-default": 1.5},
            "b": {"type": "boolean", "x-dorm-default": True},
            "d": {"type": "string", "format": "date", "x-dorm-default": "2024-02-29"},
            "dt": {
                "type": "string",
                "format": "date-time",
                "x-dorm-default": "2024-02-29T10:30:00",
            },
            "now": {
                "type": "string",
                "format": "date-time",
                "x-dorm-default": {"sql": "CURRENT_TIMESTAMP"},
            },
            "today": {
                "type": "string",
                "format": "date",
                "x-dorm-default": {"sql": "current_date"},
            },
            "doc": {"type": "object", "x-dorm-default": {"k": "it's"}},
            "money": {
                "type": "number",
                "format": "decimal",
                "multipleOf": 0.01,
                "x-dorm-default": "1.5",
            },
            "nothing": {"type": "string", "x-dorm-default": None},
        },
    )
    connection = open_database(json_schema_to_sql(schema))

    insert_row(connection, "t", {"id": 1})

    row = dict(
        zip(
            list(schema["properties"]),
            connection.execute("SELECT * FROM t").fetchone(),
            strict=True,
        )
    )
    assert row["n"] == 1.5
    assert row["b"] == 1
    assert row["d"] == "2024-02-29"
    assert row["dt"] == "2024-02-29 10:30:00.000000"
    assert datetime.datetime.fromisoformat(row["now"]).year >= 2024
    assert datetime.date.fromisoformat(row["today"]).year >= 2024
    assert row["doc"] == '{"k": "it\'s"}'
    assert row["money"] == "1.50"
    assert row["nothing"] is None


def test_table_round_trips_python_values(tmp_path: Path) -> None:
    metadata = MetaData()
    events = json_schema_to_table(
        table(
            "events",
            {
                "id": {"type": "integer", "x-dorm-primary-key": True},
                "at": {"type": "string", "format": "date-time"},
                "on": {"type": "string", "format": "date"},
                "doc": {"type": ["object", "null"]},
                "tags": {"type": "array"},
                "ok": {"type": "boolean"},
                "price": {"type": "number", "format": "decimal", "multipleOf": 0.01},
            },
        ),
        metadata,
    )
    engine = create_engine(f"sqlite:///{tmp_path / 'events.db'}")
    metadata.create_all(engine)
    values = {
        "id": 1,
        "at": datetime.datetime(2024, 5, 1, 12, 30),
        "on": datetime.date(2024, 5, 1),
        "doc": None,
        "tags": ["a", "b"],
        "ok": True,
        "price": decimal.Decimal("12345678901234567.89"),
    }

    with engine.begin() as connection:
        connection.execute(insert(events).values(values))
        stored = connection.execute(select(events)).mappings().one()
        raw_doc = connection.exec_driver_sql("SELECT doc FROM events").scalar_one()
    engine.dispose()

    assert dict(stored) == values
    assert raw_doc is None


def test_metadata_from_several_schemas_in_any_order(open_database: Any) -> None:
    child = table(
        "children",
        {
            "parent_id": {
                "type": "integer",
                "x-dorm-references": {"table": "parents", "column": "id"},
            }
        },
    )

    metadata = json_schemas_to_metadata([child, PARENTS])

    assert sorted(metadata.tables) == ["children", "parents"]


def _linked_sqlite_keywords() -> set[str]:
    library = ctypes.CDLL(_sqlite3.__file__)
    names = set()
    for position in range(library.sqlite3_keyword_count()):
        text = ctypes.c_char_p()
        length = ctypes.c_int()
        library.sqlite3_keyword_name(position, ctypes.byref(text), ctypes.byref(length))
        names.add(ctypes.string_at(text, length.value).decode().lower())
    return names


def test_keyword_list_covers_linked_sqlite() -> None:
    missing = _linked_sqlite_keywords() - SQLITE_KEYWORDS

    assert missing == set()


@pytest.mark.parametrize("keyword", sorted(SQLITE_KEYWORDS))
def test_sqlite_keyword_as_table_and_column(keyword: str, tmp_path: Path) -> None:
    schema = table(
        keyword,
        {
            keyword: {"type": "string", "x-dorm-default": keyword, "x-dorm-index": True},
            "other": {"type": "string"},
        },
    )
    metadata = MetaData()
    keyword_table = json_schema_to_table(schema, metadata)
    engine = create_engine(f"sqlite:///{tmp_path / 'k.db'}")

    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(keyword_table).values(other="x"))
        stored = connection.execute(select(keyword_table)).one()
    engine.dispose()

    assert tuple(stored) == (keyword, "x")


@pytest.mark.parametrize("keyword", sorted(SQLITE_KEYWORDS))
def test_sqlite_keyword_as_index_name(keyword: str, open_database: Any) -> None:
    schema = table("holder", {"a": {"type": "string", "x-dorm-index": keyword.upper()}})
    connection = open_database(json_schema_to_sql(schema))

    names = connection.execute("SELECT name FROM sqlite_schema WHERE type = 'index'").fetchall()

    assert names == [(keyword.upper(),)]


def test_render_schema_file_single_schema(tmp_path: Path) -> None:
    schema = table("t", {"a": {"type": "string", "x-dorm-index": True}})
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema), encoding="utf-8")

    script = render_schema_file(path)

    assert script == ";\n".join(json_schema_to_sql(schema)) + ";\n"


def test_render_schema_file_runs_as_script(tmp_path: Path) -> None:
    child = table(
        "children",
        {
            "id": {"type": "integer", "x-dorm-primary-key": True},
            "parent_id": {
                "type": "integer",
                "x-dorm-references": {"table": "parents", "column": "id", "onDelete": "CASCADE"},
            },
            "note": {"type": "string", "x-dorm-default": HOSTILE},
        },
    )
    path = tmp_path / "schema.json"
    path.write_text(json.dumps([child, PARENTS]), encoding="utf-8")
    connection = sqlite3.connect(tmp_path / "script.db")

    connection.executescript(render_schema_file(path, if_not_exists=True))
    connection.execute("INSERT INTO parents (id) VALUES (1)")
    connection.execute("INSERT INTO children (id, parent_id) VALUES (1, 1)")
    note = connection.execute("SELECT note FROM children").fetchone()[0]
    tables = connection.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
    connection.close()

    assert note == HOSTILE
    assert sorted(tables) == [("children",), ("parents",)]


def test_reference_to_unknown_table_still_renders() -> None:
    schema = table(
        "t",
        {"owner": {"type": "string", "x-dorm-references": {"table": "users", "column": "login"}}},
    )

    create_table = json_schema_to_sql(schema)[0]

    assert "FOREIGN KEY(owner) REFERENCES users (login)" in create_table

"""JSON Schema tables: schema -> table -> schema round trips and the canonical form."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dorm_sqlalchemy.json_schema import (
    ExactDecimal,
    JsonSchemaError,
    json_schema_to_sql,
    json_schema_to_table,
    normalize_json_schema,
    table_to_json_schema,
)

HOSTILE = "it's'); DROP TABLE x; --"

ROUND_TRIP_SCHEMAS = {
    "dorm_style": {
        "$id": "items",
        "type": "object",
        "title": "Items",
        "required": ["id"],
        "properties": {
            "id": {"type": "string", "x-dorm-primary-key": True, "x-dorm-unique": True},
            "description": {"type": "string"},
            "created_at": {
                "type": "string",
                "format": "date-time",
                "x-dorm-default": {"sql": "CURRENT_TIMESTAMP"},
            },
        },
    },
    "everything": {
        "$id": "users",
        "type": "object",
        "description": "People who can sign in",
        "required": ["email", "balance"],
        "properties": {
            "id": {"type": "integer", "x-dorm-primary-key": True, "x-dorm-auto-increment": True},
            "email": {
                "type": "string",
                "description": "Login",
                "minLength": 3,
                "maxLength": 254,
                "x-dorm-unique": True,
            },
            "age": {"type": ["integer", "null"], "minimum": 0, "exclusiveMaximum": 150},
            "level": {"type": "integer", "enum": [1, 2, 3], "multipleOf": 1},
            "score": {"type": "number", "exclusiveMinimum": -1.5, "maximum": 1e6},
            "role": {"type": "string", "enum": ["admin", "it's"], "x-dorm-default": "it's"},
            "active": {"type": "boolean", "x-dorm-default": False},
            "settings": {"anyOf": [{"type": "object"}, {"type": "null"}], "x-dorm-default": {"a": [1]}},
            "tags": {"type": "array", "x-dorm-default": []},
            "balance": {
                "type": "number",
                "format": "decimal",
                "multipleOf": 0.01,
                "minimum": 0,
                "x-dorm-default": "0",
            },
            "born": {"type": "string", "format": "date", "x-dorm-default": "2000-01-01"},
            "seen": {"type": "string", "format": "date-time", "x-dorm-default": "2024-01-01T10:00:00.5"},
            "wakes": {"type": "string", "format": "time", "x-dorm-default": {"sql": "CURRENT_TIME"}},
            "manager": {
                "type": "integer",
                "x-dorm-index": True,
                "x-dorm-references": {"table": "users", "column": "id", "onDelete": "set null", "onUpdate": "CASCADE"},
            },
            "slug": {"type": "string", "x-dorm-index": {"name": "users by slug", "unique": True}},
            "nickname": {"type": "string", "x-dorm-index": "users_nick", "x-dorm-default": HOSTILE},
            "note": {"type": "string", "x-dorm-default": None},
        },
        "x-dorm-index": [{"columns": ["age", "level"]}, {"columns": ["email", "role"], "unique": True, "name": "ux"}],
    },
    "composite": {
        "$id": "memberships",
        "type": "object",
        "properties": {
            "org": {"type": "string"},
            "user": {"type": "integer"},
            "team": {"type": "string"},
            "rank": {"type": "integer"},
        },
        "x-dorm-primary-key": ["org", "user"],
        "x-dorm-unique": [["org", "team", "rank"], ["team"]],
        "x-dorm-index": [{"columns": ["team"]}, {"columns": ["team"], "name": "team again", "unique": True}],
    },
    "hostile_names": {
        "$id": "order",
        "type": "object",
        "properties": {
            "select": {"type": "string", "x-dorm-primary-key": True},
            "user name": {"type": "string", "x-dorm-references": {"table": "a.b", "column": "c d"}},
            'say "hi"': {"type": "string", "enum": [HOSTILE]},
            "nothing": {"type": "integer", "x-dorm-index": True},
        },
    },
}  # fmt: skip


@pytest.mark.parametrize("schema", ROUND_TRIP_SCHEMAS.values(), ids=ROUND_TRIP_SCHEMAS.keys())
def test_round_trip_schema_is_stable(schema: dict[str, Any]) -> None:
    first = table_to_json_schema(json_schema_to_table(schema, MetaData()))

    second = table_to_json_schema(json_schema_to_table(first, MetaData()))

    assert second == first


@pytest.mark.parametrize("schema", ROUND_TRIP_SCHEMAS.values(), ids=ROUND_TRIP_SCHEMAS.keys())
def test_round_trip_ddl_is_identical(schema: dict[str, Any]) -> None:
    normalized = normalize_json_schema(schema)

    assert json_schema_to_sql(normalized) == json_schema_to_sql(schema)


@pytest.mark.parametrize("schema", ROUND_TRIP_SCHEMAS.values(), ids=ROUND_TRIP_SCHEMAS.keys())
def test_normal_form_survives_json(schema: dict[str, Any]) -> None:
    normalized = normalize_json_schema(schema)

    assert json.loads(json.dumps(normalized)) == normalized


def test_normal_form_of_dorm_style_schema() -> None:
    normalized = normalize_json_schema(ROUND_TRIP_SCHEMAS["dorm_style"])

    assert normalized == {
        "$id": "items",
        "type": "object",
        "properties": {
            "id": {"type": "string", "x-dorm-primary-key": True, "x-dorm-unique": True},
            "description": {"type": ["string", "null"]},
            "created_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "x-dorm-default": {"sql": "CURRENT_TIMESTAMP"},
            },
        },
        "required": ["id"],
        "additionalProperties": False,
    }


def test_normal_form_of_values() -> None:
    normalized = normalize_json_schema(ROUND_TRIP_SCHEMAS["everything"])
    properties = normalized["properties"]

    assert properties["balance"]["x-dorm-default"] == "0.00"
    assert properties["seen"]["x-dorm-default"] == "2024-01-01T10:00:00.500000"
    assert properties["manager"]["x-dorm-references"] == {
        "table": "users",
        "column": "id",
        "onDelete": "SET NULL",
        "onUpdate": "CASCADE",
    }
    assert properties["slug"]["x-dorm-index"] == {"name": "users by slug", "unique": True}
    assert properties["nickname"]["x-dorm-index"] == "users_nick"
    assert properties["settings"] == {"type": ["object", "null"], "x-dorm-default": {"a": [1]}}
    assert normalized["description"] == "People who can sign in"
    assert normalized["x-dorm-index"] == [
        {"columns": ["age", "level"]},
        {"columns": ["email", "role"], "name": "ux", "unique": True},
    ]


def test_second_column_index_stays_table_level() -> None:
    normalized = normalize_json_schema(ROUND_TRIP_SCHEMAS["composite"])

    assert "x-dorm-index" not in normalized["properties"]["team"]
    assert normalized["x-dorm-index"] == [
        {"columns": ["team"]},
        {"columns": ["team"], "name": "team again", "unique": True},
    ]


def _schema(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"$id": "t", "type": "object", "properties": properties, **extra}


EQUIVALENT_FORMS = [
    (
        "nullable_union",
        _schema({"a": {"type": ["null", "string"]}}),
        _schema({"a": {"anyOf": [{"type": "null"}, {"type": "string"}]}}),
    ),
    (
        "not_required_is_nullable",
        _schema({"a": {"type": "string"}}),
        _schema({"a": {"type": ["string", "null"]}}),
    ),
    (
        "primary_key_level",
        _schema({"a": {"type": "integer"}}, **{"x-dorm-primary-key": ["a"]}),
        _schema({"a": {"type": "integer", "x-dorm-primary-key": True}}),
    ),
    (
        "unique_level",
        _schema({"a": {"type": "string"}}, **{"x-dorm-unique": [["a"]]}),
        _schema({"a": {"type": "string", "x-dorm-unique": True}}),
    ),
    (
        "index_level",
        _schema({"a": {"type": "string"}}, **{"x-dorm-index": [{"columns": ["a"], "name": "n"}]}),
        _schema({"a": {"type": "string", "x-dorm-index": "n"}}),
    ),
    (
        "index_default_name",
        _schema({"a": {"type": "string", "x-dorm-index": {"name": "idx_t_a"}}}),
        _schema({"a": {"type": "string", "x-dorm-index": True}}),
    ),
    (
        "annotations_dropped",
        _schema({"a": {"type": "string", "title": "A", "examples": ["x"], "$comment": "c"}}, title="T"),
        _schema({"a": {"type": "string"}}),
    ),
    (
        "action_case",
        _schema({"a": {"type": "integer", "x-dorm-references": {"table": "u", "column": "id", "onDelete": "cascade"}}}),
        _schema({"a": {"type": "integer", "x-dorm-references": {"table": "u", "column": "id", "onDelete": "CASCADE"}}}),
    ),
    (
        "false_flags",
        _schema({"a": {"type": "string", "x-dorm-unique": False, "x-dorm-index": False, "x-dorm-primary-key": False}}),
        _schema({"a": {"type": "string"}}),
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("left", "right"),
    [pytest.param(left, right, id=name) for name, left, right in EQUIVALENT_FORMS],
)
def test_equivalent_forms_normalize_alike(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert normalize_json_schema(left) == normalize_json_schema(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [pytest.param(left, right, id=name) for name, left, right in EQUIVALENT_FORMS],
)
def test_equivalent_forms_give_same_ddl(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert json_schema_to_sql(left) == json_schema_to_sql(right)


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), index=True)
    email: Mapped[str | None] = mapped_column(unique=True)
    active: Mapped[bool] = mapped_column(server_default=text("1"))
    rating: Mapped[float] = mapped_column(Float, server_default="2.5")
    joined: Mapped[Any] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))
    kind: Mapped[str] = mapped_column(Enum("person", "group", native_enum=False))
    bio: Mapped[str | None] = mapped_column(Text, server_default="it''s")
    balance: Mapped[Any] = mapped_column(ExactDecimal(2), server_default="0.00")


class Book(Base):
    __tablename__ = "books"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id", ondelete="CASCADE"))


def test_orm_model_to_schema() -> None:
    schema = table_to_json_schema(Author.__table__)  # type: ignore[arg-type]

    assert schema == {
        "$id": "authors",
        "type": "object",
        "properties": {
            "id": {"type": "integer", "x-dorm-primary-key": True},
            "name": {"type": "string", "x-dorm-index": "ix_authors_name"},
            "email": {"type": ["string", "null"], "x-dorm-unique": True},
            "active": {"type": "boolean", "x-dorm-default": True},
            "rating": {"type": "number", "x-dorm-default": 2.5},
            "joined": {
                "type": "string",
                "format": "date-time",
                "x-dorm-default": {"sql": "CURRENT_TIMESTAMP"},
            },
            "kind": {"type": "string", "enum": ["person", "group"]},
            "bio": {"type": ["string", "null"], "x-dorm-default": "it''s"},
            "balance": {
                "type": "number",
                "format": "decimal",
                "multipleOf": 0.01,
                "x-dorm-default": "0.00",
            },
        },
        "required": ["id", "name", "active", "rating", "joined", "kind", "balance"],
        "additionalProperties": False,
    }


def test_orm_foreign_key_to_schema() -> None:
    schema = table_to_json_schema(Book.__table__)  # type: ignore[arg-type]

    assert schema["properties"]["author_id"]["x-dorm-references"] == {
        "table": "authors",
        "column": "id",
        "onDelete": "CASCADE",
    }


def test_orm_schema_builds_a_table() -> None:
    schema = table_to_json_schema(Author.__table__)  # type: ignore[arg-type]

    rebuilt = table_to_json_schema(json_schema_to_table(schema, MetaData()))

    assert rebuilt == schema


def _unsupported_tables() -> list[Any]:
    metadata = MetaData()
    return [
        pytest.param(
            Table("a", metadata, Column("price", Numeric(10, 2))),
            "/properties/price/type",
            id="numeric",
        ),
        pytest.param(
            Table("b", metadata, Column("data", LargeBinary)), "/properties/data/type", id="binary"
        ),
        pytest.param(
            Table("c", metadata, Column("doc", JSON)),
            "/properties/doc/type",
            id="json_without_kind",
        ),
        pytest.param(
            Table("d", metadata, Column("x", Integer), CheckConstraint("x > 0", name="positive")),
            "",
            id="foreign_check",
        ),
        pytest.param(
            Table(
                "e",
                metadata,
                Column("a", Integer),
                Column("b", Integer),
                ForeignKeyConstraint(["a", "b"], ["p.a", "p.b"]),
            ),
            "",
            id="composite_foreign_key",
        ),
        pytest.param(
            Table("f", metadata, Column("x", Integer), Index("f_lower", func.abs(text("x")))),
            "/x-dorm-index",
            id="expression_index",
        ),
        pytest.param(
            Table(
                "g",
                metadata,
                Column("x", Integer),
                Index("g_part", "x", sqlite_where=text("x > 0")),
            ),
            "/x-dorm-index",
            id="partial_index",
        ),
        pytest.param(
            Table("h", metadata, Column("at", DateTime, server_default=func.now())),
            "/properties/at/x-dorm-default",
            id="function_default",
        ),
        pytest.param(
            Table("i", metadata, Column("n", Integer, server_default="many")),
            "/properties/n/x-dorm-default",
            id="bad_text_default",
        ),
        pytest.param(
            Table("j", metadata, Column("b", Boolean, server_default=text("maybe"))),
            "/properties/b/x-dorm-default",
            id="bad_boolean_default",
        ),
    ]


@pytest.mark.parametrize(("unsupported", "pointer"), _unsupported_tables())
def test_unsupported_table_raises(unsupported: Table, pointer: str) -> None:
    with pytest.raises(JsonSchemaError) as caught:
        table_to_json_schema(unsupported)

    assert caught.value.pointer == pointer

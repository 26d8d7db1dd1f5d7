"""JSON Schema tables: every invalid or unsupported schema raises with the JSON Pointer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

from dorm_sqlalchemy.errors import DormError
from dorm_sqlalchemy.json_schema import (
    JsonSchemaError,
    json_schema_to_sql,
    json_schema_to_table,
    json_schemas_to_metadata,
    render_schema_file,
)


def table(properties: Any, **extra: Any) -> dict[str, Any]:
    return {"$id": "t", "type": "object", "properties": properties, **extra}


def column(**keywords: Any) -> dict[str, Any]:
    """Return a table with one column ``c`` described by ``keywords``."""
    return table({"c": keywords})


INTEGER_PK = {"type": "integer", "x-dorm-primary-key": True}

INVALID = [
    # The table object.
    ("not_an_object", ["t"], ""),
    ("missing_id", {"type": "object", "properties": {"a": {"type": "string"}}}, ""),
    ("id_not_string", {**table({"a": {"type": "string"}}), "$id": 5}, "/$id"),
    ("id_empty", {**table({"a": {"type": "string"}}), "$id": ""}, "/$id"),
    ("id_reserved_prefix", {**table({"a": {"type": "string"}}), "$id": "SQLite_x"}, "/$id"),
    ("id_nul", {**table({"a": {"type": "string"}}), "$id": "a\x00b"}, "/$id"),
    ("type_missing", {"$id": "t", "properties": {"a": {"type": "string"}}}, "/type"),
    ("type_not_object", {**table({"a": {"type": "string"}}), "type": "array"}, "/type"),
    ("properties_missing", {"$id": "t", "type": "object"}, "/properties"),
    ("properties_empty", table({}), "/properties"),
    ("properties_list", table([{"type": "string"}]), "/properties"),
    ("unknown_table_keyword", table({"a": {"type": "string"}}, indexes=[]), "/indexes"),
    ("definitions", table({"a": {"type": "string"}}, definitions={}), "/definitions"),
    ("additional_properties_true", table({"a": {"type": "string"}}, additionalProperties=True), "/additionalProperties"),
    ("required_not_list", table({"a": {"type": "string"}}, required="a"), "/required"),
    ("required_unknown", table({"a": {"type": "string"}}, required=["a", "b"]), "/required/1"),
    ("required_twice", table({"a": {"type": "string"}}, required=["a", "a"]), "/required/1"),
    ("description_not_string", table({"a": {"type": "string"}}, description=1), "/description"),
    ("column_name_empty", table({"": {"type": "string"}}), "/properties/"),
    ("column_names_fold_equal", table({"Name": {"type": "string"}, "name": {"type": "string"}}), "/properties/name"),
    ("pointer_escapes_slash", table({"a/b": {"type": "strin"}}), "/properties/a~1b/type"),
    ("pointer_escapes_tilde", table({"a~b": {"type": "strin"}}), "/properties/a~0b/type"),
    # Types.
    ("property_not_object", table({"c": "string"}), "/properties/c"),
    ("type_absent", column(description="x"), "/properties/c"),
    ("type_unknown", column(type="text"), "/properties/c/type"),
    ("type_unknown_in_list", column(type=["string", "text"]), "/properties/c/type/1"),
    ("type_two_column_types", column(type=["string", "integer"]), "/properties/c/type"),
    ("type_only_null", column(type=["null"]), "/properties/c/type"),
    ("type_listed_twice", column(type=["string", "string"]), "/properties/c/type"),
    ("type_empty_list", column(type=[]), "/properties/c/type"),
    ("required_but_nullable", table({"c": {"type": ["string", "null"]}}, required=["c"]), "/properties/c/type"),
    ("format_unknown", column(type="string", format="email"), "/properties/c/format"),
    ("format_on_integer", column(type="integer", format="date"), "/properties/c/format"),
    ("format_decimal_on_string", column(type="string", format="decimal"), "/properties/c/format"),
    # Keywords that are not supported.
    ("pattern", column(type="string", pattern="^a"), "/properties/c/pattern"),
    ("json_schema_default", column(type="string", default="a"), "/properties/c/default"),
    ("const", column(type="string", const="a"), "/properties/c/const"),
    ("items", column(type="array", items={"type": "string"}), "/properties/c/items"),
    ("nested_properties", column(type="object", properties={}), "/properties/c/properties"),
    ("one_of", column(oneOf=[{"type": "string"}]), "/properties/c/oneOf"),
    ("ref", column(**{"$ref": "#/x"}), "/properties/c/$ref"),
    ("dorm_typo", column(type="integer", **{"x-dorm-primarykey": True}), "/properties/c/x-dorm-primarykey"),
    ("unknown_extension", column(type="integer", **{"x-other": 1}), "/properties/c/x-other"),
    # anyOf.
    ("any_of_not_list", column(anyOf={"type": "string"}), "/properties/c/anyOf"),
    ("any_of_without_null", column(anyOf=[{"type": "string"}, {"type": "integer"}]), "/properties/c/anyOf"),
    ("any_of_three", column(anyOf=[{"type": "string"}, {"type": "null"}, {"type": "null"}]), "/properties/c/anyOf"),
    ("any_of_nested", column(anyOf=[{"anyOf": []}, {"type": "null"}]), "/properties/c/anyOf/0"),
    ("any_of_keyword_twice", column(type="string", anyOf=[{"type": "string"}, {"type": "null"}]), "/properties/c/anyOf/0/type"),
    ("any_of_branch_keyword", column(anyOf=[{"type": "integer", "minimum": "0"}, {"type": "null"}]), "/properties/c/anyOf/0/minimum"),
    ("any_of_null_first", column(anyOf=[{"type": "null"}, {"type": "integer", "maximum": None}]), "/properties/c/anyOf/1/maximum"),
    # Validation keywords.
    ("minimum_not_number", column(type="integer", minimum="0"), "/properties/c/minimum"),
    ("minimum_boolean", column(type="integer", minimum=True), "/properties/c/minimum"),
    ("minimum_not_finite", column(type="number", minimum=float("inf")), "/properties/c/minimum"),
    ("minimum_on_string", column(type="string", minimum=0), "/properties/c/minimum"),
    ("maximum_on_boolean", column(type="boolean", maximum=1), "/properties/c/maximum"),
    ("minimum_above_maximum", column(type="integer", minimum=5, maximum=4), "/properties/c/minimum"),
    ("exclusive_bounds_equal", column(type="number", exclusiveMinimum=1, maximum=1), "/properties/c/exclusiveMinimum"),
    ("min_length_negative", column(type="string", minLength=-1), "/properties/c/minLength"),
    ("max_length_float", column(type="string", maxLength=2.5), "/properties/c/maxLength"),
    ("min_length_above_max", column(type="string", minLength=3, maxLength=2), "/properties/c/minLength"),
    ("length_on_integer", column(type="integer", maxLength=3), "/properties/c/maxLength"),
    ("length_on_date", column(type="string", format="date", maxLength=3), "/properties/c/maxLength"),
    ("enum_empty", column(type="string", enum=[]), "/properties/c/enum"),
    ("enum_not_list", column(type="string", enum="a"), "/properties/c/enum"),
    ("enum_wrong_type", column(type="string", enum=["a", 1]), "/properties/c/enum/1"),
    ("enum_null", column(type=["string", "null"], enum=[None, "a"]), "/properties/c/enum/0"),
    ("enum_twice", column(type="integer", enum=[1, 1]), "/properties/c/enum/1"),
    ("enum_integer_too_large", column(type="integer", enum=[2**63]), "/properties/c/enum/0"),
    ("enum_on_object", column(type="object", enum=[{}]), "/properties/c/enum"),
    ("multiple_of_on_number", column(type="number", multipleOf=0.01), "/properties/c/multipleOf"),
    ("multiple_of_zero", column(type="integer", multipleOf=0), "/properties/c/multipleOf"),
    ("multiple_of_fraction_on_integer", column(type="integer", multipleOf=0.5), "/properties/c/multipleOf"),
    ("multiple_of_decimal_not_power_of_ten", column(type="number", format="decimal", multipleOf=0.05), "/properties/c/multipleOf"),
    ("multiple_of_decimal_above_one", column(type="number", format="decimal", multipleOf=10), "/properties/c/multipleOf"),
    # Primary keys and auto-increment.
    ("primary_key_not_boolean", column(type="integer", **{"x-dorm-primary-key": "yes"}), "/properties/c/x-dorm-primary-key"),
    ("two_property_primary_keys", table({"a": INTEGER_PK, "b": INTEGER_PK}), "/properties/b/x-dorm-primary-key"),
    ("primary_key_both_levels", table({"a": INTEGER_PK}, **{"x-dorm-primary-key": ["a"]}), "/properties/a/x-dorm-primary-key"),
    ("table_primary_key_missing_column", table({"a": {"type": "integer"}}, **{"x-dorm-primary-key": ["a", "b"]}), "/x-dorm-primary-key/1"),
    ("table_primary_key_empty", table({"a": {"type": "integer"}}, **{"x-dorm-primary-key": []}), "/x-dorm-primary-key"),
    ("table_primary_key_string", table({"a": {"type": "integer"}}, **{"x-dorm-primary-key": "a"}), "/x-dorm-primary-key"),
    ("primary_key_nullable", table({"a": {"type": ["integer", "null"], "x-dorm-primary-key": True}}), "/properties/a/type"),
    ("primary_key_default_null", table({"a": {"type": "integer", "x-dorm-primary-key": True, "x-dorm-default": None}}), "/properties/a/x-dorm-default"),
    ("auto_increment_on_string", column(type="string", **{"x-dorm-primary-key": True, "x-dorm-auto-increment": True}), "/properties/c/x-dorm-auto-increment"),
    ("auto_increment_without_key", column(type="integer", **{"x-dorm-auto-increment": True}), "/properties/c/x-dorm-auto-increment"),
    ("auto_increment_composite_key", table({"a": {"type": "integer", "x-dorm-auto-increment": True}, "b": {"type": "integer"}}, **{"x-dorm-primary-key": ["a", "b"]}), "/properties/a/x-dorm-auto-increment"),
    # Unique constraints and indexes.
    ("unique_not_boolean", column(type="string", **{"x-dorm-unique": 1}), "/properties/c/x-dorm-unique"),
    ("table_unique_flat_list", table({"a": {"type": "string"}}, **{"x-dorm-unique": ["a"]}), "/x-dorm-unique/0"),
    ("table_unique_unknown_column", table({"a": {"type": "string"}}, **{"x-dorm-unique": [["a", "b"]]}), "/x-dorm-unique/0/1"),
    ("table_unique_twice", table({"a": {"type": "string"}, "b": {"type": "string"}}, **{"x-dorm-unique": [["a", "b"], ["a", "b"]]}), "/x-dorm-unique/1"),
    ("table_unique_repeats_property", table({"a": {"type": "string", "x-dorm-unique": True}}, **{"x-dorm-unique": [["a"]]}), "/x-dorm-unique/0"),
    ("index_number", column(type="string", **{"x-dorm-index": 1}), "/properties/c/x-dorm-index"),
    ("index_name_empty", column(type="string", **{"x-dorm-index": ""}), "/properties/c/x-dorm-index"),
    ("index_name_reserved", column(type="string", **{"x-dorm-index": "sqlite_ix"}), "/properties/c/x-dorm-index"),
    ("index_unknown_keyword", column(type="string", **{"x-dorm-index": {"where": "x"}}), "/properties/c/x-dorm-index/where"),
    ("index_unique_not_boolean", column(type="string", **{"x-dorm-index": {"unique": "yes"}}), "/properties/c/x-dorm-index/unique"),
    ("table_index_not_list", table({"a": {"type": "string"}}, **{"x-dorm-index": {"columns": ["a"]}}), "/x-dorm-index"),
    ("table_index_without_columns", table({"a": {"type": "string"}}, **{"x-dorm-index": [{"name": "i"}]}), "/x-dorm-index/0"),
    ("table_index_unknown_column", table({"a": {"type": "string"}}, **{"x-dorm-index": [{"columns": ["b"]}]}), "/x-dorm-index/0/columns/0"),
    ("table_index_name_clash", table({"a": {"type": "string", "x-dorm-index": "i"}}, **{"x-dorm-index": [{"columns": ["a"], "name": "I"}]}), "/x-dorm-index/0"),
    ("index_named_like_table", table({"a": {"type": "string", "x-dorm-index": "T"}}), "/properties/a/x-dorm-index"),
    # Foreign keys.
    ("reference_not_object", column(type="integer", **{"x-dorm-references": "users.id"}), "/properties/c/x-dorm-references"),
    ("reference_without_column", column(type="integer", **{"x-dorm-references": {"table": "users"}}), "/properties/c/x-dorm-references"),
    ("reference_unknown_keyword", column(type="integer", **{"x-dorm-references": {"table": "u", "column": "id", "on_delete": "CASCADE"}}), "/properties/c/x-dorm-references/on_delete"),
    ("reference_bad_action", column(type="integer", **{"x-dorm-references": {"table": "u", "column": "id", "onDelete": "DROP TABLE u"}}), "/properties/c/x-dorm-references/onDelete"),
    ("reference_action_not_string", column(type="integer", **{"x-dorm-references": {"table": "u", "column": "id", "onUpdate": 1}}), "/properties/c/x-dorm-references/onUpdate"),
    ("reference_from_object", column(type="object", **{"x-dorm-references": {"table": "u", "column": "id"}}), "/properties/c/x-dorm-references"),
    ("set_null_on_not_null", table({"c": {"type": "integer", "x-dorm-references": {"table": "u", "column": "id", "onDelete": "SET NULL"}}}, required=["c"]), "/properties/c/x-dorm-references/onDelete"),
    ("set_default_without_default", table({"c": {"type": "integer", "x-dorm-references": {"table": "u", "column": "id", "onUpdate": "SET DEFAULT"}}}, required=["c"]), "/properties/c/x-dorm-references/onUpdate"),
    ("self_reference_missing_column", table({"id": INTEGER_PK, "parent": {"type": "integer", "x-dorm-references": {"table": "t", "column": "ident"}}}), "/properties/parent/x-dorm-references/column"),
    ("self_reference_not_unique", table({"id": INTEGER_PK, "code": {"type": "string"}, "parent": {"type": "string", "x-dorm-references": {"table": "t", "column": "code"}}}), "/properties/parent/x-dorm-references/column"),
    # Defaults.
    ("default_wrong_type", column(type="integer", **{"x-dorm-default": "5"}), "/properties/c/x-dorm-default"),
    ("default_boolean_on_integer", column(type="integer", **{"x-dorm-default": True}), "/properties/c/x-dorm-default"),
    ("default_integer_on_boolean", column(type="boolean", **{"x-dorm-default": 1}), "/properties/c/x-dorm-default"),
    ("default_nan", column(type="number", **{"x-dorm-default": float("nan")}), "/properties/c/x-dorm-default"),
    ("default_nul_character", column(type="string", **{"x-dorm-default": "a\x00"}), "/properties/c/x-dorm-default"),
    ("default_null_on_required", table({"c": {"type": "string", "x-dorm-default": None}}, required=["c"]), "/properties/c/x-dorm-default"),
    ("default_breaks_enum", column(type="string", enum=["a"], **{"x-dorm-default": "b"}), "/properties/c/x-dorm-default"),
    ("default_breaks_minimum", column(type="integer", minimum=1, **{"x-dorm-default": 0}), "/properties/c/x-dorm-default"),
    ("default_breaks_max_length", column(type="string", maxLength=1, **{"x-dorm-default": "ab"}), "/properties/c/x-dorm-default"),
    ("default_breaks_multiple_of", column(type="integer", multipleOf=5, **{"x-dorm-default": 3}), "/properties/c/x-dorm-default"),
    ("default_sql_not_allowed", column(type="string", **{"x-dorm-default": {"sql": "random()"}}), "/properties/c/x-dorm-default/sql"),
    ("default_sql_injection", column(type="string", **{"x-dorm-default": {"sql": "1); DROP TABLE t; --"}}), "/properties/c/x-dorm-default/sql"),
    ("default_sql_on_integer", column(type="integer", **{"x-dorm-default": {"sql": "CURRENT_TIMESTAMP"}}), "/properties/c/x-dorm-default/sql"),
    ("default_sql_wrong_kind", column(type="string", format="date", **{"x-dorm-default": {"sql": "CURRENT_TIMESTAMP"}}), "/properties/c/x-dorm-default/sql"),
    ("default_sql_extra_key", column(type="string", **{"x-dorm-default": {"sql": "CURRENT_DATE", "x": 1}}), "/properties/c/x-dorm-default"),
    ("default_object_on_string", column(type="string", **{"x-dorm-default": {"a": 1}}), "/properties/c/x-dorm-default"),
    ("default_array_on_object", column(type="object", **{"x-dorm-default": [1]}), "/properties/c/x-dorm-default"),
    ("default_sql_on_object", column(type="object", **{"x-dorm-default": {"sql": "CURRENT_DATE"}}), "/properties/c/x-dorm-default/sql"),
    ("default_literal_current_timestamp", column(type="string", format="date-time", **{"x-dorm-default": "CURRENT_TIMESTAMP"}), "/properties/c/x-dorm-default"),
    ("default_bad_date", column(type="string", format="date", **{"x-dorm-default": "2024-02-30"}), "/properties/c/x-dorm-default"),
    ("default_time_zone", column(type="string", format="date-time", **{"x-dorm-default": "2024-01-01T00:00:00+02:00"}), "/properties/c/x-dorm-default"),
    ("default_decimal_too_precise", column(type="number", format="decimal", multipleOf=0.01, **{"x-dorm-default": "1.005"}), "/properties/c/x-dorm-default"),
    ("default_decimal_not_number", column(type="number", format="decimal", **{"x-dorm-default": "ten"}), "/properties/c/x-dorm-default"),
    ("default_decimal_below_minimum", column(type="number", format="decimal", minimum=0, **{"x-dorm-default": "-0.5"}), "/properties/c/x-dorm-default"),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "pointer"), [pytest.param(s, p, id=i) for i, s, p in INVALID])
def test_invalid_schema_raises_with_pointer(schema: Any, pointer: str) -> None:
    with pytest.raises(JsonSchemaError) as caught:
        json_schema_to_sql(schema)

    assert caught.value.pointer == pointer


@pytest.mark.parametrize(("schema", "pointer"), [pytest.param(s, p, id=i) for i, s, p in INVALID])
def test_error_message_names_pointer_and_fix(schema: Any, pointer: str) -> None:
    with pytest.raises(JsonSchemaError) as caught:
        json_schema_to_sql(schema)

    message = str(caught.value)
    assert f"at {pointer or 'the schema root'}:" in message
    assert message.endswith(caught.value.fix)
    assert caught.value.fix[:1].isupper()


def test_error_is_dorm_error_and_value_error() -> None:
    with pytest.raises(JsonSchemaError) as caught:
        json_schema_to_sql(column(type="text"))

    assert isinstance(caught.value, DormError)
    assert isinstance(caught.value, ValueError)


def test_message_for_unknown_type() -> None:
    with pytest.raises(JsonSchemaError) as caught:
        json_schema_to_sql(column(type="text"))

    assert str(caught.value) == (
        "invalid JSON Schema at /properties/c/type: unknown type 'text'. Use one of "
        '"integer", "number", "boolean", "string", "object", "array" or "null"'
    )


def test_message_for_number_multiple_of_suggests_decimal() -> None:
    with pytest.raises(JsonSchemaError) as caught:
        json_schema_to_sql(column(type="number", multipleOf=0.01))

    assert '"format": "decimal"' in caught.value.fix


def test_dorm_string_auto_increment_is_rejected() -> None:
    # DORM's template puts auto-increment on a string key and silently ignores it.
    schema = table(
        {"id": {"type": "string", "x-dorm-primary-key": True, "x-dorm-auto-increment": True}},
        required=["id"],
    )

    with pytest.raises(JsonSchemaError) as caught:
        json_schema_to_sql(schema)

    assert caught.value.pointer == "/properties/id/x-dorm-auto-increment"


def test_invalid_schema_in_batch_adds_nothing() -> None:
    metadata = MetaData()
    good = {"$id": "a", "type": "object", "properties": {"x": {"type": "string"}}}
    bad = {"$id": "b", "type": "object", "properties": {"x": {"type": "strin"}}}

    with pytest.raises(JsonSchemaError) as caught:
        json_schemas_to_metadata([good, bad], metadata)

    assert caught.value.pointer == "/1/properties/x/type"
    assert dict(metadata.tables) == {}


def test_batch_rejects_same_table_twice() -> None:
    schema = {"$id": "a", "type": "object", "properties": {"x": {"type": "string"}}}
    other = {**schema, "$id": "A"}

    with pytest.raises(JsonSchemaError) as caught:
        json_schemas_to_metadata([schema, other])

    assert caught.value.pointer == "/1/$id"


def test_table_already_in_metadata_is_rejected() -> None:
    metadata = MetaData()
    existing = Table("users", metadata, Column("id", Integer, primary_key=True))
    schema = {"$id": "users", "type": "object", "properties": {"x": {"type": "string"}}}

    with pytest.raises(JsonSchemaError) as caught:
        json_schema_to_table(schema, metadata)

    assert caught.value.pointer == "/$id"
    assert metadata.tables["users"] is existing


def test_index_clashing_with_metadata_index_is_rejected() -> None:
    metadata = MetaData()
    Table("users", metadata, Column("email", String, index=True))
    schema = {
        "$id": "posts",
        "type": "object",
        "properties": {"title": {"type": "string", "x-dorm-index": "ix_users_email"}},
    }

    with pytest.raises(JsonSchemaError) as caught:
        json_schema_to_table(schema, metadata)

    assert caught.value.pointer == "/properties/title/x-dorm-index"
    assert "posts" not in metadata.tables


@pytest.mark.parametrize(
    ("referenced_column", "expected_problem"),
    [("missing", "has no column 'missing'"), ("name", "neither the primary key nor unique")],
)
def test_reference_checked_against_metadata_table(
    referenced_column: str, expected_problem: str
) -> None:
    metadata = MetaData()
    Table("users", metadata, Column("id", Integer, primary_key=True), Column("name", String))
    schema = {
        "$id": "posts",
        "type": "object",
        "properties": {
            "author": {
                "type": "integer",
                "x-dorm-references": {"table": "users", "column": referenced_column},
            }
        },
    }

    with pytest.raises(JsonSchemaError) as caught:
        json_schema_to_table(schema, metadata)

    assert caught.value.pointer == "/properties/author/x-dorm-references/column"
    assert expected_problem in caught.value.problem
    assert "posts" not in metadata.tables


def test_reference_to_batch_table_checked() -> None:
    parent = {"$id": "p", "type": "object", "properties": {"code": {"type": "string"}}}
    child = {
        "$id": "c",
        "type": "object",
        "properties": {
            "code": {"type": "string", "x-dorm-references": {"table": "p", "column": "code"}}
        },
    }

    with pytest.raises(JsonSchemaError) as caught:
        json_schemas_to_metadata([child, parent])

    assert caught.value.pointer == "/0/properties/code/x-dorm-references/column"


def write(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "pointer", "problem"),
    [
        ("{", "", "is not valid JSON"),
        ('{"$id": "a", "$id": "b"}', "", "has the key '$id' twice"),
        ("[]", "", "empty list"),
        ("5", "", "expected a JSON object"),
        (
            json.dumps(
                [{"$id": "a", "type": "object", "properties": {"x": {"type": "string"}}}, 7]
            ),
            "/1",
            "expected a JSON object",
        ),
        (
            json.dumps([{"$id": "a", "type": "object", "properties": {"x": {"type": "bad"}}}]),
            "/0/properties/x/type",
            "unknown type",
        ),
    ],
)
def test_render_schema_file_errors(
    content: str, pointer: str, problem: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "schema.json", content)

    with pytest.raises(JsonSchemaError) as caught:
        render_schema_file(path)

    assert caught.value.pointer == pointer
    assert problem in caught.value.problem


def test_render_schema_file_missing_file(tmp_path: Path) -> None:
    with pytest.raises(JsonSchemaError) as caught:
        render_schema_file(tmp_path / "absent.json")

    assert "cannot read the schema file" in caught.value.problem


def test_batch_rejects_single_schema() -> None:
    schema = {"$id": "a", "type": "object", "properties": {"x": {"type": "string"}}}

    with pytest.raises(JsonSchemaError) as caught:
        json_schemas_to_metadata(schema)  # type: ignore[arg-type]

    assert "got one schema" in caught.value.problem

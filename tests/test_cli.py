"""Tests of the ``dorm`` command line, run in-process through ``main()`` and as a real process."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dorm_sqlalchemy import Dorm
from dorm_sqlalchemy.cli import Command, build_parser, main

ERROR_PREFIX = "dorm: error: "


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the caller's DORM_URL and DORM_ROOT out of every test."""
    monkeypatch.delenv("DORM_URL", raising=False)
    monkeypatch.delenv("DORM_ROOT", raising=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "tenants"


@pytest.fixture
def run_main(capsys: pytest.CaptureFixture[str]) -> Run:
    """Call ``main()`` with the given arguments and capture its output."""

    def run(*args: str) -> Result:
        status = main(list(args))
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@pytest.fixture
def dorm_cli(run_main: Run, root: Path) -> Run:
    """Call ``main()`` with ``--root`` set to the test's tenant directory."""

    def run(*args: str) -> Result:
        return run_main("--root", str(root), *args)

    return run


@pytest.fixture
def acme(dorm_cli: Run) -> str:
    """A tenant ``acme`` with a table ``notes`` of two rows."""
    dorm_cli("create", "acme")
    dorm_cli("sql", "acme", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB)")
    dorm_cli(
        "sql", "acme", "INSERT INTO notes (body, data) VALUES ('first', x'0102'), (NULL, NULL)"
    )
    return "acme"


def assert_one_error_line(err: str) -> None:
    assert err.startswith(ERROR_PREFIX), err
    assert err.count("\n") == 1, err


def tenant_files(root: Path) -> list[str]:
    return sorted(os.listdir(root)) if root.exists() else []


def run_process(*args: str, **options: Any) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dorm_sqlalchemy.cli`` as a separate process."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DORM_URL", "DORM_ROOT")}
    return subprocess.run(
        [sys.executable, "-m", "dorm_sqlalchemy.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        **options,
    )


# -- tenants ---------------------------------------------------------------------


def test_tenants_empty_prints_nothing(dorm_cli: Run, root: Path) -> None:
    result = dorm_cli("tenants")

    assert result.status == 0
    assert result.out == ""
    assert str(root) in result.err


def test_tenants_lists_sorted_names(dorm_cli: Run, root: Path) -> None:
    dorm_cli("create", "globex", "acme")
    (root / "notes.txt").write_text("not a tenant")

    result = dorm_cli("tenants")

    assert result.status == 0
    assert result.out == "acme\nglobex\n"


def test_tenants_sizes_in_bytes(dorm_cli: Run, acme: str, make_dorm: Any) -> None:
    result = dorm_cli("tenants", "--sizes")

    name, size = result.out.rstrip("\n").split("\t")
    assert result.status == 0
    assert name == "acme"
    assert int(size) == make_dorm().size("acme")


def test_tenants_human_sizes(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("tenants", "--human")

    assert result.status == 0
    assert re.fullmatch(r"acme\t\d+\.\d KiB\n", result.out), result.out


# -- create ----------------------------------------------------------------------


def test_create_makes_database_file(dorm_cli: Run, root: Path) -> None:
    result = dorm_cli("create", "acme")

    assert result.status == 0
    assert (root / "acme.db").is_file()
    assert result.out == f"created acme at {root / 'acme.db'}\n"


def test_create_folds_names_to_lower_case(dorm_cli: Run, root: Path) -> None:
    result = dorm_cli("create", "ACME", "acme", "Globex")

    assert result.status == 0
    assert tenant_files(root) == ["acme.db", "globex.db"]


def test_create_existing_creates_nothing(dorm_cli: Run, root: Path) -> None:
    dorm_cli("create", "acme")

    result = dorm_cli("create", "globex", "acme")

    assert result.status == 1
    assert_one_error_line(result.err)
    assert "tenant 'acme' already exists" in result.err
    assert tenant_files(root) == ["acme.db"]


def test_create_exist_ok_keeps_tenant(dorm_cli: Run, acme: str, make_dorm: Any) -> None:
    result = dorm_cli("create", "acme", "--exist-ok")

    assert result.status == 0
    assert result.out == "acme already exists\n"
    assert make_dorm().exec("acme", "SELECT count(*) FROM notes").scalar() == 2


@pytest.mark.parametrize(
    "arguments",
    [
        ["a/b"],
        [".."],
        ["../x"],
        [".x"],
        [""],
        ["x" * 64],
        ["a?mode=ro"],
        ["a#b"],
        ["nul"],
        ["caf\u00e9"],
        ["--", "-x"],
    ],
    ids=repr,
)
def test_create_invalid_name_is_usage_error(
    run_main: Run, tmp_path: Path, arguments: list[str]
) -> None:
    result = run_main("--root", str(tmp_path / "tenants"), "create", *arguments)

    assert result.status == 2
    assert_one_error_line(result.err)
    assert "invalid tenant name" in result.err
    assert list(tmp_path.rglob("*")) == []


# -- drop ------------------------------------------------------------------------


def test_drop_yes_deletes_files(dorm_cli: Run, acme: str, root: Path) -> None:
    result = dorm_cli("drop", "acme", "--yes")

    assert result.status == 0
    assert result.out == "dropped acme\n"
    assert tenant_files(root) == []


def test_drop_several_and_repeated_names(dorm_cli: Run, root: Path) -> None:
    dorm_cli("create", "acme", "globex", "initech")

    result = dorm_cli("drop", "acme", "ACME", "globex", "-y")

    assert result.status == 0
    assert result.out == "dropped acme\ndropped globex\n"
    assert tenant_files(root) == ["initech.db"]


def test_drop_without_terminal_needs_yes(dorm_cli: Run, acme: str, root: Path) -> None:
    result = dorm_cli("drop", "acme")

    assert result.status == 2
    assert_one_error_line(result.err)
    assert "--yes" in result.err
    assert (root / "acme.db").is_file()


def test_drop_missing_drops_nothing(dorm_cli: Run, acme: str, root: Path) -> None:
    result = dorm_cli("drop", "acme", "ghost", "--yes")

    assert result.status == 1
    assert_one_error_line(result.err)
    assert "tenant 'ghost' does not exist" in result.err
    assert (root / "acme.db").is_file()


def test_drop_missing_ok_skips_missing(dorm_cli: Run, acme: str, root: Path) -> None:
    result = dorm_cli("drop", "ghost", "acme", "--missing-ok", "--yes")

    assert result.status == 0
    assert result.out == "ghost does not exist, skipped\ndropped acme\n"
    assert tenant_files(root) == []


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize(
    ("answer", "status", "kept"),
    [("y\n", 0, False), ("YES\n", 0, False), ("n\n", 1, True), ("\n", 1, True)],
    ids=["y", "YES", "n", "empty"],
)
def test_drop_prompt_on_terminal(
    dorm_cli: Run, acme: str, root: Path, answer: str, status: int, kept: bool
) -> None:
    primary, secondary = os.openpty()
    try:
        os.write(primary, answer.encode())
        process = run_process("--root", str(root), "drop", "acme", stdin=secondary)
    finally:
        os.close(primary)
        os.close(secondary)

    assert process.returncode == status, process.stderr
    assert "Drop 1 tenant" in process.stderr
    assert (root / "acme.db").is_file() == kept


# -- size ------------------------------------------------------------------------


def test_size_prints_bytes(dorm_cli: Run, acme: str, make_dorm: Any) -> None:
    result = dorm_cli("size", "acme")

    assert result.status == 0
    assert int(result.out) == make_dorm().size("acme")


def test_size_human(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("size", "acme", "--human")

    assert result.status == 0
    assert re.fullmatch(r"\d+\.\d KiB\n", result.out), result.out


def test_size_unknown_tenant(dorm_cli: Run, root: Path) -> None:
    result = dorm_cli("size", "ghost")

    assert result.status == 1
    assert_one_error_line(result.err)
    assert "tenant 'ghost' does not exist" in result.err


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_format_size_human(size: int, text: str) -> None:
    from dorm_sqlalchemy.cli.output import format_size

    assert format_size(size, human=True) == text


# -- sql: tables and counts ------------------------------------------------------


def test_sql_select_prints_table(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT id, body, data FROM notes ORDER BY id")

    assert result.status == 0
    assert "first" in result.out
    assert "NULL" in result.out
    assert "X'0102'" in result.out
    assert result.out.endswith("2 rows\n")


def test_sql_table_keeps_markup_literal(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT '[bold]x[/bold]' AS \"[red]h\"")

    assert "[bold]x[/bold]" in result.out
    assert "[red]h" in result.out


@pytest.mark.parametrize(
    ("statement", "output"),
    [
        ("INSERT INTO notes (body) VALUES ('a'), ('b')", "2 rows written\n"),
        ("UPDATE notes SET body = 'x' WHERE id = 1", "1 row written\n"),
        ("DELETE FROM notes WHERE id = 999", "0 rows written\n"),
        ("CREATE TABLE other (x)", "0 rows written\n"),
    ],
)
def test_sql_write_prints_count(dorm_cli: Run, acme: str, statement: str, output: str) -> None:
    result = dorm_cli("sql", "acme", statement)

    assert result.status == 0
    assert result.out == output


def test_sql_returning_prints_rows_and_count(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "INSERT INTO notes (body) VALUES ('new') RETURNING body")

    assert result.status == 0
    assert "new" in result.out
    assert result.out.endswith("1 row, 1 row written\n")


@pytest.mark.parametrize(
    "params",
    [["--param", "a", "b"], ["--param", "a", "--param", "b"], ["-p", "a", "-p", "b"]],
    ids=["list", "repeated", "short"],
)
def test_sql_params_bind_in_order(dorm_cli: Run, acme: str, params: list[str]) -> None:
    result = dorm_cli("sql", "acme", "SELECT ? || ? AS joined", *params, "--csv")

    assert result.status == 0
    assert result.out == "joined\nab\n"


def test_sql_param_starting_with_dash(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT ? AS value", "--param=-x", "--csv")

    assert result.out == "value\n-x\n"


def test_sql_params_are_text(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT typeof(?) AS kind", "--param", "7", "--csv")

    assert result.out == "kind\ntext\n"


def test_sql_reads_statement_from_stdin(
    dorm_cli: Run, acme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("SELECT count(*) AS n FROM notes"))

    result = dorm_cli("sql", "acme", "-", "--csv")

    assert result.out == "n\n2\n"


# -- sql: JSON and CSV -------------------------------------------------------------


def test_sql_json_rows(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT id, body, data FROM notes ORDER BY id", "--json")

    assert result.status == 0
    assert json.loads(result.out) == [
        {"id": 1, "body": "first", "data": {"$base64": "AQI="}},
        {"id": 2, "body": None, "data": None},
    ]


def test_sql_json_empty_result(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT * FROM notes WHERE id > 99", "--json")

    assert result.out == "[]\n"


def test_sql_json_write_count(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "DELETE FROM notes", "--json")

    assert json.loads(result.out) == {"rows_written": 2}


def test_sql_json_keeps_duplicate_columns(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT 1 AS a, 2 AS a", "--json")

    rows = json.loads(result.out, object_pairs_hook=list)
    assert rows == [[("a", 1), ("a", 2)]]


def test_sql_json_infinity(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT 1e999 AS high, -1e999 AS low, 0.1 AS tenth", "--json")

    row = json.loads(result.out)[0]
    assert row["high"] == math.inf
    assert row["low"] == -math.inf
    assert row["tenth"] == 0.1


def test_sql_json_large_integer_exact(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT 9223372036854775807 AS big", "--json")

    assert json.loads(result.out) == [{"big": 9223372036854775807}]


def test_sql_csv_rows(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT id, body, data FROM notes ORDER BY id", "--csv")

    assert result.status == 0
    assert list(csv.reader(io.StringIO(result.out))) == [
        ["id", "body", "data"],
        ["1", "first", "AQI="],
        ["2", "", ""],
    ]


def test_sql_csv_quotes_separators(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT 'a,b' AS x, 'say \"hi\"' AS y", "--csv")

    assert list(csv.reader(io.StringIO(result.out))) == [["x", "y"], ["a,b", 'say "hi"']]


def test_sql_csv_write_count(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "UPDATE notes SET body = 'x'", "--csv")

    assert result.out == "rows_written\n2\n"


def test_sql_json_and_csv_exclusive(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT 1", "--json", "--csv")

    assert result.status == 2
    assert_one_error_line(result.err)
    assert "dorm sql --help" in result.err


# -- sql: errors -----------------------------------------------------------------


def test_sql_unknown_tenant_creates_nothing(dorm_cli: Run, root: Path) -> None:
    result = dorm_cli("sql", "ghost", "SELECT 1")

    assert result.status == 1
    assert_one_error_line(result.err)
    assert "tenant 'ghost' does not exist" in result.err
    assert not root.exists()


def test_sql_unknown_tenant_beside_others(dorm_cli: Run, acme: str, root: Path) -> None:
    result = dorm_cli("sql", "acmee", "CREATE TABLE t (x)")

    assert result.status == 1
    assert tenant_files(root) == ["acme.db"]


def test_sql_invalid_tenant_name(dorm_cli: Run, root: Path) -> None:
    result = dorm_cli("sql", "../etc", "SELECT 1")

    assert result.status == 2
    assert_one_error_line(result.err)
    assert not root.exists()


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM missing", "no such table: missing"),
        ("SELECT ?", "Incorrect number of bindings"),
        ("SELECT 1; SELECT 2", "one statement at a time"),
        ("INSERT INTO notes (id) VALUES (1)", "UNIQUE constraint failed"),
        ("BEGIN", "BEGIN is not allowed"),
    ],
)
def test_sql_bad_statement_one_line(
    dorm_cli: Run, acme: str, statement: str, fragment: str
) -> None:
    result = dorm_cli("sql", "acme", statement)

    assert result.status == 1
    assert_one_error_line(result.err)
    assert fragment in result.err


def test_sql_error_names_tenant(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("sql", "acme", "SELECT * FROM missing")

    assert "tenant 'acme'" in result.err


def test_sql_busy_tenant_fails_after_timeout(dorm_cli: Run, acme: str, root: Path) -> None:
    writer = sqlite3.connect(root / "acme.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        result = dorm_cli("--busy-timeout", "0.1", "sql", "acme", "DELETE FROM notes")
        writer.execute("ROLLBACK")
    finally:
        writer.close()

    assert result.status == 1
    assert_one_error_line(result.err)
    assert "locked by another writer" in result.err


# -- backup ----------------------------------------------------------------------


def test_backup_writes_standalone_copy(dorm_cli: Run, acme: str, tmp_path: Path) -> None:
    target = tmp_path / "acme-copy.db"

    result = dorm_cli("backup", "acme", str(target))

    copy = sqlite3.connect(target)
    try:
        count = copy.execute("SELECT count(*) FROM notes").fetchone()[0]
    finally:
        copy.close()
    assert result.status == 0
    assert result.out == f"backed up acme to {target}\n"
    assert count == 2
    assert not Path(f"{target}-wal").exists()


def test_backup_into_directory(dorm_cli: Run, acme: str, tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    directory.mkdir()

    result = dorm_cli("backup", "acme", str(directory))

    assert result.status == 0
    assert (directory / "acme.db").is_file()


def test_backup_existing_file_kept(dorm_cli: Run, acme: str, tmp_path: Path) -> None:
    target = tmp_path / "acme-copy.db"
    target.write_bytes(b"keep me")

    result = dorm_cli("backup", "acme", str(target))

    assert result.status == 1
    assert_one_error_line(result.err)
    assert "--overwrite" in result.err
    assert target.read_bytes() == b"keep me"


def test_backup_overwrite_replaces_file(dorm_cli: Run, acme: str, tmp_path: Path) -> None:
    target = tmp_path / "acme-copy.db"
    target.write_bytes(b"old")

    result = dorm_cli("backup", "acme", str(target), "--overwrite")

    assert result.status == 0
    assert target.read_bytes().startswith(b"SQLite format 3\x00")


def test_backup_missing_directory(dorm_cli: Run, acme: str, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "acme.db"

    result = dorm_cli("backup", "acme", str(target))

    assert result.status == 1
    assert_one_error_line(result.err)
    assert "does not exist" in result.err


def test_backup_onto_own_file_rejected(dorm_cli: Run, acme: str, root: Path) -> None:
    result = dorm_cli("backup", "acme", str(root), "--overwrite")

    assert result.status == 2
    assert_one_error_line(result.err)
    assert "database file of tenant 'acme'" in result.err


def test_backup_unknown_tenant(dorm_cli: Run, acme: str, tmp_path: Path) -> None:
    result = dorm_cli("backup", "ghost", str(tmp_path / "ghost.db"))

    assert result.status == 1
    assert_one_error_line(result.err)
    assert not (tmp_path / "ghost.db").exists()


# -- where tenant files live -----------------------------------------------------


def test_default_location_is_dorm_data(
    run_main: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = run_main("create", "acme")

    assert result.status == 0
    assert (tmp_path / "dorm-data" / "acme.db").is_file()


def test_url_template_names_files(run_main: Run, tmp_path: Path) -> None:
    template = f"sqlite:///{tmp_path}/data/t_{{tenant}}.sqlite"

    result = run_main("--url", template, "create", "acme")

    assert result.status == 0
    assert (tmp_path / "data" / "t_acme.sqlite").is_file()


@pytest.mark.parametrize(
    ("variable", "make_value", "expected"),
    [
        ("DORM_ROOT", lambda base: str(base / "env-root"), "env-root/acme.db"),
        ("DORM_URL", lambda base: f"sqlite:///{base}/env-url/{{tenant}}.db", "env-url/acme.db"),
    ],
)
def test_environment_sets_location(
    run_main: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    make_value: Callable[[Path], str],
    expected: str,
) -> None:
    monkeypatch.setenv(variable, make_value(tmp_path))

    result = run_main("create", "acme")

    assert result.status == 0
    assert (tmp_path / expected).is_file()


def test_option_overrides_environment(
    run_main: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DORM_URL", f"sqlite:///{tmp_path}/env/{{tenant}}.db")

    run_main("--root", str(tmp_path / "option"), "create", "acme")

    assert (tmp_path / "option" / "acme.db").is_file()
    assert not (tmp_path / "env").exists()


def test_both_environment_variables_rejected(
    run_main: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DORM_URL", f"sqlite:///{tmp_path}/a/{{tenant}}.db")
    monkeypatch.setenv("DORM_ROOT", str(tmp_path / "b"))

    result = run_main("tenants")

    assert result.status == 2
    assert_one_error_line(result.err)
    assert "DORM_URL and DORM_ROOT" in result.err


def test_global_options_after_command(run_main: Run, tmp_path: Path) -> None:
    run_main("--root", str(tmp_path), "create", "acme")

    result = run_main("tenants", "--root", str(tmp_path))

    assert result.out == "acme\n"


@pytest.mark.parametrize(
    "arguments",
    [
        ["--root", "a", "--url", "sqlite:///b/{tenant}.db", "tenants"],
        ["--root", "a", "tenants", "--url", "sqlite:///b/{tenant}.db"],
    ],
    ids=["before", "split"],
)
def test_root_and_url_exclusive(run_main: Run, arguments: list[str]) -> None:
    result = run_main(*arguments)

    assert result.status == 2
    assert_one_error_line(result.err)


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("sqlite:///data/tenants.db", "{tenant} exactly once"),
        ("postgresql://host/{tenant}", "must start with sqlite://"),
        ("sqlite://", "in-memory tenants"),
        ("sqlite:///:memory:", "in-memory tenants"),
        ("not a url", "it is not a URL"),
        ("sqlite:///{tenant}/{tenant}.db", "only in the file name"),
    ],
)
def test_invalid_url_is_usage_error(
    run_main: Run, tmp_path: Path, template: str, fragment: str
) -> None:
    result = run_main("--url", template, "tenants")

    assert result.status == 2
    assert_one_error_line(result.err)
    assert fragment in result.err


def test_invalid_url_from_environment_named(run_main: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DORM_URL", "sqlite:///data/tenants.db")

    result = run_main("tenants")

    assert result.err.startswith(f"{ERROR_PREFIX}DORM_URL: ")


def test_busy_timeout_sets_pragma(dorm_cli: Run, acme: str) -> None:
    result = dorm_cli("--busy-timeout", "0.25", "sql", "acme", "PRAGMA busy_timeout", "--csv")

    assert result.out == "timeout\n250\n"


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf", ""])
def test_busy_timeout_invalid(dorm_cli: Run, value: str) -> None:
    result = dorm_cli(f"--busy-timeout={value}", "tenants")

    assert result.status == 2
    assert_one_error_line(result.err)
    assert "seconds" in result.err


# -- help, version and usage errors ------------------------------------------------


def test_version_prints_versions(run_main: Run) -> None:
    result = run_main("--version")

    assert result.status == 0
    assert result.out.startswith("dorm 0.1.0 (SQLAlchemy ")


def test_help_describes_units(run_main: Run) -> None:
    result = run_main("--help")

    assert result.status == 0
    assert "seconds a statement waits" in result.out
    assert "DORM_URL" in result.out


@pytest.mark.parametrize("command", ["tenants", "create", "drop", "size", "backup", "sql"])
def test_command_help(run_main: Run, command: str) -> None:
    result = run_main(command, "--help")

    assert result.status == 0
    assert result.out.startswith(f"usage: dorm {command} ")
    assert "--busy-timeout SECONDS" in result.out


@pytest.mark.parametrize(
    ("arguments", "hint"),
    [
        ([], "dorm --help"),
        (["bogus"], "dorm --help"),
        (["tenants", "--bogus"], "dorm tenants --help"),
        (["size"], "dorm size --help"),
        (["sql", "acme"], "dorm sql --help"),
    ],
    ids=["no-command", "unknown-command", "unknown-option", "missing-name", "missing-sql"],
)
def test_usage_error_points_to_help(dorm_cli: Run, arguments: list[str], hint: str) -> None:
    result = dorm_cli(*arguments)

    assert result.status == 2
    assert_one_error_line(result.err)
    assert hint in result.err


def test_verbose_logs_library_events(dorm_cli: Run) -> None:
    logger = logging.getLogger("dorm_sqlalchemy")
    level_before = logger.level

    result = dorm_cli("-v", "create", "acme")

    assert "tenant acme: created" in result.err
    assert logger.level == level_before
    assert logger.handlers == []


# -- the command table -----------------------------------------------------------


def test_command_groups_parse_with_global_options() -> None:
    status = Command("status", "show the mirror lag", run=lambda context: 0)
    mirror = Command("mirror", "manage mirroring", subcommands=(status,))

    args = build_parser([mirror]).parse_args(["mirror", "status", "--root", "data"])

    assert args.command is status
    assert args.root == "data"


# -- as a real process -----------------------------------------------------------


def test_process_failure_has_no_traceback(tmp_path: Path) -> None:
    process = run_process("--root", str(tmp_path), "sql", "ghost", "SELECT 1")

    assert process.returncode == 1
    assert process.stderr.startswith(ERROR_PREFIX)
    assert process.stderr.count("\n") == 1
    assert "Traceback" not in process.stderr


def test_process_usage_error_status(tmp_path: Path) -> None:
    process = run_process("--root", str(tmp_path), "create", "a/b")

    assert process.returncode == 2
    assert "Traceback" not in process.stderr


def test_process_closed_pipe_is_quiet(dorm_cli: Run, acme: str, root: Path) -> None:
    statement = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
        "SELECT i FROM n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("DORM_URL", "DORM_ROOT")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dorm_sqlalchemy.cli",
            "--root",
            str(root),
            "sql",
            "acme",
            statement,
            "--csv",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    assert process.stdout is not None and process.stderr is not None
    first_line = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    status = process.wait(timeout=120)

    assert first_line == b"i\n"
    assert status == 1
    assert stderr == ""


def test_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("dorm")
    if not script.exists():
        pytest.skip("the dorm console script is not installed next to this Python")

    process = subprocess.run(
        [str(script), "--root", str(tmp_path), "tenants"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert process.returncode == 0
    assert process.stdout == ""

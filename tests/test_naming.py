"""Tenant names: canonical form, rejection of hostile names, file mapping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dorm_sqlalchemy import Dorm, InvalidTenantName, canonical_tenant

HOSTILE_NAMES = [
    "..",
    ".x",
    "a/b",
    "/etc/x",
    "a?mode=ro",
    "%2e%2e",
    "a#b",
    "x?mode=memory&uri=true&z=",
    "a\x00b",
    "",
    "x" * 300,
    "a\\b",
    "-leading-dash",
    "_reserved",
    "a b",
    "caf\u00e9",
    "con",
    "LPT1",
    "a.db",
]


def all_files(root: Path) -> list[str]:
    return sorted(str(path) for path in root.rglob("*"))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_name_raises_before_touching_files(tmp_path: Path, name: str) -> None:
    root = tmp_path / "tenants"
    dorm = Dorm(root=root)
    before = all_files(tmp_path)

    with pytest.raises(InvalidTenantName):
        dorm.engine(name)
    with pytest.raises(InvalidTenantName):
        dorm.exec(name, "SELECT 1")
    with pytest.raises(InvalidTenantName):
        dorm.create(name)
    with pytest.raises(InvalidTenantName):
        dorm.exists(name)

    dorm.close()
    assert all_files(tmp_path) == before
    assert not root.exists()


@pytest.mark.parametrize("name", [None, 7, b"acme", ["acme"]])
def test_non_string_name_raises(name: object) -> None:
    with pytest.raises(InvalidTenantName, match="expected a str"):
        canonical_tenant(name)  # type: ignore[arg-type]


def test_invalid_name_message_names_value_and_rule() -> None:
    with pytest.raises(InvalidTenantName) as raised:
        canonical_tenant("a/b")
    message = str(raised.value)
    assert "'a/b'" in message
    assert "'/'" in message
    assert "1 to 63 characters" in message


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("acme", "acme"), ("Acme", "acme"), ("ACME-Corp_2", "acme-corp_2"), ("9lives", "9lives")],
)
def test_canonical_form_folds_case(name: str, canonical: str) -> None:
    assert canonical_tenant(name) == canonical


def test_case_variants_share_one_tenant(dorm: Dorm) -> None:
    dorm.exec("Acme", "CREATE TABLE t (x)")
    dorm.exec("ACME", "INSERT INTO t VALUES (1)")

    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 1
    assert list(dorm.tenants()) == ["acme"]


def test_distinct_tenants_get_distinct_files(dorm: Dorm) -> None:
    names = ["a-b", "a_b", "ab", "a-b-", "a--b"]
    paths = {dorm.path(name) for name in names}

    assert len(paths) == len(names)


def test_tenant_files_stay_in_root(dorm: Dorm, tmp_path: Path) -> None:
    root = (tmp_path / "tenants").resolve()
    for name in ["acme", "z" * 63, "0"]:
        dorm.exec(name, "CREATE TABLE t (x)")
        path = dorm.path(name)
        assert path is not None
        assert path.resolve().parent == root


def test_url_template_keeps_prefix_and_suffix(make_dorm, tmp_path: Path) -> None:
    dorm = make_dorm(f"sqlite:///{tmp_path}/data/tenant-{{tenant}}.sqlite3")
    dorm.exec("acme", "CREATE TABLE t (x)")

    assert (tmp_path / "data" / "tenant-acme.sqlite3").is_file()
    assert list(dorm.tenants()) == ["acme"]


def test_relative_template_survives_chdir(make_dorm, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    dorm = make_dorm("sqlite:///rel/{tenant}.db")
    monkeypatch.chdir("/")
    dorm.exec("acme", "CREATE TABLE t (x)")

    assert (tmp_path / "rel" / "acme.db").is_file()


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("sqlite:///data/tenant.db", "exactly once"),
        ("sqlite:///{tenant}/db/{tenant}.db", "file name"),
        ("sqlite:///data/{tenant}/main.db", "file name"),
        ("sqlite:///data/{tenant}-{shard}.db", "only placeholder"),
        ("postgresql://host/{tenant}", "must start with sqlite://"),
        ("sqlite:///file:{tenant}.db?uri=true", "URI file names"),
    ],
)
def test_bad_url_template_raises(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dorm(template)


def test_listing_ignores_foreign_files(dorm: Dorm, tmp_path: Path) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    root = tmp_path / "tenants"
    for stray in ["Upper.db", ".hidden.db", "notes.txt", "a.b.db", "_template.db"]:
        (root / stray).write_bytes(b"")
    os.mkdir(root / "dir.db")

    assert list(dorm.tenants()) == ["acme"]


@pytest.mark.parametrize(
    "template",
    ["sqlite:///data/{tenant}", "sqlite:///data/{tenant}-wal", "sqlite:///data/t_{tenant}_x"],
)
def test_template_without_extension_raises(template: str) -> None:
    with pytest.raises(ValueError, match="extension"):
        Dorm(template)


def test_template_query_parameters_rejected() -> None:
    with pytest.raises(ValueError, match="mode"):
        Dorm("sqlite:///data/{tenant}.db?mode=ro")


def test_listing_sorted_by_tenant_name(dorm: Dorm) -> None:
    for name in ["a", "a-b", "a0", "a_b", "b"]:
        dorm.exec(name, "CREATE TABLE t (x)")
    assert list(dorm.tenants()) == sorted(["a", "a-b", "a0", "a_b", "b"])


class _LowersToAnother(str):
    def lower(self) -> str:
        return "globex"


def test_str_subclass_is_checked_by_its_value() -> None:
    assert canonical_tenant(_LowersToAnother("Acme")) == "acme"


def test_str_subclass_does_not_redirect_later_names(dorm) -> None:
    dorm.exec("globex", "CREATE TABLE n (who TEXT)")
    dorm.exec("acme", "CREATE TABLE n (who TEXT)")
    dorm.exec("acme", "INSERT INTO n VALUES ('acme')")
    dorm.exec(_LowersToAnother("acme"), "SELECT 1").all()

    assert dorm.exec("acme", "SELECT who FROM n").scalar() == "acme"

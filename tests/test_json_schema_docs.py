"""The Python examples in docs/json-schema.md run and print the output their comments show."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from dorm_sqlalchemy.json_schema import json_schema_to_sql

DOC = Path(__file__).resolve().parent.parent / "docs" / "json-schema.md"

_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)

# A print call with the expected output as a trailing comment: print(x)  # 42
_PRINTED = re.compile(r"^\s*print\(.*\)\s+# (?P<expected>.+)$")


def _blocks() -> list[str]:
    return _BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_doc_has_examples() -> None:
    assert len(_blocks()) >= 8


@pytest.mark.parametrize("block", _blocks(), ids=lambda block: block.split("\n")[0][:40])
def test_doc_example_runs(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    output = io.StringIO()

    with contextlib.redirect_stdout(output):
        exec(compile(block, str(DOC), "exec"), {"__name__": "__doc_example__"})

    printed = output.getvalue().splitlines()
    for line in block.splitlines():
        match = _PRINTED.match(line)
        if match is not None:
            assert match.group("expected") in printed, line


def test_doc_ddl_matches_output() -> None:
    text = DOC.read_text(encoding="utf-8")
    namespace: dict[str, object] = {}
    first_block = _blocks()[0]
    exec(compile(first_block.split("statements =")[0], str(DOC), "exec"), namespace)
    documented_ddl = re.findall(r"```sql\n(.*?)```", text, re.DOTALL)[0].strip()

    actual = json_schema_to_sql(namespace["todos"])[0]  # type: ignore[arg-type]

    assert "\n".join(line.rstrip() for line in actual.splitlines()) == documented_ddl

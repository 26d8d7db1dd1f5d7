"""Cold open: a fresh process reads one row of an existing tenant.

    .venv/bin/python benchmarks/cold_open.py [--quick] [--tmp-dir DIR] [--json FILE]

Each round starts four child processes, in rotating order, on the same
existing database file:

* ``dorm``: imports ``dorm_sqlalchemy``, builds ``Dorm(root=...)`` and reads
  one row with ``dorm.exec(t, ...).one()``;
* ``sqlite3``: imports ``sqlite3``, calls ``sqlite3.connect`` and reads the same
  row with ``execute(...).fetchone()``;
* ``sqlalchemy``: imports ``sqlalchemy`` and ``sqlalchemy.orm`` as an ORM
  application does, calls ``create_engine`` and reads the same row with
  ``exec_driver_sql``;
* ``python``: an empty program, the interpreter's own start-up and exit.

A child takes ``time.perf_counter()`` as its first statement and reports the
seconds spent importing and the seconds from opening (``Dorm()`` or
``sqlite3.connect``) to the first row. The parent times the whole process,
from spawn to exit. Medians over the rounds are reported. The database file
is in the page cache, so "cold" means a new process, not a cold disk.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Figure, run_script
from dorm_sqlalchemy import Dorm

__all__ = ["run"]

TENANT = "acme"
POINT_QUERY = "SELECT id, body FROM notes WHERE id = ?"

_DORM_CHILD = f"""\
import time
started = time.perf_counter()
import json, sys
from dorm_sqlalchemy import Dorm
imported = time.perf_counter()
dorm = Dorm(root=sys.argv[1])
row = dorm.exec({TENANT!r}, {POINT_QUERY!r}, 1).one()
first_row = time.perf_counter()
assert row["body"] == "first note", row
dorm.close()
print(json.dumps({{"import": imported - started, "open_to_row": first_row - imported}}))
"""

_SQLITE_CHILD = f"""\
import time
started = time.perf_counter()
import json, sys
import sqlite3
imported = time.perf_counter()
connection = sqlite3.connect(sys.argv[2])
row = connection.execute({POINT_QUERY!r}, (1,)).fetchone()
first_row = time.perf_counter()
assert row[1] == "first note", row
connection.close()
print(json.dumps({{"import": imported - started, "open_to_row": first_row - imported}}))
"""

_SQLALCHEMY_CHILD = f"""\
import time
started = time.perf_counter()
import json, sys
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
imported = time.perf_counter()
engine = create_engine("sqlite:///" + sys.argv[2])
with engine.connect() as connection:
    row = connection.exec_driver_sql({POINT_QUERY!r}, (1,)).one()
first_row = time.perf_counter()
assert row[1] == "first note", row
engine.dispose()
print(json.dumps({{"import": imported - started, "open_to_row": first_row - imported}}))
"""

_EMPTY_CHILD = "pass"

_CHILDREN = {
    "dorm": _DORM_CHILD,
    "sqlite3": _SQLITE_CHILD,
    "sqlalchemy": _SQLALCHEMY_CHILD,
    "python": _EMPTY_CHILD,
}


def _prepare_tenant(root: Path) -> Path:
    with Dorm(root=root) as dorm:
        dorm.exec(TENANT, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        dorm.exec(TENANT, "INSERT INTO notes (id, body) VALUES (?, ?)", 1, "first note")
        path = dorm.path(TENANT)
    assert path is not None
    return path


def _run_child(code: str, root: Path, path: Path) -> dict[str, float]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", code, str(root), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"cold-open child failed with exit code {completed.returncode}:\n{completed.stderr}"
        )
    report: dict[str, float] = json.loads(completed.stdout) if completed.stdout.strip() else {}
    report["process"] = elapsed
    return report


def measure(root: Path, path: Path, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Return, per child, the list of each reported timing over ``rounds`` rounds."""
    names = list(_CHILDREN)
    for name in names:
        _run_child(_CHILDREN[name], root, path)  # warm the bytecode and page caches

    samples: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            report = _run_child(_CHILDREN[name], root, path)
            for key, seconds in report.items():
                samples[name].setdefault(key, []).append(seconds)
    return samples


def _median_ms(samples: dict[str, dict[str, list[float]]], child: str, key: str) -> float:
    return statistics.median(samples[child][key]) * 1000


def run(quick: bool, tmp_dir: Path | None = None) -> list[Figure]:
    """Measure the cold-open figures on a fresh tenant in a temporary directory."""
    rounds = 3 if quick else 15
    root = Path(tempfile.mkdtemp(prefix="dorm-bench-cold-", dir=tmp_dir))
    try:
        path = _prepare_tenant(root)
        print(f"cold open: {rounds} rounds of {len(_CHILDREN)} child processes")
        samples = measure(root, path, rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    return [
        Figure(
            "cold open: Dorm() to first row",
            _median_ms(samples, "dorm", "open_to_row"),
            "ms",
            baseline=_median_ms(samples, "sqlite3", "open_to_row"),
            baseline_name="sqlite3.connect to first row",
        ),
        Figure(
            "cold open: import",
            _median_ms(samples, "dorm", "import"),
            "ms",
            baseline=_median_ms(samples, "sqlite3", "import"),
            baseline_name="import sqlite3",
        ),
        Figure(
            "cold open: whole process",
            _median_ms(samples, "dorm", "process"),
            "ms",
            baseline=_median_ms(samples, "sqlite3", "process"),
            baseline_name="sqlite3 process",
        ),
        Figure(
            "cold open: whole process vs SQLAlchemy",
            _median_ms(samples, "dorm", "process"),
            "ms",
            baseline=_median_ms(samples, "sqlalchemy", "process"),
            baseline_name="plain SQLAlchemy process",
        ),
        Figure(
            "cold open: empty Python process",
            _median_ms(samples, "python", "process"),
            "ms",
        ),
    ]


def main(argv: list[str]) -> int:
    return run_script(argv, __doc__.splitlines()[0], run, title="Cold open")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

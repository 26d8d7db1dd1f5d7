"""Many tenants: create 10,000 tenant databases with one row each.

    .venv/bin/python benchmarks/many_tenants.py [--quick] [--tenants N] [--tmp-dir DIR] [--json FILE]

Each run happens in a child process of its own, so its peak resident memory
(``VmHWM``) counts only that run. The children run one after the other, each
in a fresh directory of ``--tmp-dir``, in the order dorm, sqlite3, sqlite3,
dorm (once each with ``--quick``):

* ``dorm``: one ``Dorm(root=...)`` with the default ``max_engines``; for
  every tenant ``dorm.exec(t, "CREATE TABLE ...")`` then
  ``dorm.exec(t, "INSERT ...")``.
* ``sqlite3``: for every tenant ``sqlite3.connect``, the same pragmas that the
  library sets (WAL, ``synchronous=NORMAL``, foreign keys, busy timeout), the
  same two statements, and ``close()``.

The children count ``/proc/self/fd`` after every tenant and report the
maximum. After each child the parent checks that every database file exists
and that a sample of them contains exactly one row, then deletes the directory.
The table shows the median creation rate and the highest memory and
descriptor counts over the runs of each kind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    Figure,
    add_common_arguments,
    count_open_fds,
    current_rss_mib,
    peak_rss_mib,
    print_machine,
    print_summary,
    write_json,
)

__all__ = ["run"]

FULL_TENANTS = 10_000
QUICK_TENANTS = 1_000
RSS_GOAL_MIB = 200
SAMPLE_CHECKS = 50

CREATE_TABLE = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"
INSERT_ROW = "INSERT INTO notes (body) VALUES (?)"


def _tenant_name(index: int) -> str:
    return f"t{index:05d}"


# -- children ----------------------------------------------------------------


def _create_with_dorm(root: Path, tenants: int) -> dict[str, Any]:
    from dorm_sqlalchemy import Dorm

    report: dict[str, Any] = {"fds_start": count_open_fds(), "rss_start_mib": current_rss_mib()}
    peak_fds = report["fds_start"]
    dorm = Dorm(root=root)
    report["max_engines"] = dorm.max_engines

    started = time.perf_counter()
    for index in range(tenants):
        tenant = _tenant_name(index)
        dorm.exec(tenant, CREATE_TABLE)
        dorm.exec(tenant, INSERT_ROW, f"note of {tenant}")
        peak_fds = max(peak_fds, count_open_fds())
    report["seconds"] = time.perf_counter() - started

    report["fds_peak"] = peak_fds
    report["fds_end"] = count_open_fds()
    dorm.close()
    report["fds_after_close"] = count_open_fds()
    report["rss_peak_mib"] = peak_rss_mib()
    return report


def _create_with_sqlite(root: Path, tenants: int) -> dict[str, Any]:
    report: dict[str, Any] = {"fds_start": count_open_fds(), "rss_start_mib": current_rss_mib()}
    peak_fds = report["fds_start"]
    root.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    for index in range(tenants):
        tenant = _tenant_name(index)
        connection = sqlite3.connect(root / f"{tenant}.db", isolation_level=None)
        connection.execute("PRAGMA busy_timeout = 5000")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute(CREATE_TABLE)
        connection.execute(INSERT_ROW, (f"note of {tenant}",))
        connection.close()
        peak_fds = max(peak_fds, count_open_fds())
    report["seconds"] = time.perf_counter() - started

    report["fds_peak"] = peak_fds
    report["fds_end"] = count_open_fds()
    report["rss_peak_mib"] = peak_rss_mib()
    return report


_CHILDREN = {"dorm": _create_with_dorm, "sqlite3": _create_with_sqlite}


def _child_main(kind: str, root: Path, tenants: int) -> int:
    report = _CHILDREN[kind](root, tenants)
    print(json.dumps(report))
    return 0


# -- parent ------------------------------------------------------------------


def _run_child(kind: str, root: Path, tenants: int) -> dict[str, Any]:
    completed = subprocess.run(
        [
            sys.executable, __file__, "--child", kind,
            "--root", str(root), "--tenants", str(tenants),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{kind} child failed with exit code {completed.returncode}:\n{completed.stderr}"
        )
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def _check_tenants(root: Path, tenants: int) -> None:
    """Raise AssertionError unless every tenant file exists and a sample contains one row each."""
    files = {path.name for path in root.glob("*.db")}
    missing = [index for index in range(tenants) if f"{_tenant_name(index)}.db" not in files]
    assert not missing, f"{len(missing)} tenant files missing under {root}, first {missing[:5]}"

    step = max(1, tenants // SAMPLE_CHECKS)
    for index in range(0, tenants, step):
        connection = sqlite3.connect(root / f"{_tenant_name(index)}.db")
        try:
            rows = connection.execute("SELECT body FROM notes").fetchall()
        finally:
            connection.close()
        assert rows == [(f"note of {_tenant_name(index)}",)], (index, rows)


def _measure(kind: str, parent: Path, tenants: int) -> dict[str, Any]:
    root = parent / kind
    print(f"many tenants: creating {tenants} tenants with {kind} in {root}")
    try:
        report = _run_child(kind, root, tenants)
        _check_tenants(root, tenants)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report["tenants_per_second"] = tenants / report["seconds"]
    print(f"  {json.dumps(report)}")
    return report


def _combine(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the runs of one kind: the median rate, the maximum memory and descriptors."""
    combined = dict(reports[0])
    combined["tenants_per_second"] = statistics.median(
        report["tenants_per_second"] for report in reports
    )
    for key in ("rss_peak_mib", "fds_peak"):
        combined[key] = max(report[key] for report in reports)
    return combined


def _fd_bound(report: dict[str, Any]) -> int:
    """Return the maximum number of descriptors the registry may keep open in this workload.

    ``dorm.exec`` keeps at most ``STATEMENT_CONNECTIONS`` idle connections per
    cached tenant, each with three descriptors in WAL mode (database,
    ``-wal`` and ``-shm``), and at most ``max_engines`` tenants stay cached.
    """
    from dorm_sqlalchemy.engines import STATEMENT_CONNECTIONS

    return int(report["fds_start"]) + 3 * STATEMENT_CONNECTIONS * int(report["max_engines"])


def run(
    quick: bool, tmp_dir: Path | None = None, tenants: int | None = None
) -> list[Figure]:
    """Create the tenants with the library and with plain sqlite3; return the figures."""
    if tenants is None:
        tenants = QUICK_TENANTS if quick else FULL_TENANTS
    # In ABBA order the disk's drift during the run weighs on both equally.
    order = ["dorm", "sqlite3"] if quick else ["dorm", "sqlite3", "sqlite3", "dorm"]
    reports: dict[str, list[dict[str, Any]]] = {"dorm": [], "sqlite3": []}
    parent = Path(tempfile.mkdtemp(prefix="dorm-bench-tenants-", dir=tmp_dir))
    try:
        for kind in order:
            reports[kind].append(_measure(kind, parent, tenants))
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    dorm_report = _combine(reports["dorm"])
    sqlite_report = _combine(reports["sqlite3"])

    bound = _fd_bound(dorm_report)
    return [
        Figure(
            f"{tenants:,} tenants: creation rate",
            dorm_report["tenants_per_second"],
            "tenants/s",
            baseline=sqlite_report["tenants_per_second"],
            baseline_name="sqlite3",
        ),
        Figure(
            f"{tenants:,} tenants: peak RSS",
            dorm_report["rss_peak_mib"],
            "MiB",
            baseline=sqlite_report["rss_peak_mib"],
            baseline_name="sqlite3",
            goal=f"< {RSS_GOAL_MIB} MiB",
            met=dorm_report["rss_peak_mib"] < RSS_GOAL_MIB,
        ),
        Figure(
            f"{tenants:,} tenants: peak open fds",
            dorm_report["fds_peak"],
            "fds",
            baseline=sqlite_report["fds_peak"],
            baseline_name="sqlite3",
            goal=f"≤ {bound} (bounded)",
            met=dorm_report["fds_peak"] <= bound,
        ),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--tenants", type=int, default=None,
        help=f"tenants to create (default {FULL_TENANTS:,}, or {QUICK_TENANTS:,} with --quick)",
    )
    parser.add_argument("--child", choices=sorted(_CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        return _child_main(args.child, args.root, args.tenants)

    machine = print_machine()
    figures = run(args.quick, args.tmp_dir, args.tenants)
    print_summary(figures, title="Many tenants")
    if args.json is not None:
        write_json(args.json, figures, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

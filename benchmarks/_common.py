"""Helpers shared by the benchmark scripts: timing, machine facts and the summary table.

Only the standard library is imported at module level, because the child
processes of ``cold_open.py`` and ``many_tenants.py`` import this module and
their memory and start-up figures must not include ``rich``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Figure",
    "Loop",
    "Timings",
    "add_common_arguments",
    "count_open_fds",
    "current_rss_mib",
    "machine_facts",
    "print_machine",
    "peak_rss_mib",
    "print_summary",
    "run_interleaved",
    "write_json",
]

Loop = Callable[[int], None]
"""A benchmark body: runs its operation the given number of times."""


@dataclass
class Figure:
    """One line of the summary table: a measured value and its baseline from the same run."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    met: bool | None = None
    """``None`` when the figure has no goal and is reported for information."""
    paired_ratio: float | None = None
    """The median of per-round ratios, for figures whose cases ran in the same rounds."""

    @property
    def ratio(self) -> float | None:
        """The paired ratio when there is one, else ``value / baseline``.

        Above 1 means more time (or more of a rate) than the baseline.
        """
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline


@dataclass
class Timings:
    """Seconds per operation of each case, one entry per round."""

    per_round: dict[str, list[float]] = field(default_factory=dict)

    def median(self, case: str) -> float:
        return statistics.median(self.per_round[case])

    def round_ratios(self, case: str, baseline: str) -> list[float]:
        """Return the ratio within each round, which shows how much the rounds disagree."""
        return [
            case_time / baseline_time
            for case_time, baseline_time in zip(self.per_round[case], self.per_round[baseline])
        ]

    def ratio(self, case: str, baseline: str) -> float:
        """Return the median of the per-round ratios.

        The two cases of a round run a fraction of a second apart, so a
        round slowed down by other work on the machine slows both cases and
        leaves their ratio nearly intact.
        """
        return statistics.median(self.round_ratios(case, baseline))


def run_interleaved(
    cases: Mapping[str, Loop], *, iterations: int, rounds: int, warmup: int
) -> Timings:
    """Time every case once per round, rotating the order of the cases between rounds.

    Interleaving spreads slow drift of the machine (frequency scaling, other
    processes, the page cache) over all cases instead of charging it to
    whichever case runs last. Each case first runs ``warmup`` operations
    untimed, so connection pools and SQLAlchemy's statement caches are filled.
    """
    for loop in cases.values():
        loop(warmup)

    names = list(cases)
    timings = Timings({name: [] for name in names})
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            started = time.perf_counter()
            cases[name](iterations)
            elapsed = time.perf_counter() - started
            timings.per_round[name].append(elapsed / iterations)
    return timings


def count_open_fds() -> int:
    """Return the number of file descriptors open in this process (Linux ``/proc``)."""
    return len(os.listdir("/proc/self/fd"))


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not found in /proc/self/status")


def peak_rss_mib() -> float:
    """Return the peak resident memory of this process in MiB (``VmHWM``, Linux).

    ``getrusage().ru_maxrss`` is not used: Linux carries the parent's peak
    into a child started with fork or vfork and exec, so a small child
    of a large parent reports the parent's peak.
    """
    return _status_kib("VmHWM") / 1024


def current_rss_mib() -> float:
    """Return the resident memory of this process now, in MiB (``VmRSS``, Linux)."""
    return _status_kib("VmRSS") / 1024


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def _source_revision() -> str:
    """Return the git commit of the library under test, marked when its files have changes."""
    package = Path(__file__).resolve().parent.parent / "dorm_sqlalchemy"
    try:
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(package), "status", "--porcelain", "--", "."],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} + uncommitted changes" if changes else commit


def machine_facts() -> dict[str, str]:
    """Describe the machine, its load and the versions that the figures depend on."""
    import sqlalchemy

    import dorm_sqlalchemy

    memory = _memory_gib()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "cpus": str(os.cpu_count()),
        "cpu model": _cpu_model(),
        "memory": f"{memory:.1f} GiB" if memory is not None else "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "load average": load,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "dorm-sqlalchemy": f"{dorm_sqlalchemy.__version__} ({_source_revision()})",
    }


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        # Output to a file or pipe: keep table rows on one line each.
        console = Console(width=160)
    return console


def print_machine() -> dict[str, str]:
    """Print the machine facts and return them, so a JSON record shows the state at the start."""
    facts = machine_facts()
    _console().print(", ".join(f"{key}: {value}" for key, value in facts.items()))
    return facts


def _format_number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}" if value >= 10 else f"{value:.3g} {unit}"


def print_summary(figures: Sequence[Figure], *, title: str = "Summary") -> None:
    """Print the figures as a table: value, baseline, ratio, goal and whether it is met."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("goal")
    table.add_column("met?")
    for figure in figures:
        baseline = _format_number(figure.baseline, figure.unit)
        if figure.baseline_name:
            baseline = f"{baseline} ({figure.baseline_name})"
        ratio = "-" if figure.ratio is None else f"{figure.ratio:.2f}x"
        met = {None: "-", True: "[green]yes[/green]", False: "[red]no[/red]"}[figure.met]
        table.add_row(
            figure.name, _format_number(figure.value, figure.unit), baseline, ratio,
            figure.goal or "-", met,
        )
    _console().print(table)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="run fewer iterations and tenants (a smoke run)"
    )
    parser.add_argument(
        "--tmp-dir", type=Path, default=None,
        help="directory for the temporary tenant databases (default: the system temp directory)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures to this JSON file"
    )


def write_json(
    path: Path,
    figures: Sequence[Figure],
    machine: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write the machine facts and the figures to ``path``."""
    document = {
        "machine": dict(machine),
        "figures": [dict(asdict(figure), ratio=figure.ratio) for figure in figures],
        **(extra or {}),
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def run_script(
    argv: list[str],
    description: str,
    run: Callable[[bool, Path | None], Sequence[Figure]],
    *,
    title: str,
) -> int:
    """Parse the common options, run the benchmark, print its table and write the JSON."""
    parser = argparse.ArgumentParser(description=description)
    add_common_arguments(parser)
    args = parser.parse_args(argv)

    machine = print_machine()
    figures = run(args.quick, args.tmp_dir)
    print_summary(figures, title=title)
    if args.json is not None:
        write_json(args.json, figures, machine)
    return 0


"""Run every benchmark of the core and print one summary table.

    .venv/bin/python benchmarks/run_all.py [--quick] [--tmp-dir DIR] [--json FILE]

The full run took 4 to 6 minutes on a shared 2-CPU machine, most of it in
``many_tenants.py``, plus about 2 minutes for ``mirror.py``; ``--quick``
takes about half a minute.
"""

from __future__ import annotations

import argparse
import sys
import time

import cold_open
import core
import many_tenants
import mirror
from _common import Figure, add_common_arguments, print_machine, print_summary, write_json

__all__ = ["main"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args(argv)

    machine = print_machine()
    started = time.perf_counter()
    figures: list[Figure] = []
    figures += core.run(args.quick, args.tmp_dir)
    figures += cold_open.run(args.quick, args.tmp_dir)
    figures += many_tenants.run(args.quick, args.tmp_dir)
    figures += mirror.run(args.quick, args.tmp_dir)
    elapsed = time.perf_counter() - started

    mode = "quick run" if args.quick else "full run"
    print_summary(figures, title=f"dorm-sqlalchemy core benchmarks ({mode}, {elapsed:.0f} s)")
    if args.json is not None:
        write_json(args.json, figures, machine, {"mode": mode, "seconds": round(elapsed, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

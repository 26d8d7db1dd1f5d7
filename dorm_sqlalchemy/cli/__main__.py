"""Run the ``dorm`` command line: ``python -m dorm_sqlalchemy.cli ...``."""

from __future__ import annotations

from .app import main

if __name__ == "__main__":
    raise SystemExit(main())

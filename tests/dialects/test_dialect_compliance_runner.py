"""Run a small part of SQLAlchemy's compliance suite through scripts/run_dialect_suite.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "scripts" / "run_dialect_suite.py"


@pytest.mark.timeout(180)
def test_quick_suite_passes_on_dorm_serve() -> None:
    completed = subprocess.run(
        [sys.executable, str(RUNNER), "--quick", "--", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    output = completed.stdout + completed.stderr

    assert completed.returncode == 0, output
    assert " passed" in completed.stdout, output
    assert " failed" not in completed.stdout, output

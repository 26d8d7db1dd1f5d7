"""Run the project's main jobs in a private virtual environment.

    python3 scripts/dev.py demo    # the Chinook multi-tenant demo
    python3 scripts/dev.py test    # the test suite (extra arguments go to pytest)

Each command creates ``.venv`` on first use and installs the project with the
extras it needs, so a machine with only Python 3.11+ and the package index is
enough.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"

EXTRAS = {"demo": "", "test": "[dev,server,remote,postgres,examples]"}


def ensure_venv(extras: str) -> None:
    """Create ``.venv`` and install the project with ``extras`` into it."""
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed{extras or '[core]'}"
    pyproject = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        check=True,
    )
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}{extras}"],
        check=True,
    )
    stamp.touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv(EXTRAS[command])
    if command == "demo":
        script = ROOT / "examples" / "chinook" / "demo.py"
        return subprocess.call([str(PYTHON), str(script), *rest], cwd=ROOT)
    return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run the project's main jobs in a private virtual environment.

    python3 scripts/dev.py demo    # the Chinook multi-tenant demo
    python3 scripts/dev.py test    # the test suite (extra arguments go to pytest)

The test command also installs PostgreSQL and Chromium from Debian's
packages when they are missing and it runs as root; the mirror and explorer
tests use them for real.

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

EXTRAS = {"demo": "", "test": "[dev,server,remote,postgres,examples,docs]"}


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


# Programs the tests drive for real, from Debian's packages: a PostgreSQL
# server for the mirror's aggregate and Chromium for the explorer page.
SYSTEM_PACKAGES = {
    "postgresql": lambda: any(Path("/usr/lib/postgresql").glob("*/bin/initdb")),
    "chromium": lambda: Path("/usr/bin/chromium").exists(),
}


def ensure_system_packages() -> None:
    """Install the missing test programs with apt-get when running as root."""
    missing = [name for name, present in SYSTEM_PACKAGES.items() if not present()]
    if not missing:
        return
    if os.name != "posix" or os.geteuid() != 0 or not Path("/usr/bin/apt-get").exists():
        print(
            f"dev.py: {', '.join(missing)} missing; install them (Debian: apt-get install -y "
            f"{' '.join(missing)}) or the tests that need them fail",
            file=sys.stderr,
        )
        return
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing],
        check=True,
        env=environment,
        stdout=subprocess.DEVNULL,
    )


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv(EXTRAS[command])
    if command == "demo":
        script = ROOT / "examples" / "chinook" / "demo.py"
        return subprocess.call([str(PYTHON), str(script), *rest], cwd=ROOT)
    ensure_system_packages()
    return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Every code block of README.md and docs/ runs, so no documented snippet rots.

Pages are discovered when the tests run, so a new page is covered without
touching this file. Each page runs in a fresh temporary working directory,
with its blocks in document order:

* ``python`` blocks run in one namespace per page. A block whose first line
  is a comment naming a file, such as ``# myapp/models.py``, is also written
  to that file, so later commands can import it. A ``print(...)`` line whose
  trailing comment is a Python literal (``# ['acme', 'globex']``, ``# 2``)
  must print exactly that line.
* ``console``, ``shell`` and ``bash`` blocks are split into commands (the
  lines after a ``$ `` prompt in a transcript, else every line). A command
  whose programs are all in ``RUN_PROGRAMS`` and ``PIPELINE_HELPERS`` runs
  for real with bash. It must succeed, or fail when its documented output
  shows an error. A command that cannot run here is listed in ``NOT_RUN``
  with the reason. Any other command fails the test, so a page cannot add a
  snippet that no test checks.
* ``sql`` blocks run against one in-memory SQLite database per page.
* ``text``, ``json``, ``toml``, ``ini``, ``diff`` and the other languages in
  ``DATA_LANGUAGES`` are data and are not run. A block without a language
  fails: give output blocks the language ``text``.

The ``>>>`` examples in the docstrings of both packages run as doctests.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import io
import os
import pkgutil
import shlex
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dorm_sqlalchemy import Dorm
from tests.docs.snippets import (
    Block,
    Command,
    commands_of,
    documented_output,
    file_target,
    pipeline_programs,
    read_blocks,
)

ROOT = Path(__file__).resolve().parents[2]

PYTHON_LANGUAGES = frozenset({"python", "py", "python3"})
SHELL_LANGUAGES = frozenset({"console", "shell", "bash", "sh"})
DATA_LANGUAGES = frozenset(
    {"text", "json", "jsonc", "ndjson", "toml", "ini", "diff", "yaml", "csv", "html", "http", "mako"}
)

RUN_PROGRAMS = frozenset(
    {"dorm", "alembic", "python -m dorm_sqlalchemy.cli", "export", "mkdir"}
)
"""Programs whose commands run for real in the page's working directory."""

PIPELINE_HELPERS = frozenset({"echo", "printf", "sort", "head", "tail", "cat", "wc", "sqlite3"})
"""Programs allowed beside a program of ``RUN_PROGRAMS`` in one pipeline."""

NOT_RUN: dict[str, str] = {
    "pip install": "installs packages from the package index",
    "python scripts/dev.py test": "runs this test suite, so running it here would recurse",
    "python scripts/dev.py demo": (
        "builds its own virtual environment from the package index; "
        "tests/examples/test_chinook_demo.py runs the demo itself"
    ),
    "python -m uvicorn": "starts a server that runs until it is stopped",
    "flask": "starts a server that runs until it is stopped",
    "curl": "needs the server started by the command before it",
    "pytest": "runs part of this test suite",
    "python benchmarks/": "runs for minutes; the benchmark scripts are run by hand",
    "python scripts/run_dialect_suite.py": (
        "runs SQLAlchemy's compliance suite against a server it starts; "
        "tests/dialects/test_dialect_compliance_runner.py runs it with --quick"
    ),
    "dorm serve": (
        "starts a server that runs until it is stopped; "
        "tests/server/test_server_cli.py starts it on 127.0.0.1 and checks it"
    ),
    "alembic revision --autogenerate -m add author": (
        "adds a revision, which changes the head that the later commands of the "
        "page expect; the page runs an earlier autogenerate command for real"
    ),
    "alembic -x tenant=acme revision --autogenerate -m add author": (
        "adds a revision, which changes the head that the later commands of the "
        "page expect; the page runs an earlier autogenerate command for real"
    ),
    "dorm --root data mirror rebuild --aggregate postgresql+psycopg://": (
        "needs a PostgreSQL server at the address shown; the pages run the same "
        "command with a SQLite aggregate"
    ),
}
"""Commands that are not run, by prefix, with the reason."""

SUBSTITUTED: dict[str, tuple[str, str]] = {
    "dorm drop globex": (
        "dorm drop globex --yes",
        "the confirmation prompt needs a terminal, and answering it is what --yes does",
    ),
}
"""Commands run in another form, with the reason."""

PYTHON_NOT_RUN: dict[tuple[str, str], str] = {
    ("examples.md", 'scoped_session(dorm.sessionmaker())'): (
        "an excerpt of examples/flask_app/app.py, which "
        "tests/examples/test_flask_app.py runs"
    ),
    ("migrations.md", 'config.attributes.get("connection")'): (
        "a fragment of an env.py, which only runs inside Alembic"
    ),
    ("http-api.md", "uvicorn.run(app"): "starts a server that runs until it is stopped",
    ("remote-dialect.md", "engine = create_engine("): (
        "needs a dorm serve on the address shown; tests/dialects/ makes the same "
        "calls against a real server"
    ),
    ("remote-dialect.md", 'session.add(Note(body="draft"))'): (
        "needs the engine of the first block; tests/dialects/test_dialect_transactions.py "
        "rolls back an ORM flush through a real server"
    ),
    ("remote-dialect.md", "stream_results=True"): (
        "needs the engine of the block before; tests/dialects/test_dialect_streaming.py "
        "streams through a real server"
    ),
    ("http-api.md", '"token-for-acme": TokenScope'): (
        "a fragment of the create_app() call of the block before, which starts a server"
    ),
}
"""Python blocks that are not run, by page and a line they contain, with the reason."""

FIXTURES: dict[str, dict[str, str | None]] = {
    "mirroring.md": {"data/": None},
    "cli.md": {
        "backups/": None,
        "users.json": (
            '{"$id": "users", "type": "object", "properties": '
            '{"id": {"type": "integer", "x-dorm-primary-key": true}, '
            '"email": {"type": "string", "x-dorm-unique": true}}}\n'
        ),
    },
}
"""Files a page's commands expect to exist (a path ending in / is a folder)."""

COMMAND_TIMEOUT = 120.0


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- python blocks --------------------------------------------------------


def _python_not_run_reason(block: Block) -> str | None:
    for (page, marker), reason in PYTHON_NOT_RUN.items():
        if block.path.name == page and marker in block.text:
            return reason
    return None


def _expected_prints(block: Block) -> dict[int, str]:
    """Map the page line of each ``print(...)  # literal`` to the promised output."""
    expected: dict[int, str] = {}
    for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
        if "print(" not in line or "  #" not in line:
            continue
        comment = line.rsplit("  #", 1)[1].strip()
        try:
            ast.literal_eval(comment)
        except (ValueError, SyntaxError):
            continue
        expected[number] = comment
    return expected


class _CheckedPrints(ast.NodeTransformer):
    """Route the print() calls that end on the given lines through ``__docs_print__``."""

    def __init__(self, lines: set[int]) -> None:
        self.lines = lines

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "print" and node.end_lineno in self.lines:
            node.args.insert(0, ast.Constant(node.end_lineno))
            node.func = ast.Name("__docs_print__", ast.Load())
        return ast.fix_missing_locations(node)


def _run_python(block: Block, namespace: dict[str, Any], workdir: Path) -> None:
    target = file_target(block)
    if target is not None:
        destination = workdir / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(block.text, encoding="utf-8")

    # Leading newlines make tracebacks show the line numbers of the page.
    tree = ast.parse("\n" * block.line + block.text, str(block.path))
    expected = _expected_prints(block)
    tree = _CheckedPrints(set(expected)).visit(tree)
    printed: dict[int, list[str]] = {}

    def docs_print(line: int, *args: Any, **options: Any) -> None:
        buffer = io.StringIO()
        print(*args, **{**options, "file": buffer})
        printed.setdefault(line, []).append(buffer.getvalue().rstrip("\n"))
        print(*args, **options)

    namespace["__docs_print__"] = docs_print
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(tree, str(block.path), "exec"), namespace)

    for line, output in expected.items():
        assert output in printed.get(line, []), (
            f"{block.path.name}:{line}: the comment promises the output {output!r}, "
            f"but this print() printed {printed.get(line, 'nothing')!r}"
        )


def _close_registries(namespace: dict[str, Any]) -> None:
    for value in list(namespace.values()):
        if isinstance(value, Dorm):
            value.close()


# -- shell blocks ---------------------------------------------------------


def _not_run_reason(command: str) -> str | None:
    normalized = _normalized(command)
    for prefix, reason in NOT_RUN.items():
        if normalized.startswith(prefix):
            return reason
    return None


def _normalized(command: str) -> str:
    """Return a command without leading assignments, with python3 and .venv/bin/ spelled plainly."""
    words = shlex.split(command, comments=True)
    while words and "=" in words[0] and words[0].split("=", 1)[0].isidentifier():
        words = words[1:]
    normalized = []
    for word in words:
        word = word.removeprefix(".venv/bin/")
        normalized.append("python" if word in ("python3", "python3.11") else word)
    return " ".join(normalized)


def _check_runnable(command: Command, block: Block) -> None:
    programs = pipeline_programs(command.text)
    unknown = [
        program
        for program in programs
        if program not in RUN_PROGRAMS and program not in PIPELINE_HELPERS
    ]
    assert not unknown and any(p in RUN_PROGRAMS for p in programs), (
        f"{block.where}: the command {command.text!r} runs {', '.join(programs)}; "
        f"{', '.join(unknown) or 'none of them'} is not a program this test runs. "
        "Make the command runnable here, or add it to NOT_RUN in "
        f"{Path(__file__).name} with the reason it cannot run"
    )


class Shell:
    """Runs a page's commands one by one, keeping exported variables between them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.state = workdir.parent / f"{workdir.name}-shell-state.sh"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DORM_")}
        environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
        environment["PYTHONPATH"] = os.pathsep.join([str(workdir), str(ROOT)])
        self.environment = environment
        self.state.write_text("", encoding="utf-8")

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        state = shlex.quote(str(self.state))
        script = (
            f"source {state}\n"
            f"{command}\n"
            "status=$?\n"
            f"export -p > {state}\n"
            "exit $status\n"
        )
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.workdir,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )


def _run_shell(block: Block, shell: Shell) -> None:
    for command in commands_of(block):
        text = command.text
        if text in SUBSTITUTED:
            text = SUBSTITUTED[text][0]
        elif _not_run_reason(text) is not None:
            continue
        _check_runnable(Command(text, command.line, command.output), block)

        result = shell.run(text)

        report = (
            f"{block.path.name}:{command.line}: {text!r} exited with {result.returncode}\n"
            f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-2000:]}"
        )
        if documented_output(command) == "error":
            assert result.returncode != 0, "the page shows an error, but " + report
        else:
            assert result.returncode == 0, report


# -- pages ----------------------------------------------------------------


def _write_fixtures(page: Path, workdir: Path) -> None:
    for name, content in FIXTURES.get(page.name, {}).items():
        target = workdir / name
        if content is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")


@contextlib.contextmanager
def _importable(workdir: Path, page_module: ModuleType) -> Any:
    """Register the page's module and let blocks import files written into ``workdir``.

    Both are forgotten afterwards, so pages cannot see each other's modules.
    """
    sys.path.insert(0, str(workdir))
    sys.modules[page_module.__name__] = page_module
    try:
        yield
    finally:
        sys.path.remove(str(workdir))
        del sys.modules[page_module.__name__]
        for name, module in list(sys.modules.items()):
            location = getattr(module, "__file__", None) or ""
            if location.startswith(str(workdir)):
                del sys.modules[name]


def run_page(page: Path, workdir: Path) -> None:
    """Run every code block of ``page`` in order, with ``workdir`` as the working directory."""
    _write_fixtures(page, workdir)
    shell = Shell(workdir)
    # A real module, because SQLAlchemy resolves Mapped[...] annotations
    # through sys.modules[cls.__module__].
    module = ModuleType(f"docs_page_{uuid.uuid4().hex}")
    namespace = module.__dict__
    database = sqlite3.connect(":memory:")

    try:
        with _importable(workdir, module):
            for block in read_blocks(page):
                if block.language in PYTHON_LANGUAGES:
                    if _python_not_run_reason(block) is None:
                        _run_python(block, namespace, workdir)
                elif block.language in SHELL_LANGUAGES:
                    _run_shell(block, shell)
                elif block.language == "sql":
                    database.executescript(block.text)
                else:
                    assert block.language in DATA_LANGUAGES, (
                        f"{block.where}: code block with language {block.language or '(none)'!r}: "
                        "use python, console, sql or a data language such as text or json"
                    )
    finally:
        _close_registries(namespace)
        database.close()


def test_pages_are_found() -> None:
    names = {path.name for path in _pages()}

    assert {"README.md", "getting-started.md", "concepts.md", "configuration.md"} <= names


@pytest.mark.parametrize("page", _pages(), ids=_page_id)
def test_page_snippets_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    run_page(page, workdir)


# -- the runner itself ----------------------------------------------------

PASSING_PAGE = """\
```python
from dorm_sqlalchemy import Dorm

dorm = Dorm(root="tenants")
print(dorm.exec("acme", "SELECT 40 + 2").scalar())   # 42
for tenant in dorm.tenants():
    print(repr(tenant))                              # 'acme'
```

```console
$ dorm --root tenants tenants
acme
$ dorm --root tenants sql nobody "SELECT 1"
dorm: error: tenant 'nobody' does not exist
```

```sql
CREATE TABLE t (x INTEGER);
```

```text
any output
```
"""

FAILING_PAGES = {
    "wrong printed value": "```python\nprint(1 + 1)   # 3\n```\n",
    "print never reached": "```python\nif False:\n    print(2)   # 2\n```\n",
    "unknown command": "```console\n$ rm -rf build\n```\n",
    "unknown program in a pipeline": "```shell\ndorm tenants | xargs echo\n```\n",
    "command that fails": "```console\n$ dorm --root tenants sql nobody 'SELECT 1'\n```\n",
    "error shown but command succeeds": "```console\n$ dorm --version\ndorm: error: nothing\n```\n",
    "block without a language": "```\nplain\n```\n",
    "python that raises": "```python\nraise ValueError('broken snippet')\n```\n",
    "invalid sql": "```sql\nSELEC 1;\n```\n",
}


def test_runner_accepts_passing_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "passing.md"
    page.write_text(PASSING_PAGE, encoding="utf-8")
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    run_page(page, workdir)


@pytest.mark.parametrize("text", FAILING_PAGES.values(), ids=FAILING_PAGES.keys())
def test_runner_rejects_broken_page(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "broken.md"
    page.write_text(text, encoding="utf-8")
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    with pytest.raises((AssertionError, ValueError, sqlite3.Error)):
        run_page(page, workdir)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$ dorm tenants\nacme\n$ dorm size acme\n8192\n", [("dorm tenants", ("acme",)), ("dorm size acme", ("8192",))]),
        ("dorm create acme  # one\n# a comment\n\ndorm tenants\n", [("dorm create acme  # one", ()), ("dorm tenants", ())]),
        ("curl -s url \\\n  -d '{}'\n", [("curl -s url -d '{}'", ())]),
    ],
    ids=["transcript", "listing", "continuation"],
)
def test_commands_of_block(text: str, expected: list[tuple[str, tuple[str, ...]]]) -> None:
    block = Block(Path("page.md"), 1, "console", text)

    commands = [(command.text, command.output) for command in commands_of(block)]

    assert commands == expected


@pytest.mark.parametrize(
    ("command", "programs"),
    [
        ("dorm tenants", ["dorm"]),
        ("DORM_URL=x dorm tenants | sort -k2 | head", ["dorm", "sort", "head"]),
        (".venv/bin/python -m uvicorn app:app", ["python -m uvicorn"]),
        ("python3 scripts/dev.py test", ["python scripts/dev.py"]),
        ("echo 'SELECT 1' | dorm sql acme -", ["echo", "dorm"]),
    ],
)
def test_pipeline_programs(command: str, programs: list[str]) -> None:
    assert pipeline_programs(command) == programs


def test_not_run_lists_are_current() -> None:
    blocks = [block for page in _pages() for block in read_blocks(page)]
    commands = [
        command.text
        for block in blocks
        if block.language in SHELL_LANGUAGES
        for command in commands_of(block)
    ]
    normalized = [_normalized(command) for command in commands]

    for prefix in NOT_RUN:
        assert any(command.startswith(prefix) for command in normalized), prefix
    for command in SUBSTITUTED:
        assert command in commands, command
    for page, marker in PYTHON_NOT_RUN:
        assert any(b.path.name == page and marker in b.text for b in blocks), (page, marker)


# -- docstrings -----------------------------------------------------------


def _modules() -> list[ModuleType]:
    modules = []
    for package_name in ("dorm_sqlalchemy", "alembic_ext"):
        package = importlib.import_module(package_name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if info.name.endswith("__main__"):
                continue
            modules.append(importlib.import_module(info.name))
    return modules


def _modules_with_examples() -> list[ModuleType]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [module for module in _modules() if any(test.examples for test in finder.find(module))]


def test_docstrings_have_examples() -> None:
    assert _modules_with_examples()


@pytest.mark.parametrize("module", _modules_with_examples(), ids=lambda module: module.__name__)
def test_docstring_examples_run(
    module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    output = io.StringIO()

    for test in finder.find(module):
        runner.run(test, out=output.write)

    assert runner.failures == 0, output.getvalue()

"""Read the fenced code blocks of Markdown files and the shell commands inside them.

The documentation tests use this module to find every snippet a reader can
copy: ``python`` blocks, shell transcripts (``console``, ``shell``, ``bash``)
and data blocks (``text``, ``sql``, ``json`` ...).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Block",
    "Command",
    "commands_of",
    "documented_output",
    "file_target",
    "pipeline_programs",
    "read_blocks",
]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")

# A first line such as "# myapp/models.py" names the file a Python block shows.
_FILE_COMMENT = re.compile(r"#\s*(?P<path>[A-Za-z0-9_][A-Za-z0-9_./-]*\.py)\s*$")

_PROMPT = "$ "

_ERROR_OUTPUT = re.compile(r"^(\S+: error:|error:|Error:|Traceback )")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, its text and where it starts."""

    path: Path
    line: int
    """Line number (1-based) of the opening fence."""

    language: str
    """The first word of the info string, lower case; empty when there is none."""

    text: str

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


@dataclass(frozen=True)
class Command:
    """One shell command of a block, with the output lines documented after it."""

    text: str
    line: int
    output: tuple[str, ...] = field(default=())


def read_blocks(path: Path) -> list[Block]:
    """Return the fenced code blocks of a Markdown file, in document order.

    Fences may be indented (inside list items); the indentation of the
    opening fence is removed from every line of the block. A block that is
    never closed raises ``ValueError``, because Markdown would swallow the
    rest of the page into it.
    """
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue

        indent = match.group("indent")
        fence = match.group("fence")
        info = match.group("info").strip()
        language = info.split()[0].lower() if info else ""
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if (
                closing is not None
                and closing.group("fence")[0] == fence[0]
                and len(closing.group("fence")) >= len(fence)
                and not closing.group("info").strip()
            ):
                break
            line = lines[index]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            index += 1
        else:
            raise ValueError(f"{path.name}:{start + 1}: the code block is never closed")

        blocks.append(Block(path, start + 1, language, "\n".join(body) + "\n"))
        index += 1
    return blocks


def file_target(block: Block) -> str | None:
    """Return the relative file path a Python block names on its first line, if any."""
    first = block.text.split("\n", 1)[0]
    match = _FILE_COMMENT.fullmatch(first.strip())
    return match.group("path") if match else None


def commands_of(block: Block) -> list[Command]:
    """Split a shell block into commands.

    In a transcript (a block with ``$ `` prompts) only prompted lines are
    commands, and the lines up to the next prompt are their output. Without
    prompts, every line that is not blank and not a ``#`` comment is a
    command. A line ending in ``\\`` continues on the next line.
    """
    lines = block.text.splitlines()
    transcript = any(line.startswith(_PROMPT) or line == "$" for line in lines)
    commands: list[Command] = []
    pending: list[str] = []
    pending_line = 0
    output: list[str] = []

    def finish() -> None:
        if pending:
            commands.append(Command(" ".join(pending), pending_line, tuple(output)))

    for number, line in enumerate(lines, start=block.line + 1):
        if pending and pending[-1].endswith("\\"):
            pending[-1] = pending[-1][:-1].rstrip()
            pending.append(line.strip())
            continue
        if transcript and not line.startswith(_PROMPT):
            output.append(line)
            continue
        text = line[len(_PROMPT):] if transcript else line
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        finish()
        pending = [text.strip()]
        pending_line = number
        output = []
    finish()
    return commands


def documented_output(command: Command) -> str:
    """Return ``"error"`` when the documented output shows a failure, else ``"success"``."""
    if any(_ERROR_OUTPUT.match(line) for line in command.output):
        return "error"
    return "success"


def pipeline_programs(command: str) -> list[str]:
    """Return the program of each stage of a shell pipeline or command list.

    Leading ``NAME=value`` assignments are skipped. ``python -m module`` and
    ``python script.py`` count as one program (``python -m module``,
    ``python script.py``) so that allow-lists can name them.
    """
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    programs: list[str] = []
    stage: list[str] = []
    for token in [*lexer, "|"]:
        if token and set(token) <= set("|&;"):
            if stage:
                programs.append(_program_of(stage))
            stage = []
            continue
        stage.append(token)
    return programs


def _program_of(words: list[str]) -> str:
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]
    if not words:
        return ""
    program = words[0].rsplit("/", 1)[-1]
    if program.startswith("python") and len(words) > 1:
        if words[1] == "-m" and len(words) > 2:
            return f"python -m {words[2]}"
        return f"python {words[1]}"
    return program

"""How ``dorm`` prints query results and sizes: a rich table, JSON or CSV.

JSON and CSV are written row by row as the cursor reads them, so their memory
stays flat on any result size. The table needs every row before it can size
its columns, so it keeps the whole result in memory.

Values are encoded as follows:

========  ================  ==================  ======================
SQLite    table             JSON                CSV
========  ================  ==================  ======================
NULL      ``NULL`` (dim)    ``null``            empty field
INTEGER   digits            number              digits
REAL      shortest repr     number [#inf]_      shortest repr
TEXT      the text          string              the text
BLOB      ``X'0a0b'``       ``{"$base64": …}``  base64 text
========  ================  ==================  ======================

.. [#inf] Infinite REAL values are written as ``1e999`` and ``-1e999``, which
   JSON parsers read back as infinity.
"""

from __future__ import annotations

import base64
import csv
import json
import math
from typing import Any, TextIO

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from ..cursor import Cursor

__all__ = [
    "count_phrase",
    "format_size",
    "print_table",
    "write_csv",
    "write_json",
]

# Bytes of a BLOB shown in a table cell before it is cut off.
TABLE_BLOB_BYTES = 32

_SIZE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def count_phrase(count: int, noun: str) -> str:
    """Return ``"1 row"`` or ``"3 rows"``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_size(size: int, *, human: bool = False) -> str:
    """Format a size in bytes; with ``human``, in KiB, MiB, ... (powers of 1024)."""
    if not human:
        return str(size)
    if size < 1024:
        return f"{size} B"

    value = float(size)
    for unit in _SIZE_UNITS:
        value /= 1024
        if value < 1024 or unit == _SIZE_UNITS[-1]:
            break
    return f"{value:.1f} {unit}"


# -- table ---------------------------------------------------------------------


def print_table(console: Console, cursor: Cursor) -> None:
    """Print the rows of ``cursor`` as a table, then the row counts."""
    if not cursor.column_names:
        console.print(count_phrase(cursor.rows_written, "row") + " written")
        return

    columns = [Column(Text(name), overflow="fold") for name in cursor.column_names]
    table = Table(*columns, header_style="bold")
    for row in cursor.raw():
        table.add_row(*(_table_cell(value) for value in row))
    console.print(table)

    summary = count_phrase(cursor.rows_read, "row")
    if cursor.rows_written:
        summary += ", " + count_phrase(cursor.rows_written, "row") + " written"
    console.print(summary)


def _table_cell(value: Any) -> Text:
    # Text() keeps "[bold]" and the like in the data literal and strips
    # terminal control codes, so table cells cannot restyle the terminal.
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, bytes):
        return Text(_blob_literal(value), style="cyan")
    if isinstance(value, float):
        return Text(repr(value))
    return Text(str(value))


def _blob_literal(value: bytes) -> str:
    hex_digits = value[:TABLE_BLOB_BYTES].hex()
    if len(value) <= TABLE_BLOB_BYTES:
        return f"X'{hex_digits}'"
    return f"X'{hex_digits}…' ({len(value)} bytes)"


# -- JSON ----------------------------------------------------------------------


def write_json(stream: TextIO, cursor: Cursor) -> None:
    """Write the rows of ``cursor`` as a JSON array of objects, one row per line.

    A statement without result columns gives ``{"rows_written": N}``. Each
    object lists the columns in result order; two columns with the same name
    both appear, as in SQLite's own JSON output mode.
    """
    if not cursor.column_names:
        stream.write(json.dumps({"rows_written": cursor.rows_written}) + "\n")
        return

    keys = [json.dumps(name, ensure_ascii=False) for name in cursor.column_names]
    stream.write("[")
    separator = "\n"
    for row in cursor.raw():
        fields = ", ".join(f"{key}: {_json_value(value)}" for key, value in zip(keys, row))
        stream.write(f"{separator}{{{fields}}}")
        separator = ",\n"
    stream.write("\n]\n" if cursor.rows_read else "]\n")


def _json_value(value: Any) -> str:
    if isinstance(value, bytes):
        return json.dumps({"$base64": base64.b64encode(value).decode("ascii")})
    if isinstance(value, float) and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return json.dumps(value, ensure_ascii=False)


# -- CSV -----------------------------------------------------------------------


def write_csv(stream: TextIO, cursor: Cursor) -> None:
    """Write a header line and the rows of ``cursor`` as CSV.

    A statement without result columns gives a ``rows_written`` column with
    one row. NULL and the empty string both become an empty field.
    """
    writer = csv.writer(stream, lineterminator="\n")
    if not cursor.column_names:
        writer.writerow(["rows_written"])
        writer.writerow([cursor.rows_written])
        return

    writer.writerow(cursor.column_names)
    for row in cursor.raw():
        writer.writerow([_csv_value(value) for value in row])


def _csv_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value

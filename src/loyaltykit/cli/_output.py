"""How the command line writes results: a table (rich), JSON (the results' own JSON
form, docs/json.md) or CSV (the table's rows, nested values flattened to dotted
columns: ``revenue.amount``, ``revenue.currency``).

A report hands over its JSON data and its rows (flat dicts of text, numbers or None);
the table and the CSV show the rows, the JSON the data.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["FORMATS", "console", "flat", "write", "write_json"]

#: The formats of ``--format``.
FORMATS = ("table", "json", "csv")

Row = Mapping[str, Any]


def console(*, stderr: bool = False) -> Any:
    """A rich console on stdout (or stderr); wide when it is not a terminal, so a
    table written to a file or a pipe is not cut to 80 columns."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """``data`` (JSON data) as one level of columns: a mapping's keys joined with dots,
    a list as its JSON text."""
    out: dict[str, Any] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                out.update(flat(value, name))
            elif isinstance(value, list):
                out[name] = json.dumps(value, separators=(",", ":"))
            else:
                out[name] = value
    else:
        out[prefix or "value"] = data
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_json(data: Any, out: TextIO | None = None) -> None:
    """``data`` (JSON data) as indented JSON on ``out`` (stdout)."""
    stream = out if out is not None else sys.stdout
    stream.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write(fmt: str, data: Any, rows: Sequence[Row], *, title: str = "",
          columns: Sequence[str] | None = None) -> None:
    """Write a result in ``fmt``: ``data`` as JSON, or ``rows`` (in ``columns``' order,
    default: the first row's) as a table or CSV."""
    if fmt == "json":
        write_json(data)
        return
    names = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([_cell(row.get(name)) for name in names])
        return
    from rich.table import Table

    out = console()
    if title:
        out.print(title)
    table = Table()
    for name in names:
        numeric = any(isinstance(row.get(name), int | float) for row in rows)
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(row.get(name)) for name in names))
    out.print(table)

"""``loyaltykit program check FILE`` (a TOML or JSON program, no database needed) and
``loyaltykit program show`` (the program stored in the database): what the program
means, in words (:func:`loyaltykit.describe_program`)."""

from __future__ import annotations

import argparse
from typing import Any

from loyaltykit import Program, describe_program
from loyaltykit.cli._connect import connect
from loyaltykit.cli._output import write_json

__all__ = ["add_parser", "check_run", "show_run"]


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``program`` (``check``, ``show``) to the command line."""
    program = commands.add_parser(
        "program", parents=[common], help="check a program file, or show the stored one",
        description="A program's definition, checked and said in words.",
    )
    actions = program.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", parents=[common], help="validate a TOML/JSON program and say what it means",
        description="Load FILE (.toml or .json, the Program.to_dict shape), check every "
                    "field, and print what the program means. Exit 1 if it is invalid.",
    )
    check.add_argument("file", metavar="FILE", help="the program file (.toml or .json)")
    check.add_argument("--json", action="store_true",
                       help="print the checked definition as JSON instead of words")
    check.set_defaults(run=check_run)
    show = actions.add_parser(
        "show", parents=[common], help="say what the stored program means",
        description="Print what the latest stored version of the program means.",
    )
    show.add_argument("--json", action="store_true",
                      help="print the stored definition as JSON instead of words")
    show.set_defaults(run=show_run)


def _print(program: Program, as_json: bool) -> None:
    if as_json:
        write_json(program.to_dict())
    else:
        print("\n".join(describe_program(program)))


def check_run(args: argparse.Namespace) -> int:
    """Check a program file; print what it means (an invalid one: exit 1)."""
    _print(Program.from_file(args.file), args.json)
    return 0


def show_run(args: argparse.Namespace) -> int:
    """Print what the stored program means."""
    with connect(args) as loyalty:
        _print(loyalty.program, args.json)
    return 0

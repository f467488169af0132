"""The ``loyaltykit`` command (also ``python -m loyaltykit``): the operator's side.

One module per command group: ``due`` (the nightly job), ``report`` (liability, KPIs,
RFM, CLV, tiers, totals as a table, JSON or CSV), ``events`` (tail and acknowledge the
outbox as JSON lines), ``program`` (check a program file and say what it means),
``member`` (a member's balances, lots and statement), ``migrate`` and ``demo``.
:mod:`loyaltykit.cli._connect` turns ``--url``/``LOYALTYKIT_URL`` and
``--program``/``LOYALTYKIT_PROGRAM`` into a facade of the program stored in the
database, and every failure into one line and an exit status:

* 0: done;
* 1: an error (the database, the program, a report's input, or due work that did not
  finish: someone must look);
* 2: usage (unknown option, missing argument, no ``--url``).

``-v`` logs what the library does and adds the traceback to an error; ``-vv`` logs
at debug level. Terminal output (tables, the progress bar) is drawn with ``rich``,
imported only here: ``import loyaltykit`` never imports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata

from loyaltykit import LoyaltyError
from loyaltykit.cli import _connect, demo, due, events, member, migrate, program, report
from loyaltykit.cli._connect import CliError

__all__ = ["main"]

EPILOG = """\
global options go before or after the command; `loyaltykit COMMAND --help` tells more.

exit status:
  0  done
  1  error (database, program, input; due work that did not finish)
  2  usage (bad option or argument, no database URL)

docs: docs/operations.md (cron line, environment, exit codes)
"""

#: A command: its arguments, and it returns the exit status.
Command = Callable[[argparse.Namespace], int]


def _version() -> str:
    try:
        return metadata.version("loyaltykit")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes, before or after its name. After it
    (``suppress``) they default to nothing, so they do not undo the ones before it."""
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "-v", "--verbose", action="count", default=default(0),
        help="log what the library does to stderr (-v: info, -vv: debug); "
             "errors come with their traceback",
    )
    parser.add_argument(
        "--url", default=default(None), metavar="URL",
        help="database URL (default: $LOYALTYKIT_URL), e.g. sqlite:///loyalty.sqlite or "
             "postgresql+psycopg://user@host/db",
    )
    parser.add_argument(
        "--program", default=default(None), metavar="ID",
        help="the program to use (default: $LOYALTYKIT_PROGRAM, else the only one stored)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line's parser (every command and its options)."""
    parser = argparse.ArgumentParser(
        prog="loyaltykit",
        description="A double-entry points ledger for loyalty and referral programs: run "
                    "the due work, read reports and events, check programs.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"loyaltykit {_version()}")
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (due, report, events, program, member, migrate, demo):
        module.add_parser(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit
    status (0 done, 1 error, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    verbose = int(args.verbose or 0)
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    command: Command | None = getattr(args, "run", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return command(args)
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("loyaltykit: interrupted", file=sys.stderr)
        return 130
    except CliError as exc:
        return _fail(str(exc), exc.status, verbose)
    except LoyaltyError as exc:
        return _fail(_connect.explain(exc, args), 1, verbose)
    except OSError as exc:
        return _fail(str(exc), 1, verbose)
    except Exception as exc:  # a bug: still one line, the traceback with -v
        hint = "" if verbose else " (run with -v for the traceback)"
        return _fail(f"unexpected {type(exc).__name__}: {exc}{hint}", 1, verbose)


def _fail(message: str, status: int, verbose: int) -> int:
    if verbose:
        traceback.print_exc(file=sys.stderr)
    print(f"loyaltykit: error: {message}", file=sys.stderr)
    return status

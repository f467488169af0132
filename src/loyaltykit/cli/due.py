"""``loyaltykit due``: the nightly job (``Loyalty.run_due``) from cron.

On a terminal it draws a progress bar on stderr; otherwise it stays quiet but for one
JSON line per stage on stderr (``{"event": "due.stage", ...}``, the ledger's ranges at
most every 10 seconds) and one at the end (``"due.done"``, or ``"due.failed"``), for a
log collector. The report (what was released, activated, expired, evaluated...) goes
to stdout. Exit 0 when every stage finished; 1 when the run stopped (a database error,
a conflict retried too often: the stages done are committed, run it again).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import Any

from loyaltykit import DueProgress, DueWorkReport
from loyaltykit._json import to_data
from loyaltykit.cli._connect import CliError, connect, parse_instant
from loyaltykit.cli._output import FORMATS, console, write

__all__ = ["add_parser", "run"]

#: The ledger's ranges are logged at most this often (seconds) off a terminal.
LOG_EVERY = 10.0


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``due`` to the command line."""
    parser = commands.add_parser(
        "due", parents=[common], help="run the due work (expiry, holds, tiers, notices)",
        description="Post everything due up to now (or --at) for every member: release stale\n"
                    "holds, activate matured pending points, expire lots, evaluate tiers,\n"
                    "expire vouchers, append notices, prune events. Idempotent and\n"
                    "resumable: run it from cron as often as you like. A progress bar on\n"
                    "a terminal, else one JSON line per stage on stderr; the report on\n"
                    "stdout.",
        epilog="exit status:\n  0  done\n  1  the run stopped: see the error (what was done "
               "is committed; run it again)\n  2  usage",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--at", metavar="INSTANT",
                        help="post what is due up to this ISO 8601 instant with offset "
                             "(default: now; not in the future)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="run up to N ranges of members at once (PostgreSQL; default 1)")
    parser.add_argument("--batch-size", type=int, default=500, metavar="N",
                        help="member wallets per unit of work (default 500)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="how to print the report (default: table)")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="draw the progress bar even when stderr is not a terminal")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="log JSON lines instead of drawing the progress bar")
    parser.set_defaults(run=run)


def _log(event: str, **fields: Any) -> None:
    """One JSON line on stderr."""
    sys.stderr.write(json.dumps({"event": event, **to_data(fields)},
                                separators=(",", ":")) + "\n")
    sys.stderr.flush()


class _Lines:
    """Progress as JSON lines: one per stage finished, the ledger's at most every
    :data:`LOG_EVERY` seconds (and when it is done)."""

    def __init__(self) -> None:
        self.last: DueProgress | None = None
        self.logged = time.monotonic()

    def __call__(self, p: DueProgress) -> None:
        last, self.last = self.last, p
        now = time.monotonic()
        if p.stage == "ledger":
            if p.done == 0:
                _log("due.start", at=p.at, stages=p.total)
            elif now - self.logged >= LOG_EVERY:
                self._stage(p, now)
            return
        if last is not None and last.stage == "ledger" and last.done:
            self._stage(last, now)  # the ledger's part ended before this stage
        self._stage(p, now)

    def _stage(self, p: DueProgress, now: float) -> None:
        self.logged = now
        _log("due.stage", stage=p.stage, done=p.done, total=p.total, members=p.members)


class _Bar:
    """Progress as a rich progress bar on stderr."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("due work"), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(),
            console=console(stderr=True), transient=False,
        )
        self.task: Any = None
        self.last: DueProgress | None = None

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, p: DueProgress) -> None:
        self.last = p
        what = f"{p.stage}: {p.members} members"
        if self.task is None:
            self.task = self.progress.add_task(what, total=p.total)
        self.progress.update(self.task, completed=p.done, total=p.total, description=what)


def run(args: argparse.Namespace) -> int:
    """Run the due work; print its report; 0 if it finished, 1 if it stopped."""
    at = None if args.at is None else parse_instant(args.at, "--at")
    for option, value in (("--workers", args.workers), ("--batch-size", args.batch_size)):
        if value < 1:
            raise CliError(f"{option} must be at least 1", status=2)
    with connect(args) as loyalty:
        show_bar = args.progress if args.progress is not None else sys.stderr.isatty()
        started = time.monotonic()
        tracker: _Bar | _Lines = _Bar() if show_bar else _Lines()
        try:
            with tracker if isinstance(tracker, _Bar) else contextlib.nullcontext():
                report = loyalty.run_due(at, batch_size=args.batch_size,
                                         workers=args.workers, on_progress=tracker)
        except Exception as exc:
            last = tracker.last
            if not show_bar:
                _log("due.failed", error=str(exc), stages_done=0 if last is None
                     else last.done, seconds=round(time.monotonic() - started, 3))
            if last is None:
                raise  # refused before any work (a bad --at): the error says why
            raise CliError(f"due work stopped after {last.done} of {last.total} stages "
                           f"(what was done is committed; run it again): {exc}") from exc
        seconds = round(time.monotonic() - started, 3)
        if not show_bar:
            _log("due.done", seconds=seconds, **to_data(report))
        _print(report, args.format)
    return 0


def _print(report: DueWorkReport, fmt: str) -> None:
    data = report.to_dict()
    if fmt == "table":
        rows = [{"count": name, "value": value} for name, value in data.items()
                if name in ("at", "members") or value]
        write(fmt, data, rows, title=f"due work up to {report.at.isoformat()}",
              columns=["count", "value"])
    else:
        write(fmt, data, [data])

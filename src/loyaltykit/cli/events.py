"""``loyaltykit events tail|ack``: the outbox (``loyalty.events``, docs/events.md) as
JSON lines, one event a line (its JSON form), for a mailer or a queue to read from a
pipe.

``tail`` prints the events after the position ``--consumer`` acknowledged last (from
the first event without ``--consumer``) and does not acknowledge them: the reader
acknowledges what it handled with ``ack --consumer NAME POSITION`` (at-least-once, as
the library's consumers), or ``tail --ack`` acknowledges what was printed once it is
written. ``tail --follow`` keeps printing as events come and acknowledges each batch
once the next is asked for (so once it was printed), and what it printed last when it
stops (``--limit``, ^C or SIGTERM): it needs ``--consumer``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from loyaltykit import EventPosition, OutboxEvent
from loyaltykit.cli._connect import CliError, connect

__all__ = ["FRESH_CONSUMER", "ack_run", "add_parser", "tail_run"]

#: The consumer ``tail`` reads as without ``--consumer``: one that never acknowledges,
#: so it reads from the first event.
FRESH_CONSUMER = "loyaltykit-cli-tail"
#: The most events one read returns (``loyalty.events.read``'s limit).
MAX_READ = 10_000


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``events`` (``tail``, ``ack``) to the command line."""
    events = commands.add_parser(
        "events", parents=[common], help="read and acknowledge the outbox (JSON lines)",
        description="The program's outbox: every change as an event, read by named "
                    "consumers.",
    )
    actions = events.add_subparsers(dest="action", metavar="ACTION", required=True)
    tail = actions.add_parser(
        "tail", parents=[common], help="print events as JSON lines",
        description="Print the events after the consumer's last acknowledged position, "
                    "one JSON object a line. Nothing is acknowledged unless --ack or "
                    "--follow.",
    )
    tail.add_argument("--consumer", metavar="NAME",
                      help="read after this consumer's position (default: from the first "
                           "event)")
    tail.add_argument("--limit", type=int, default=None, metavar="N",
                      help=f"print at most N events (1-{MAX_READ}; default 100; with "
                           "--follow: stop after N, default never)")
    tail.add_argument("--follow", action="store_true",
                      help="keep printing events as they come (needs --consumer; "
                           "acknowledges what was printed)")
    tail.add_argument("--ack", action="store_true",
                      help="acknowledge the events printed for --consumer")
    tail.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                      help="with --follow: wait up to this long for new events (default 1)")
    tail.set_defaults(run=tail_run)
    ack = actions.add_parser(
        "ack", parents=[common], help="acknowledge events up to a position",
        description="Acknowledge that the consumer handled everything up to POSITION "
                    "(an event's \"position\" text); print its position now.",
    )
    ack.add_argument("--consumer", metavar="NAME", required=True,
                     help="the consumer's name")
    ack.add_argument("position", metavar="POSITION",
                     help="the position of the last event handled")
    ack.set_defaults(run=ack_run)


def _line(event: OutboxEvent) -> None:
    sys.stdout.write(json.dumps(event.to_dict(), separators=(",", ":"),
                                ensure_ascii=False) + "\n")


def tail_run(args: argparse.Namespace) -> int:
    """Print events as JSON lines (see the module docstring)."""
    if args.follow and args.consumer is None:
        raise CliError("events tail --follow needs --consumer NAME (it acknowledges what "
                       "it printed)", status=2)
    if args.ack and args.consumer is None:
        raise CliError("events tail --ack needs --consumer NAME", status=2)
    limit = args.limit if args.limit is not None else 0 if args.follow else 100
    if args.limit is not None and not 1 <= limit <= (MAX_READ if not args.follow else 10**9):
        raise CliError(f"--limit must be in 1..{MAX_READ}", status=2)
    with connect(args) as loyalty:
        events = loyalty.events
        if not args.follow:
            found = events.read(args.consumer or FRESH_CONSUMER, limit)
            for event in found:
                _line(event)
            sys.stdout.flush()
            if args.ack and found:
                events.ack(args.consumer, found[-1])
            return 0
        printed = 0
        last: EventPosition | None = None
        # ^C and SIGTERM (a container stopping, a supervisor) end following between two
        # events, never half way through writing one: what was printed is acknowledged
        stopping: list[int] = []

        def stop(signum: int, frame: object) -> None:
            stopping.append(signum)

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        stream = events.follow(args.consumer, batch=min(limit, 100) if limit else 100,
                               poll=args.poll, stop=lambda: bool(stopping))
        try:
            for event in stream:
                _line(event)
                sys.stdout.flush()
                printed += 1
                last = event.position
                if stopping or printed >= limit > 0:
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if last is not None:
            events.ack(args.consumer, last)
    return 0


def ack_run(args: argparse.Namespace) -> int:
    """Acknowledge up to a position; print the consumer's position now."""
    position = EventPosition.from_str(args.position)
    with connect(args) as loyalty:
        now = loyalty.events.ack(args.consumer, position)
    print(now.to_str())
    return 0

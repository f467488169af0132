"""``loyaltykit member show ID``: a member's balance in each wallet, open lots, recent
statement lines and tier (if the program has tiers)."""

from __future__ import annotations

import argparse
from typing import Any

from loyaltykit import Loyalty
from loyaltykit._json import to_data
from loyaltykit.cli._connect import CliError, connect
from loyaltykit.cli._output import console, write_json

__all__ = ["add_parser", "run"]


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``member show`` to the command line."""
    member = commands.add_parser(
        "member", parents=[common], help="a member's balances, lots and statement",
        description="One member of the program.",
    )
    actions = member.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", parents=[common], help="balance per wallet, open lots, recent statement",
        description="The member's balance in each wallet, open lots, the latest "
                    "statement lines and tier.",
    )
    show.add_argument("member_id", metavar="ID", help="the shop's member id")
    show.add_argument("--lines", type=int, default=10, metavar="N",
                      help="statement lines per wallet (newest first; default 10)")
    show.add_argument("--format", choices=("table", "json"), default="table",
                      help="table (default) or json")
    show.set_defaults(run=run)


def _gather(loyalty: Loyalty, member_id: str, lines: int) -> dict[str, Any]:
    member = loyalty.member(member_id)
    wallets = {}
    for wallet in loyalty.program.wallets:
        wallets[wallet] = {
            "balance": loyalty.balance(member_id, wallet=wallet),
            "lots": loyalty.lots(member_id, wallet=wallet),
            "statement": loyalty.statement(member_id, wallet=wallet, limit=lines).lines,
        }
    tier = loyalty.tiers.status(member_id) if loyalty.program.tiers is not None else None
    return {"member": member, "tier": tier, "wallets": wallets}


def run(args: argparse.Namespace) -> int:
    """Print one member."""
    if not 1 <= args.lines <= 1000:
        raise CliError("--lines must be in 1..1000", status=2)
    with connect(args) as loyalty:
        found = _gather(loyalty, args.member_id, args.lines)
    if args.format == "json":
        write_json(to_data(found))
        return 0
    from rich.table import Table

    out = console()
    member = found["member"]
    tier = found["tier"]
    head = f"member {member.member_id} (enrolled {member.enrolled_at.isoformat()})"
    if tier is not None:
        head += f", tier {tier.tier}"
    out.print(head)
    for wallet, part in found["wallets"].items():
        b = part["balance"]
        expiring = (f"; next expiry {b.next_expiring_points} on "
                    f"{b.next_expiring_at.isoformat()}" if b.next_expiring_at else "")
        out.print(f"\n{wallet}: {b.available} available, {b.pending} pending, "
                  f"{b.held} held, {b.debt} debt{expiring}")
        if part["lots"]:
            lots = Table(title=f"open lots in {wallet}", title_justify="left")
            for name in ("earned", "points", "left", "held", "pending", "expires"):
                lots.add_column(name, justify="left" if name in ("earned", "expires")
                                else "right")
            for lot in part["lots"]:
                lots.add_row(lot.earned_at.isoformat(), str(lot.amount), str(lot.remaining),
                             str(lot.held), "yes" if lot.pending else "",
                             lot.expires_at.isoformat() if lot.expires_at else "never")
            out.print(lots)
        if part["statement"]:
            lines = Table(title=f"latest statement lines in {wallet}", title_justify="left")
            for name in ("when", "kind", "points", "balance", "reason"):
                lines.add_column(name, justify="right" if name in ("points", "balance")
                                 else "left")
            for line in part["statement"]:
                lines.add_row(line.occurred_at.isoformat(), line.kind.value,
                              f"{line.points:+d}", str(line.balance), line.reason)
            out.print(lines)
    return 0

"""``loyaltykit program check FILE`` (no database) and :func:`loyaltykit.describe_program`,
the words it prints."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from _cli_helpers import run, shop_program

from loyaltykit import (
    EarningPolicy,
    FirstOrder,
    FixedDiscount,
    FixedRule,
    FreeItem,
    InvalidInput,
    Money,
    MultiplierRule,
    PaymentPolicy,
    PendingPolicy,
    Program,
    RateRule,
    ReferralPolicy,
    ReferralReward,
    Reward,
    RewardPolicy,
    describe_program,
)

TOML = """\
id = "coffee-club"
time_zone = "Europe/Paris"
currency = "EUR"
wallets = ["points", "stamps"]
point_value = { amount = "0.005", currency = "EUR" }

[ledger]
expiry = { months = 12, round_up_to = "quarter" }
pending = { days = 14 }

[earning]
rules = [
  { type = "rate", id = "base", points = "2", per = "1.00" },
]
"""


def everything() -> Program:
    """The CLI tests' program with every section filled in."""
    return attrs.evolve(
        shop_program(),
        earning=EarningPolicy(rules=(
            RateRule(id="base", points=Decimal(1), per=Decimal("1.00")),
            MultiplierRule(id="double", factor=Decimal(2), description="double weekend"),
            FixedRule(id="welcome", points=100, condition=FirstOrder()),
        )),
        rewards=RewardPolicy(catalogue=(
            Reward("coffee", "Coffee", 500, FreeItem("latte")),
            Reward("fiver", "Five off", 400, FixedDiscount(Money("5.00", "EUR")), stock=10),
        )),
        referrals=ReferralPolicy(reward=ReferralReward(referrer=500, referee=250),
                                 min_net=Money("20.00", "EUR")),
        payments=PaymentPolicy(points=100, money=Money("1.00", "EUR"),
                               max_share=Decimal("0.5")),
    )


def test_describe_program_says_each_section_in_words() -> None:
    lines = describe_program(everything())
    assert [
        "Program cli-shop, version 1 (EUR, times in Europe/Berlin).",
        "Wallet: points; 1 point is worth 0.01 EUR.",
        "Earning (3 rules, points rounded floor, multipliers multiply):",
        "  - base: 1 point per 1 EUR of net goods",
        "  - double: x2 multiplier (double weekend)",
        "  - welcome: 100 points per order [if: first order]",
        "Pending: none (earned points are spendable at once).",
        "Expiry: points expire 2 months after they were earned.",
        "Spending uses soonest expiring lots first; a clawback beyond the balance: debt.",
        "Tiers by points over a calendar year window (downgrade one level, 1 grace "
        "period(s), notice 30 days):",
        "  - member: from 0",
        "  - gold: from 300",
        "Referrals: referrer +500, referee +250 once the referee's qualifying order is "
        "past its 14-day return window (qualify within 30 days).",
        "  a qualifying order is at least 20.00 EUR",
        "Rewards (2 in the catalogue):",
        "  - coffee (Coffee): 500 points for 1 x latte free",
        "  - fiver (Five off): 400 points for 5.00 EUR off, stock 10",
        "Points as payment: 100 points pay 1.00 EUR, at least 0 points, in steps of 1, "
        "up to 50% of an order.",
        "Events: kept until pruned by hand; notices: points expiring in 7 days.",
    ] == lines
    manual = attrs.evolve(everything(), ledger=attrs.evolve(
        everything().ledger, pending=PendingPolicy(manual=True)))
    assert "Pending: earned points stay pending until activated by hand." in \
        describe_program(manual)


@pytest.mark.parametrize("bad", [None, "shop", {"id": "shop"}])
def test_describe_program_takes_only_a_program(bad: object) -> None:
    with pytest.raises(InvalidInput):
        describe_program(bad)  # type: ignore[arg-type]


def test_program_check_reads_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "club.toml"
    toml.write_text(TOML)
    proc = run("program", "check", str(toml))
    assert 0 == proc.returncode, proc.stderr
    assert "\n".join(describe_program(Program.from_file(toml))) + "\n" == proc.stdout
    assert "Wallets: points, stamps; 1 point is worth 0.005 EUR." in proc.stdout
    assert ("Expiry: points expire 12 months after they were earned, rounded up to the "
            "start of the next quarter.") in proc.stdout
    assert "  - base: 2 points per 1 EUR of net goods" in proc.stdout
    as_json = tmp_path / "everything.json"
    as_json.write_text(json.dumps(everything().to_dict()))
    checked = run("program", "check", str(as_json), "--json")
    assert 0 == checked.returncode, checked.stderr
    assert everything() == Program.from_dict(json.loads(checked.stdout))


def test_program_check_refuses_a_bad_program_in_one_line(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text(TOML.replace("[earning]", "[earnings]"))
    proc = run("program", "check", str(typo))
    assert 1 == proc.returncode and "" == proc.stdout
    assert proc.stderr.startswith("loyaltykit: error: invalid_program")
    assert "earnings" in proc.stderr and 1 == len(proc.stderr.splitlines())
    missing = run("program", "check", str(tmp_path / "nowhere.toml"))
    assert 1 == missing.returncode and "cannot read" in missing.stderr

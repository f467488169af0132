"""The notices' settings of EventPolicy: versioned with the program, read back from
dicts and TOML files, and refused with InvalidProgram naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from loyaltykit import EventPolicy, InvalidProgram, Program
from loyaltykit.testing.contract.notices import notice_program


def test_round_trips_through_dicts_and_toml(tmp_path: Path) -> None:
    policy = EventPolicy(retention_days=30, points_expiring_days=30,
                         voucher_expiring_days=7, tier_will_drop=True)
    assert policy == EventPolicy.from_dict(policy.to_dict())
    assert EventPolicy() == EventPolicy.from_dict({})  # every notice off
    path = tmp_path / "program.toml"
    path.write_text("""
id = "P"
time_zone = "Europe/Berlin"
currency = "EUR"
point_value = {amount = "0.01", currency = "EUR"}

[events]
points_expiring_days = 30
voucher_expiring_days = 7
tier_will_drop = true
""")
    loaded = Program.from_file(path)
    assert EventPolicy(points_expiring_days=30, voucher_expiring_days=7,
                       tier_will_drop=True) == loaded.events
    program = notice_program(points_expiring_days=14)
    assert program == Program.from_dict(program.to_dict())


@pytest.mark.parametrize(("fields", "field"), [
    ({"points_expiring_days": 0}, "events.points_expiring_days"),
    ({"points_expiring_days": 367}, "events.points_expiring_days"),
    ({"points_expiring_days": True}, "events.points_expiring_days"),
    ({"points_expiring_days": "30"}, "events.points_expiring_days"),
    ({"voucher_expiring_days": -1}, "events.voucher_expiring_days"),
    ({"voucher_expiring_days": 1.5}, "events.voucher_expiring_days"),
    ({"tier_will_drop": 1}, "events.tier_will_drop"),
    ({"tier_will_drop": "yes"}, "events.tier_will_drop"),
    ({"tier_drop_days": 30}, "events.tier_drop_days"),
])
def test_bad_settings_name_their_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidProgram) as raised:
        EventPolicy.from_dict(fields)
    assert field == raised.value.details["field"]
    if field != "events.tier_drop_days":
        with pytest.raises(InvalidProgram):
            EventPolicy(**fields)


def test_a_new_setting_is_a_new_program_version() -> None:
    old = notice_program(points_expiring_days=30)
    assert old != attrs.evolve(old, events=EventPolicy(points_expiring_days=7))

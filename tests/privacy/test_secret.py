"""Loyalty's identity secret: one key, or a rotation (the current key first)."""

from __future__ import annotations

from typing import Any

import pytest

from loyaltykit import Identity, InvalidInput, Loyalty
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing import by_shop_ids
from loyaltykit.testing.contract.privacy import privacy_program

KEY = b"k" * 16


@pytest.mark.parametrize("secret", [
    b"short", "a text secret of 16+", [], (), [KEY, b"short"], [KEY, "text" * 4],
    [KEY] * 9, bytearray(KEY), [bytearray(KEY)], 16, {KEY: KEY},
])
def test_a_secret_that_cannot_key_hashes_is_refused(secret: Any) -> None:
    storage = MemoryStorage()
    with pytest.raises(InvalidInput) as info:
        Loyalty(privacy_program(), storage, secret=secret)
    assert "k" * 16 not in str(info.value)  # never shown
    with by_shop_ids(storage).unit_of_work("ref") as uow:
        assert [] == uow.programs.program_versions()  # refused before anything is stored


@pytest.mark.parametrize("secret", [KEY, [KEY], (KEY, b"o" * 32), [KEY] * 8])
def test_one_to_eight_secrets_are_accepted(secret: Any) -> None:
    loyalty = Loyalty(privacy_program(), MemoryStorage(), secret=secret)
    loyalty.enrol("ann", identity=Identity(email="ann@example.com"))
    marks = loyalty.privacy.export("ann")["identity_marks"]
    secrets = {secret} if isinstance(secret, bytes) else set(secret)
    assert len(secrets) == len(marks)  # one mark per distinct secret


@pytest.mark.parametrize("returned", [5, "0" * 32, None, b"x" * 16])
def test_an_id_source_returning_no_uuid_is_refused_and_writes_nothing(returned: Any) -> None:
    storage = MemoryStorage()
    loyalty = Loyalty(privacy_program(), storage, new_id=lambda: returned)
    with pytest.raises(InvalidInput, match="new_id"):
        loyalty.enrol("ann")
    with by_shop_ids(storage).unit_of_work("ref") as uow:
        assert uow.ledger.get_member("ann") is None
        assert {} == uow.members.keys_of(["ann"])

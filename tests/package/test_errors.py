"""An error's text never fails and stays short, whatever its details hold."""

from __future__ import annotations

from loyaltykit import InvalidInput, LoyaltyError


class _Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def _deep(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels):
        value = [value]
    return value


def test_a_detail_whose_repr_fails_is_named_by_its_type() -> None:
    error = InvalidInput("bad thing", thing=_Broken(), member_id="m")
    assert "invalid_input: bad thing (thing=<_Broken that cannot be shown>, member_id='m')" \
        == str(error)


def test_a_detail_too_deep_to_repr_does_not_crash_the_log_line() -> None:
    error = LoyaltyError("deep", value=_deep(100_000))
    assert "loyalty_error: deep (value=<list that cannot be shown>)" == str(error)


def test_long_details_are_shortened() -> None:
    text = str(InvalidInput("long", value="x" * 10_000))
    assert text.endswith("...)")
    assert len("invalid_input: long (value=") + 200 + 1 == len(text)

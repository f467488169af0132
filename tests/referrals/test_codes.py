"""Code machinery: the check character, normalisation, strength and the spec's shape."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyaltykit import CodeSpec, InvalidCode, InvalidProgram, ReferralPolicy, ReferralReward
from loyaltykit._codes import ALPHABET, CHECK_SYMBOLS, check_symbol, normalise_code

SPEC = CodeSpec(length=10, group=5)


def _samples(count: int, spec: CodeSpec = SPEC) -> list[str]:
    rng = random.Random(2026)
    return [spec.draw(rng.randrange) for _ in range(count)]


@pytest.mark.parametrize("spec", [SPEC, CodeSpec(length=6, group=3, prefix="REF", planned=1000),
                                  CodeSpec(length=16, group=4)])
def test_every_single_substitution_is_caught(spec: CodeSpec) -> None:
    body_start = len(spec.prefix)
    checked = 0
    for code in _samples(60, spec):
        for i in range(body_start, len(code)):
            symbols = CHECK_SYMBOLS if i == len(code) - 1 else ALPHABET
            for c in symbols:
                if c == code[i]:
                    continue
                typo = code[:i] + c + code[i + 1:]
                with pytest.raises(InvalidCode):
                    spec.parse(typo)
                checked += 1
    assert 60 * (spec.length * 31 + 36) == checked


@pytest.mark.parametrize("spec", [SPEC, CodeSpec(length=6, group=3, prefix="REF", planned=1000),
                                  CodeSpec(length=16, group=4)])
def test_every_adjacent_transposition_is_caught(spec: CodeSpec) -> None:
    checked = 0
    for code in _samples(300, spec):
        for i in range(len(spec.prefix), len(code) - 1):
            if code[i] == code[i + 1]:
                continue  # swapping equal symbols changes nothing
            typo = code[:i] + code[i + 1] + code[i] + code[i + 2:]
            with pytest.raises(InvalidCode):
                spec.parse(typo)
            checked += 1
    assert checked > 300 * spec.length * 0.8  # length swaps per code, equal pairs skipped


def test_transposing_every_pair_of_symbols_at_every_place_is_caught() -> None:
    # exhaustive over symbol pairs, not just samples: a fixed code, every position
    base = "7K3QDM9XWP"
    for i in range(len(base)):  # the last swap is with the check character
        for a in ALPHABET:
            for b in ALPHABET:
                if a == b:
                    continue
                body = base[:i] + a + (b if i + 1 < len(base) else "") + base[i + 2:]
                code = body + check_symbol(body)
                swapped = code[:i] + code[i + 1] + code[i] + code[i + 2:]
                if swapped[-1] not in CHECK_SYMBOLS or swapped == code:
                    continue
                with pytest.raises(InvalidCode):
                    SPEC.parse(swapped)


def test_normalisation_forgives_case_spacing_and_look_alikes() -> None:
    code = "7K3QD" + "M9X0P"
    code += check_symbol(code)
    assert code == SPEC.parse(code.lower().replace("0", "o"))
    assert code == SPEC.parse(" 7k3qd - m9xop - " + code[-1].lower())
    assert "0111" == normalise_code("oIlL")
    one = "1" * 10
    assert one + check_symbol(one) == SPEC.parse("IiLl1-11111" + check_symbol(one))


@pytest.mark.parametrize("text", ["", "7K3QD", "7K3QD-M9XWP-CC", "7K3QD-M9XWU-C",
                                  "7K3QD-M9XWP-#", "REF-7K3QD-M9XWP-C", "ü" * 11])
def test_malformed_codes_are_invalid(text: str) -> None:
    with pytest.raises(InvalidCode):
        SPEC.parse(text)
    with pytest.raises(ValueError):
        SPEC.parse(text)


def test_a_code_that_is_not_a_str_is_invalid() -> None:
    with pytest.raises(InvalidCode):
        SPEC.parse(12345)  # type: ignore[arg-type]


def test_prefix_and_grouping() -> None:
    spec = CodeSpec(length=8, group=4, prefix="GAME")
    body = "ABCD1234"
    code = "GAME" + body + check_symbol(body)
    assert "GAME-ABCD-1234-" + check_symbol(body) == spec.display(code)
    assert code == spec.parse(spec.display(code).lower())
    with pytest.raises(InvalidCode):
        spec.parse(body + check_symbol(body))
    assert "ABCD1234" == CodeSpec(length=8, group=0, check=False).display("ABCD1234")
    with pytest.raises(InvalidCode):  # not a code of that spec (one symbol too many)
        CodeSpec(length=8, group=0, check=False).display("ABCD12345")


@given(st.integers(min_value=4, max_value=32), st.randoms(use_true_random=False))
def test_drawn_codes_parse_back(length: int, rnd: random.Random) -> None:
    spec = CodeSpec(length=length, group=5, planned=1)
    code = spec.draw(rnd.randrange)
    assert code == spec.parse(spec.display(code))
    assert length + 1 == len(code)


def test_a_spec_checks_its_own_keyspace_against_its_plan() -> None:
    assert 50 == SPEC.entropy_bits
    assert 32 ** 10 == SPEC.keyspace
    assert 1_000_000 == SPEC.planned
    assert SPEC.guess_probability() < 1e-6
    assert 2 ** -50 == SPEC.guess_probability(1)
    with pytest.raises(InvalidProgram):
        SPEC.guess_probability("1")  # type: ignore[arg-type]
    # the default plan, a million codes, needs 8 symbols: 6 are refused on their own
    with pytest.raises(InvalidProgram, match="at least 8 symbols") as refused:
        CodeSpec(length=6)
    assert ("code.length", 1_000_000) == (refused.value.details["field"],
                                          refused.value.details["planned"])
    # the boundary, in exact arithmetic: a guess must stay below 1e-6
    planned = 32 ** 8 // 10**6
    assert planned == CodeSpec(length=8, planned=planned).planned
    with pytest.raises(InvalidProgram, match="at least 9 symbols"):
        CodeSpec(length=8, planned=planned + 1)
    # the issue's example: 4 symbols hold one code (1 / 32**4 < 1e-6), not two
    assert CodeSpec(length=4, planned=1).guess_probability() < 1e-6
    with pytest.raises(InvalidProgram):
        CodeSpec(length=4, planned=2)
    # the policy takes the spec's plan: there is no second place to state it
    policy = ReferralPolicy(reward=ReferralReward(1, 1), code=CodeSpec(length=8, planned=5))
    assert 5 == policy.code.planned
    assert 5 == ReferralPolicy.from_dict(policy.to_dict()).code.planned


@pytest.mark.parametrize("fields", [{"length": 3}, {"length": True}, {"group": -1},
                                    {"prefix": "ref"}, {"prefix": "ILOU"}, {"check": 1},
                                    {"planned": 0}, {"planned": True}, {"planned": "5"},
                                    {"planned": 1.5}, {"planned": 10**15 + 1},
                                    {"planned": None}])
def test_bad_specs_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidProgram) as refused:
        CodeSpec(**fields)  # type: ignore[arg-type]
    assert f"code.{next(iter(fields))}" == refused.value.details["field"]


def test_spec_round_trips_through_its_dict() -> None:
    spec = CodeSpec(length=12, group=4, prefix="R", check=False, planned=10**7)
    assert spec == CodeSpec.from_dict(spec.to_dict())
    with pytest.raises(InvalidProgram):
        CodeSpec.from_dict({"length": 10, "size": 3})
    # an unknown key of any type is named, not tripped over (sorting 1 and "a" fails)
    with pytest.raises(InvalidProgram, match="unknown field"):
        CodeSpec.from_dict({1: 2, "a": 3})  # type: ignore[dict-item]


def test_draws_come_from_secrets_by_default() -> None:
    drawn = {SPEC.draw() for _ in range(200)}
    assert 200 == len(drawn)
    assert all(SPEC.parse(c) == c for c in drawn)

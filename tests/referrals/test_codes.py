"""Code machinery: the check character, normalisation, strength and the spec's shape."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyaltykit import CodeSpec, InvalidCode, InvalidProgram, ReferralPolicy, ReferralReward
from loyaltykit._codes import (
    _DAMM,
    ALPHABET,
    CHECK_SYMBOLS,
    accepts_checks_of,
    check_symbol,
    damm_state,
    mod37_symbol,
    normalise_code,
)

SPEC = CodeSpec(length=10, group=5)


def _samples(count: int, spec: CodeSpec = SPEC) -> list[str]:
    rng = random.Random(2026)
    return [spec.draw(rng.randrange) for _ in range(count)]


SPECS = [SPEC, CodeSpec(length=6, group=3, prefix="REF", planned=1000),
         CodeSpec(length=16, group=4), CodeSpec(length=10, check_scheme="mod37")]


@pytest.mark.parametrize("spec", SPECS)
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


@pytest.mark.parametrize("spec", SPECS)
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


def test_the_damm_table_is_a_totally_anti_symmetric_quasigroup() -> None:
    # exhaustive over the 32 x 32 table: every row and column a permutation (a changed
    # symbol changes every later state, so a single substitution never ends at 0) and,
    # from every state c, (c*x)*y != (c*y)*x for x != y (an adjacent swap, the check
    # character included, never ends at the same state): for codes of every length
    values = list(range(32))
    assert all(sorted(row) == values for row in _DAMM)
    assert all(sorted(row[y] for row in _DAMM) == values for y in values)
    for c in values:
        for x in values:
            for y in values:
                if x != y:
                    assert _DAMM[_DAMM[c][x]][y] != _DAMM[_DAMM[c][y]][x], (c, x, y)
                    assert _DAMM[x][y] != _DAMM[y][x]


@pytest.mark.parametrize("length", range(4, 33))
def test_every_typo_of_a_code_of_every_length_is_caught(length: int) -> None:
    spec = CodeSpec(length=length, group=0, planned=1)
    rng = random.Random(length)
    for code in (spec.draw(rng.randrange) for _ in range(3)):
        assert code[-1] in ALPHABET and 0 == damm_state(code)
        for i in range(len(code)):
            for c in CHECK_SYMBOLS:
                if c != code[i]:
                    with pytest.raises(InvalidCode):
                        spec.parse(code[:i] + c + code[i + 1:])
            if i + 1 < len(code) and code[i] != code[i + 1]:
                with pytest.raises(InvalidCode):
                    spec.parse(code[:i] + code[i + 1] + code[i] + code[i + 2:])


_SCHEMED = st.builds(
    lambda length, prefix, scheme: CodeSpec(length=length, group=4, prefix=prefix,
                                            planned=1, check_scheme=scheme),
    st.integers(4, 32), st.text(ALPHABET, max_size=3), st.sampled_from(["damm32", "mod37"]))


@given(_SCHEMED, st.randoms(use_true_random=False), st.data())
def test_a_drawn_codes_substitutions_and_adjacent_swaps_are_refused(
    spec: CodeSpec, rnd: random.Random, data: st.DataObject
) -> None:
    code = spec.draw(rnd.randrange)
    assert code == spec.parse(spec.display(code).lower())
    if spec.check_scheme == "damm32":
        assert code[-1] in ALPHABET  # never one of *~$=U
    body = len(spec.prefix)
    i = data.draw(st.integers(body, len(code) - 1))
    other = data.draw(st.sampled_from(CHECK_SYMBOLS).filter(lambda c: c != code[i]))
    with pytest.raises(InvalidCode):
        spec.parse(code[:i] + other + code[i + 1:])
    j = data.draw(st.integers(body, len(code) - 2))
    if code[j] != code[j + 1]:
        with pytest.raises(InvalidCode):
            spec.parse(code[:j] + code[j + 1] + code[j] + code[j + 2:])


def test_the_check_schemes() -> None:
    body = "7K30DM9XW1"
    assert ("1", "$") == (check_symbol(body), mod37_symbol(body))
    damm, legacy = CodeSpec(), CodeSpec(check_scheme="mod37")
    both = CodeSpec(check_scheme="damm32+mod37")
    assert body + "1" == damm.parse(body + "1") == both.parse(body + "1")
    assert body + "$" == legacy.parse(body + "$") == both.parse(body + "$")
    with pytest.raises(InvalidCode):
        damm.parse(body + "$")
    with pytest.raises(InvalidCode):
        legacy.parse(body + "1")
    for wrong in set(CHECK_SYMBOLS) - {"1", "$"}:
        with pytest.raises(InvalidCode):
            both.parse(body + wrong)
    assert both.draw(random.Random(1).randrange)[-1] in ALPHABET
    assert ("damm32", "mod37", "damm32") == tuple(s.issues_with for s in (damm, legacy, both))
    assert None is CodeSpec(check=False).issues_with
    assert accepts_checks_of(both, legacy) and accepts_checks_of(both, damm)
    assert not accepts_checks_of(damm, legacy) and not accepts_checks_of(legacy, both)
    assert accepts_checks_of(damm, CodeSpec(check=False))
    # a spec stored before the field existed issued mod-37 codes, and keeps them
    stored = damm.to_dict()
    assert "damm32" == stored.pop("check_scheme")
    assert legacy == CodeSpec.from_dict(stored)
    assert both == CodeSpec.from_dict(both.to_dict())


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
                                    {"check_scheme": "luhn"}, {"check_scheme": None},
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

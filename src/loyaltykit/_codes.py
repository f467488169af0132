"""Codes people type: referral codes now, reward vouchers later.

A :class:`CodeSpec` says what a program's codes look like: ``length`` random symbols of
Crockford's base32 alphabet (no I, L, O or U, so nothing reads as something else), an
optional fixed ``prefix``, a check character, and how they are grouped for reading
(``7K3QD-M9XWP-C``). Symbols are drawn from :mod:`secrets` (or an injected source in
tests). Typed input is normalised before anything else: case, spaces and hyphens are
ignored, ``O`` reads as ``0`` and ``I``/``L`` as ``1``.

The check character is a symbol of the same 32 (nothing a customer cannot read out
at a till or type on a phone keypad): the Damm check over the quasigroup
``x * y = 2x + y`` of GF(32) (``check_scheme="damm32"``, the default). That quasigroup is
totally anti-symmetric, so a change of one symbol, or a swap of two adjacent ones (the
check character included), always changes the result: :meth:`CodeSpec.parse` rejects
such a typo without any storage lookup.

Codes issued by earlier releases end in Crockford's mod-37 check character, which can be
one of ``*~$=U`` as well. A spec keeps issuing and accepting them with
``check_scheme="mod37"``; a spec read by :meth:`CodeSpec.from_dict` without the field
(a program version stored by an older release) is one. ``"damm32+mod37"`` issues Damm
codes and accepts either check, for a program that switches with mod-37 codes out: see
:meth:`CodeSpec.parse` for what that costs.

The spec also states its strength. With ``n`` codes issued out of a keyspace of
``32**length``, one random guess hits an issued code with probability
``n / 32**length``. A spec carries its planned volume (``planned``: how many codes it
may ever issue) and is refused on construction unless, with that many issued, a guess
stays below one in a million; issuing counts the codes issued and refuses to go past
the plan (:class:`~loyaltykit.CodeVolumeExhausted`), so the bound holds for every
code actually issued. A larger plan is a new program version.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

import attrs

from loyaltykit._errors import InvalidCode, InvalidInput, InvalidProgram, shown
from loyaltykit._json import JsonForm
from loyaltykit._validate import check_int, field_name, invalid

__all__ = ["ALPHABET", "CHECK_SCHEMES", "CHECK_SYMBOLS", "CodeSpec", "check_symbol",
           "accepts_checks_of", "damm_state", "damm_symbol", "mod37_symbol", "normalise_code"]

#: Crockford's base32 digits, in value order.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: The legacy mod-37 check symbols: the 32 digits for 0-31, then ``*~$=U`` for 32-36.
CHECK_SYMBOLS = ALPHABET + "*~$=U"
#: Check schemes: the Damm check in the 32 symbols (the default), the legacy mod-37
#: check, and Damm codes with mod-37 ones still accepted.
CHECK_SCHEMES = ("damm32", "mod37", "damm32+mod37")
#: A single guess must hit an issued code with a probability below this, at the planned
#: volume.
MAX_GUESS_PROBABILITY = 1e-6
_GUESS_ODDS = 1_000_000  # the same bound as odds, for exact integer comparison
#: The largest planned volume a spec accepts.
MAX_PLANNED = 10**15

_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_READS_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_IGNORED = re.compile(r"[\s\-]+")
_PREFIX = re.compile(r"^[0-9A-HJKMNP-TV-Z]{0,8}\Z")
_FIELDS = frozenset({"length", "group", "prefix", "check", "check_scheme", "planned"})
#: What a spec stored before the field existed checks with.
_LEGACY_SCHEME = "mod37"


def _gf32_double(x: int) -> int:
    """``2 * x`` in GF(32) = GF(2)[t] / (t**5 + t**2 + 1)."""
    x <<= 1
    return x ^ 0b100101 if x & 0b100000 else x


#: The Damm table: ``_DAMM[x][y] = 2x + y`` in GF(32). As ``2`` is neither 0 nor 1, the
#: quasigroup is totally anti-symmetric: ``(c*x)*y == (c*y)*x`` only when ``x == y``
#: (the difference is ``(2 + 1)(x + y)``); tests/referrals/test_codes.py checks it for
#: every triple.
_DAMM = tuple(tuple(_gf32_double(x) ^ y for y in range(32)) for x in range(32))


def normalise_code(text: str) -> str:
    """Return ``text`` as a code is compared: upper case, without spaces or hyphens,
    ``O`` as ``0`` and ``I``/``L`` as ``1``. Only spacing and look-alikes are forgiven;
    anything else stays as typed (and then fails :meth:`CodeSpec.parse`)."""
    if not isinstance(text, str):
        raise InvalidCode("a code is a str", code=shown(text))
    return _IGNORED.sub("", text).upper().translate(_READS_AS)


def damm_state(symbols: str) -> int:
    """The Damm interim value after ``symbols`` (0 for a whole code with its check)."""
    state = 0
    for c in symbols:
        state = _DAMM[state][_VALUE[c]]
    return state


def damm_symbol(symbols: str) -> str:
    """Return the Damm check symbol of ``symbols`` (Crockford base32 digits): the one
    symbol that brings the interim value to 0, always one of the 32."""
    row = _DAMM[damm_state(symbols)]
    return ALPHABET[row.index(0)]


def mod37_symbol(symbols: str) -> str:
    """Return the legacy mod-37 check symbol of ``symbols`` (Crockford base32 digits):
    their value modulo 37, one of the 32 digits or ``*~$=U``."""
    value = 0
    for c in symbols:
        value = (value * 32 + _VALUE[c]) % 37
    return CHECK_SYMBOLS[value]


def check_symbol(symbols: str, scheme: str = "damm32") -> str:
    """Return the check symbol a code of ``symbols`` is issued with under ``scheme``
    (``"damm32"`` and ``"damm32+mod37"``: Damm; ``"mod37"``: mod 37)."""
    return mod37_symbol(symbols) if scheme == "mod37" else damm_symbol(symbols)


def accepts_checks_of(later: CodeSpec, earlier: CodeSpec) -> bool:
    """Whether ``later.parse`` accepts the check characters of the codes ``earlier``
    issues (a later program version must, once codes are issued)."""
    rule = earlier.issues_with
    if rule is None or not later.check:
        return True
    return rule in later.check_scheme.split("+")


@attrs.frozen
class CodeSpec(JsonForm):
    """What a program's codes look like. See the module docstring.

    ``length`` random symbols (each carries 5 bits); ``group`` symbols per group when
    shown (0: one block); ``prefix`` a fixed lead (Crockford symbols, up to 8, not
    counted as entropy); ``check``: append a check character; ``planned``: how many
    codes the program may issue with this spec (1 to 10**15); ``check_scheme``: how the
    check character is computed (:data:`CHECK_SCHEMES`; default ``"damm32"``, a symbol
    of the same 32; ``"mod37"`` for codes issued by earlier releases). A spec whose keyspace is
    too small for its plan (a guess would hit an issued code with probability of one in
    a million or more) raises :class:`~loyaltykit.InvalidProgram` naming
    ``code.length``.

    >>> spec = CodeSpec(length=10, group=5)
    >>> spec.entropy_bits, spec.planned
    (50, 1000000)
    >>> check_symbol("7K3QDM9XWP")
    'E'
    >>> spec.display("7K3QDM9XWPE")
    '7K3QD-M9XWP-E'
    >>> spec.parse("7k3qd m9xwp e")
    '7K3QDM9XWPE'
    >>> CodeSpec(length=10, check_scheme="mod37").parse("7K3QD-M9XWP-C")
    '7K3QDM9XWPC'

    .. versionadded:: 0.2
    """

    length: int = 10
    group: int = 5
    prefix: str = ""
    check: bool = True
    planned: int = 1_000_000
    check_scheme: str = "damm32"

    def __attrs_post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) \
                or not 4 <= self.length <= 32:
            raise invalid("code.length", "must be an int from 4 to 32", self.length)
        if isinstance(self.group, bool) or not isinstance(self.group, int) \
                or not 0 <= self.group <= 32:
            raise invalid("code.group", "must be an int from 0 to 32", self.group)
        if not isinstance(self.prefix, str) or not _PREFIX.match(self.prefix):
            raise invalid("code.prefix", "must be up to 8 Crockford base32 symbols (upper case)",
                          self.prefix)
        if not isinstance(self.check, bool):
            raise invalid("code.check", "must be a bool", self.check)
        if not isinstance(self.check_scheme, str) or self.check_scheme not in CHECK_SCHEMES:
            raise invalid("code.check_scheme", f"must be one of {', '.join(CHECK_SCHEMES)}",
                          shown(self.check_scheme))
        check_int(self.planned, "code.planned", 1, MAX_PLANNED)
        self._require_strength(self.planned)

    @property
    def entropy_bits(self) -> int:
        """Bits of randomness in one code (5 per random symbol)."""
        return 5 * self.length

    @property
    def keyspace(self) -> int:
        """How many different codes the spec can draw."""
        return int(32 ** self.length)

    def guess_probability(self, planned: int | None = None) -> float:
        """The chance that one random guess is an issued code once ``planned`` are
        (default: the spec's own plan)."""
        if planned is None:
            return self.planned / self.keyspace
        return check_int(planned, "code.planned", 1, MAX_PLANNED) / self.keyspace

    def _require_strength(self, planned: int) -> None:
        # exact: planned / 32**length < 1 / 1_000_000, with no float rounding at the edge
        if planned * _GUESS_ODDS < self.keyspace:
            return
        chance = self.guess_probability(planned)
        needed = self.length
        while planned * _GUESS_ODDS >= 32 ** needed:
            needed += 1
        raise InvalidProgram(
            f"code.length: {self.entropy_bits} bits are too few for {planned} codes: one "
            f"guess would hit an issued code with probability {chance:.2g} (at least "
            f"{MAX_GUESS_PROBABILITY:g}); use at least {needed} symbols or plan fewer codes",
            field="code.length", value=self.length, planned=planned,
            guess_probability=chance, needed_length=needed)

    def draw(self, randbelow: Callable[[int], int] = secrets.randbelow) -> str:
        """Return a new code in its stored form (prefix, symbols, check character).
        ``randbelow(32)`` must return an int from 0 to 31 (else
        :class:`~loyaltykit.InvalidInput`)."""
        if isinstance(randbelow, type) or not callable(randbelow):
            raise InvalidInput("randbelow must be a callable like secrets.randbelow",
                               randbelow=shown(randbelow))
        drawn = []
        for _ in range(self.length):
            value = randbelow(32)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 32:
                raise InvalidInput("randbelow(32) must return an int from 0 to 31",
                                   returned=shown(value))
            drawn.append(ALPHABET[value])
        symbols = "".join(drawn)
        check = check_symbol(symbols, self.check_scheme) if self.check else ""
        return self.prefix + symbols + check

    def parse(self, text: str) -> str:
        """Normalise typed ``text`` and return the code in its stored form.

        Raises :class:`~loyaltykit.InvalidCode` (a ValueError) when it cannot be one of
        this spec's codes: wrong prefix or length, a symbol outside the alphabet, or a
        check character that does not match. No storage is consulted.

        Under ``"damm32"`` and ``"mod37"`` every single mistyped symbol and every swap of
        two neighbours is refused here. ``"damm32+mod37"`` accepts a code whose check
        character matches either rule, so that codes issued with the mod-37 check keep
        working; the stored form is the normalised text either way (a drawn code equal to
        a stored one is drawn again), and the storage lookup by it decides. The cost: a
        typo passes this check with a chance of about 1 in 37 and is then refused as
        unknown unless it is itself an issued code, which the spec's planned volume keeps
        below one in a million.
        """
        code = normalise_code(text)
        if not code.startswith(self.prefix):
            raise InvalidCode("not a code of this program (prefix)", code=text,
                              prefix=self.prefix)
        body = code[len(self.prefix):]
        size = self.length + (1 if self.check else 0)
        if len(body) != size:
            raise InvalidCode(f"a code has {size} symbols after its prefix", code=text,
                              symbols=len(body))
        symbols = body[:self.length]
        bad = [c for c in symbols if c not in _VALUE]
        if bad:
            raise InvalidCode("a code holds only Crockford base32 symbols", code=text,
                              symbol=bad[0])
        if self.check and body[-1] not in self._accepted_checks(symbols):
            raise InvalidCode("the check character does not match: a symbol is mistyped",
                              code=text)
        return code

    @property
    def issues_with(self) -> str | None:
        """The check rule this spec issues codes with (``"damm32"`` or ``"mod37"``;
        None without a check character)."""
        if not self.check:
            return None
        return "mod37" if self.check_scheme == "mod37" else "damm32"

    def _accepted_checks(self, symbols: str) -> tuple[str, ...]:
        if self.check_scheme == "damm32":
            return (damm_symbol(symbols),)
        if self.check_scheme == "mod37":
            return (mod37_symbol(symbols),)
        return damm_symbol(symbols), mod37_symbol(symbols)

    def display(self, code: str) -> str:
        """Return a code of this spec grouped for reading (``PRE-7K3QD-M9XWP-T``); a text
        that is not one raises :class:`~loyaltykit.InvalidCode` as :meth:`parse` does."""
        body = self.parse(code)[len(self.prefix):]
        if self.group:
            parts = [body[i:i + self.group] for i in range(0, len(body), self.group)]
        else:
            parts = [body]
        return "-".join(([self.prefix] if self.prefix else []) + parts)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict that :meth:`from_dict` turns back."""
        return {"length": self.length, "group": self.group, "prefix": self.prefix,
                "check": self.check, "planned": self.planned,
                "check_scheme": self.check_scheme}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodeSpec:
        """Build a spec from :meth:`to_dict` output; bad fields raise InvalidProgram.
        Without ``check_scheme`` (a definition stored by an earlier release, whose codes
        carry the mod-37 check) the spec checks with ``"mod37"``."""
        if not isinstance(data, dict):
            raise invalid("code.spec", "must be a table", shown(data))
        for name in data:
            if name not in _FIELDS:
                raise invalid(f"code.{field_name(name)}", "unknown field", None)
        return cls(**{"check_scheme": _LEGACY_SCHEME, **data})

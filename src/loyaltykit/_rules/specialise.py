"""The fast path's rule loop written out as Python source for one policy, once.

The fast path (:mod:`loyaltykit._rules.fastpath`) walks a policy's compiled steps for
every order, and most of what it tests per step (the rule's kind, whether it has a
window, a condition, a line match, caps, shipping; whether it is exclusive; the phase it
starts) is the same for every order. :func:`specialise` writes the loop out once per
policy with those tests decided: one block per step, holding only the statements that
step can run, in the order the loop runs them, so the result is the loop's digit for
digit (the same Decimal operations on the same operands, the same texts and outcomes).
An applied outcome is written from the rule's template of its fields (``t<k>``: what
RuleOutcome's own ``__init__`` writes into a new instance, without the call), and then
what the order gave (points, uncapped, explanation). A rate's or a multiplier's applied
outcome is left pending: the loop appends what its explanation reads (a tuple headed by
the step's builder ``b<k>``), and :func:`outcomes_of` builds the outcomes when the
evaluation's ``outcomes`` are first read (a caller that reads only the points never
pays for the texts).

Safe by construction: the source holds no text of the policy's (ids, names, reasons,
prefixes); a step is reached through the names ``s<k>`` and ``c<k>`` bound to its
:class:`~loyaltykit._rules.fastpath.Step` and compiled rule, and every other name is one
of this module's own. Each block is ``while True: ... break``, so a rule that does not
apply leaves its block with ``break`` where the loop had ``continue``. The text is kept
on the compiled policy (``OrderSteps.source``) for reading and debugging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal, getcontext, setcontext
from itertools import compress, repeat
from operator import add, attrgetter, mul, or_
from typing import TYPE_CHECKING, Any

import attrs

from loyaltykit._rules.facts import order_facts
from loyaltykit._rules.fields import CONTEXT, MIDNIGHT, ONE, ZERO, num_text, points_text
from loyaltykit._rules.limits import Run, not_applied, spread
from loyaltykit._rules.policy import FIXED, MULTIPLIER, RATE
from loyaltykit._rules.results import RuleOutcome
from loyaltykit._rules.scopes import Window

if TYPE_CHECKING:
    from loyaltykit._rules.fastpath import Step

#: What the written-out loop gives: the outcomes (some pending: see :func:`outcomes_of`),
#: the applied points (for the exact sum) and the stamp cards' rewards.
Priced = tuple[list[Any], list[Decimal], list[str]]
#: The written-out loop: (order, member, zone, usage, unused, lines, shipping,
#: stamps_before, nets, one_ok, n) -> Priced (``unused``: true when there are no
#: usage rows). It reads the facts it needs from the order and the member as they are
#: (what :func:`~loyaltykit._rules.facts.order_facts` would copy into a Facts), and
#: builds the Facts only for a condition's reason or a condition it cannot test itself.
Pricer = Callable[..., Priced]

#: RuleOutcome's fields in its __init__'s order: the applied outcomes' templates hold
#: exactly these (a field added to RuleOutcome, or one given a converter or validator,
#: fails here, at import, instead of writing outcomes without it)
_FIELDS = ("rule_id", "kind", "description", "applied", "points", "uncapped", "explanation",
           "group", "stamps", "rewards", "tracked")
if tuple(a.name for a in attrs.fields(RuleOutcome)) != _FIELDS or any(
        a.converter is not None or a.validator is not None
        for a in attrs.fields(RuleOutcome)):  # pragma: no cover (a guard)
    raise ImportError("RuleOutcome's fields changed: update _rules/specialise.py")

#: Where the loop reads the fact a one-of condition tests (our own attribute names,
#: never the policy's): what Facts copies from the member or the order
_NOUNS = {"tier": "member.tier", "channel": "order.channel", "store": "order.store"}

_HEAD = """\
def price(order, member, zone, usage, unused, lines, shipping, stamps_before, nets, one_ok,
          n):
    outcomes = []
    append = outcomes.append
    applied = []  # (summed from ZERO)
    total = applied.append
    rewards = []
    run = None
    base = [ZERO] * $size
    current = base
    every = range(n)
    local = order.placed_at.astimezone(zone)
    currency = order.currency
    exclusive = None
"""

_EXCLUSIVE = """\
if exclusive is not None:
    append(not_applied($c, f"skipped: exclusive rule {exclusive} applied"))
    break
"""

# a window's miss (what window_miss gives) tested inline: the tests of the window's parts
# ($test, its dates, weekdays and hours in that order) on the order's local date, weekday
# and time of day, worked out once per order
_WINDOW = """\
$test
if miss is not None:
    outcome = $s.missed.get(miss)
    append(outcome if outcome is not None
           else $s.keep($s.missed, miss, $s.window.unmet(local)))
    break
"""

_ONE_OF = """\
value = $noun
if value not in $s.names:
    outcome = $s.failed.get(value)
    append(outcome if outcome is not None
           else $s.keep($s.failed, value,
                         $s.cond.unmet(order_facts(order, member, zone))))
    break
"""

_MIN_NET = """\
if not net >= $s.minimum:  # (the reason shows the net as written)
    net_key = (str(net), currency)
    outcome = $s.failed.get(net_key)
    append(outcome if outcome is not None
           else $s.keep($s.failed, net_key,
                         $s.cond.unmet(order_facts(order, member, zone))))
    break
"""

_ANY = """\
reason = $s.cond.unmet(facts)
if reason is not None:
    append(not_applied($c, f"not applied: {reason}"))
    break
"""

_NO_LINE = """\
if not picked:
    append($s.no_line)
    break
"""

_NEW_RUN = """\
if run is None:
    run = Run(order.placed_at, zone, local, usage, f"order:{order.id}", None)
"""

_LIMIT = _NEW_RUN + """\
points, note = run.limit($c, uncapped)
"""

# with no usage rows, a rule outside capped groups has every cap's whole room: what
# run.limit gives then, without building the Run (its rows, its source text) per order
_WHOLE = """\
if unused:
    points, note = $s.whole_limit(uncapped)
else:
"""


def _limit(s: Step) -> str:
    """The code applying ``s``'s caps to ``uncapped`` (giving ``points`` and ``note``)."""
    if s.c.group_caps:  # (a group's room is shared with its other rules: the Run keeps it)
        return _LIMIT
    return _WHOLE + _indent(_LIMIT)

_RATE_TAKEN = """\
taken = $taken
counted = sum(taken, ZERO)
amounts = $amounts
uncapped = sum(amounts, ZERO)
"""

_SHIP = """\
picked = [*picked, n]
counted += shipping
a = $ship_amount
amounts = [*amounts, a]
uncapped += a
"""

_TIER = """\
factor = member.earn_multiplier if member.earn_multiplier is not None else ONE
prefix = f"x{num_text(factor)} (tier {member.tier}) on "
less = factor - ONE
"""

_MULTIPLY = """\
counted = sum(taken, ZERO)
amounts = list(map(mul, taken, repeat(less)))
uncapped = sum(amounts, ZERO)
"""

_FIXED_KEPT = """\
key = (str(points), note)  # (the text: 20 and 20.0 are equal Decimals)
outcome = $s.given.get(key)
if outcome is None:
    outcome = RuleOutcome($c.id, $c.kind, $c.text, True, points, uncapped,
                          explanation, $c.group, 0, (), $c.tracked)
    if len($s.given) < TABLE_SIZE:
        $s.given[key] = outcome
total(points)
append(outcome)
"""

_STAMP = """\
before = stamps_before.get($c.id)
if before is None:
    if unused:  # no usage rows: no stamps before (what summing none gives)
        before = stamps_before[$c.id] = 0
    else:
        if run is None:
            run = Run(order.placed_at, zone, local, usage, f"order:{order.id}", None)
        rows = run.rows($c.id) or ()
        before = stamps_before[$c.id] = sum(r.stamps for r in rows)
count = (before + stamps) // $s.card.every - before // $s.card.every
"""


_STAMP_KEPT = """\
outcome = $s.given.get(held)
if outcome is None:  # the same stamps on the same count give the same outcome
    uncapped = Decimal(count * $s.card.points)
$unlimited    won = (($s.card.reward,) * count
           if $s.card.reward is not None and count else ())
    explanation = (f"{stamps} stamp{'s' if stamps != 1 else ''} "
                   f"({before} -> {before + stamps}, a card of {$s.card.every}): "
                   f"{count} reward{'s' if count != 1 else ''}"
                   + (f" = {points_text(uncapped)}" if $s.card.points else "") + note)
    outcome = RuleOutcome($c.id, $c.kind, $c.text, True, points, uncapped,
                          explanation, $c.group, stamps, won, $c.tracked)
    if len($s.given) < TABLE_SIZE:
        $s.given[held] = outcome
if outcome.rewards:
    rewards.extend(outcome.rewards)
total(outcome.points)
append(outcome)
"""

# an applied outcome: the rule's fields from its template, then what this order gave
# (what RuleOutcome's own __init__ writes, in the same order, without its call)
_APPLIED = """\
total(points)
outcome = new(RuleOutcome)
fields = outcome.__dict__
fields.update($t)
fields["points"] = points
fields["uncapped"] = uncapped
fields["explanation"] = explanation
append(outcome)
"""

# a rate's or a multiplier's applied outcome, pending: what its explanation reads, headed
# by the step's builder (b<k>, written after the loop), which outcomes_of calls
_PENDING = """\
total(points)
append(($b, counted, uncapped, points, $note, currency, $prefix))
"""

_BUILDER = """\
def $b(p):
    _, counted, uncapped, points, note, currency, prefix = p
$explanation    outcome = new(RuleOutcome)
    fields = outcome.__dict__
    fields.update($t)
    fields["points"] = points
    fields["uncapped"] = uncapped
    fields["explanation"] = explanation
    return outcome
"""

_quantity = attrgetter("quantity")


def _pending(s: Step, lines: list[str], builders: list[str], explanation: str,
             prefix: str, counted_later: bool = False) -> None:
    """The applied outcome left pending (see _PENDING), and its builder's source. With
    ``counted_later``, the loop's ``counted`` is what the text's amount sums (a list of
    amounts no step changes later, or one amount), summed by the builder."""
    lines.append(_PENDING.replace("$note", "note" if s.limited else '""').replace(
        "$prefix", prefix))
    if counted_later:
        explanation = ("counted = (sum(counted, ZERO) if type(counted) is list\n"
                       "           else ZERO + counted)  # (what sum([x], ZERO) gives)\n"
                       + explanation)
    builders.append(_BUILDER.replace("$explanation", _indent(explanation)))


def _rate(s: Step, lines: list[str], builders: list[str]) -> None:
    if not s.match_all and not s.ship:
        lines.append(_NO_LINE)
    per = "$c.rule.points / $c.rule.per"
    taken = "nets" if s.match_all else "list(map(nets.__getitem__, picked))"
    general = _RATE_TAKEN.replace("$taken", taken).replace(
        "$amounts", "list(map(mul, taken, repeat($s.rate)))" if s.rate is not None
        else f"[a * {per} for a in taken]")
    if s.ratio_one:  # a rate of exactly 1 on the nets as they are: no multiplication
        lines.append("if one_ok:\n"
                     f"    amounts = {taken}\n"
                     "    counted = uncapped = sum(amounts, ZERO)\n"
                     "else:\n" + _indent(general))
    else:
        lines.append(general)
    if s.ship:
        lines.append(_SHIP.replace("$ship_amount", "shipping * $s.rate" if s.rate is not None
                                   else f"shipping * {per}"))
    lines.append(_limit(s) if s.limited else "points = uncapped\n")
    if s.match_all and not s.ship:  # every line: in C, unless caps share points out
        fast = "base[:n] = map(add, base, amounts)\n"
        lines.append(("if points == uncapped:\n" + _indent(fast) + "else:\n    "
                      "spread(base, picked, amounts, points, uncapped)\n") if s.limited
                     else fast)
    else:
        lines.append("spread(base, picked, amounts, points, uncapped)\n")
    _pending(s, lines, builders,
             'explanation = (f"{$s.prefix} {currency} on {counted!s} {currency} '
             '{$c.what} = {uncapped!s}' + ("{note}" if s.limited else "") + '")\n', "None")


def _multiplier(s: Step, lines: list[str], builders: list[str], multiply: bool,
                read_later: bool, pseudo: bool) -> None:
    if s.match_all:
        if pseudo:  # (without the pseudo-line, nothing reads an all-line one's picked)
            lines.append("picked = range(n + 1)\n")
    else:
        lines.append(_NO_LINE)
    source = "current" if multiply else "base"
    lines.append(_TIER if s.tier else "prefix = $s.prefix\nless = $s.less\n")
    # its increase is added to the current amounts at once when a later multiplier may
    # read them (multipliers are the whole of their phase: nothing else reads them
    # between, so this is what adding it when the next one applies gave)
    increase = multiply and read_later
    # the amounts the text counts are summed when it is written, unless the loop
    # changes them in place before (a capped multiplier on every line shares its
    # points out over the current amounts it read)
    later = not (s.match_all and s.limited and increase)
    general = (f"taken = {source}\n" if s.match_all
               else f"taken = list(map({source}.__getitem__, picked))\n") + (
        _MULTIPLY.replace("counted = sum(taken, ZERO)", "counted = taken") if later
        else _MULTIPLY)
    if s.limited:
        general += _limit(s)
        if increase:
            general += "spread(current, picked, amounts, points, uncapped)\n"
    else:
        if increase:
            general += ("current = list(map(add, current, amounts))\n" if s.match_all
                        else "for i, a in zip(picked, amounts):\n    current[i] += a\n")
        general += "points = uncapped\n"
    if s.match_all or s.limited:
        lines.append(general)
    else:  # one matching line (the common case): its sums without lists
        lines.append("if len(picked) == 1:\n"
                     "    i = picked[0]\n"
                     f"    x = {source}[i]\n"
                     "    counted = x\n"
                     "    a = x * less\n"
                     "    points = uncapped = ZERO + a\n"
                     + ("    current[i] = x + a\n" if increase else "")
                     + "else:\n" + _indent(general))
    note = "{note}" if s.limited else ""
    _pending(s, lines, builders,
             'explanation = (f"{prefix}{counted!s} points{$c.what} = "\n'
             "               f\"{'+' if uncapped >= ZERO else ''}{uncapped!s}" + note
             + '")\n', "prefix", later)


def _fixed(s: Step, lines: list[str]) -> None:
    if not s.match_all:
        lines.append(_NO_LINE)
    if s.plain is not None:  # not limited: one outcome for every order
        lines.append("total($s.fixed)\nappend($s.plain)\n")
        return
    if s.per_item:
        lines.append("items = sum(map(quantity, map(lines.__getitem__, picked)))\n"
                     "uncapped = Decimal($c.rule.points * items)\n"
                     'explanation = f"{$s.prefix}{items} items = {uncapped!s}"\n')
    else:
        lines.append("uncapped = $s.fixed\nexplanation = $s.prefix\n")
    if s.limited:
        lines.append(_limit(s) + "explanation += note\n")
    else:
        lines.append('points, note = uncapped, ""\n')
    # per order, the same points give the same outcome: kept
    lines.append(_APPLIED if s.per_item else _FIXED_KEPT)


def _stamp(s: Step, lines: list[str]) -> None:
    assert s.card is not None
    if not s.match_all:
        lines.append(_NO_LINE)
    lines.append("stamps = sum(map(quantity, map(lines.__getitem__, picked)))\n"
                 if s.card.counts == "items" else "stamps = 1\n")
    lines.append(_STAMP)
    lines.append("uncapped = Decimal(count * $s.card.points)\n" + _limit(s)
                 + "held = (stamps, before, str(points), note)\n"
                 if s.limited else "held = (stamps, before)\n")
    lines.append(_STAMP_KEPT.replace(
        "$unlimited", "" if s.limited else '    points, note = uncapped, ""\n'))


def _window(k: int, window: Window) -> tuple[str, dict[str, Any]]:
    """The test that sets ``miss`` for step ``k``'s ``window`` (as :func:`window_miss`
    does, its parts in the same order), and the names it reads."""
    names: dict[str, Any] = {}
    tests = []
    if window.start is not None or window.end is not None:
        parts = []
        if window.start is not None:
            names[f"ws{k}"] = window.start
            parts.append(f"day < ws{k}")
        if window.end is not None:
            names[f"we{k}"] = window.end
            parts.append(f"day > we{k}")
        tests.append((" or ".join(parts), "day"))
    if window.weekdays:
        names[f"wd{k}"] = frozenset(window.weekdays)
        tests.append((f"weekday not in wd{k}", "weekday"))
    if window.hours:
        inside = []
        for j, (begin, end) in enumerate(window.hours):
            names[f"wb{k}_{j}"] = begin
            if end == MIDNIGHT:  # the end of the day: from its start on
                inside.append(f"wb{k}_{j} <= now")
            else:
                names[f"we{k}_{j}"] = end
                inside.append(f"wb{k}_{j} <= now < we{k}_{j}")
        tests.append((f"not ({' or '.join(inside)})", "(now.hour, now.minute)"))
    source = "miss = None\n"
    for j, (test, miss) in enumerate(tests):
        source += f"{'if' if j == 0 else 'elif'} {test}:\n    miss = {miss}\n"
    return source, names


def _indent(text: str, by: str = "    ") -> str:
    return "".join(by + line if line.strip() else line
                   for line in text.splitlines(keepends=True))


def write(steps: Sequence[Step], multiply: bool) -> tuple[str, dict[str, Any]]:
    """The source of the rule loop for ``steps`` (see the module docstring), and the
    names its window tests read (``w...<k>``)."""
    names: dict[str, Any] = {}
    windows = [s.window for s in steps if s.window is not None]
    # the shipping pseudo-line (index n of the amounts) is kept only when a step can give
    # it points (a rate on shipping) or shares capped points out over it (a capped
    # multiplier on every line): else it stays ZERO, whose products and sums cannot change
    # a digit or an exponent of the amounts beside it (every line's amount is ZERO plus
    # products, so its exponent is at most the pseudo-line's), and it is left out
    pseudo = any(s.ship or (s.code == MULTIPLIER and s.match_all and s.limited)
                 for s in steps)
    out = [_HEAD.replace("$size", "(n + 1)  # index n: the shipping pseudo-line" if pseudo
                         else "n  # (no shipping pseudo-line: see write)")]
    after: list[str] = []  # the pending outcomes' builders
    if any(w.start is not None or w.end is not None for w in windows):
        out.append("    day = local.date()\n")
    if any(w.weekdays for w in windows):
        out.append("    weekday = local.isoweekday()\n")
    if any(w.hours for w in windows):
        out.append("    now = local.time()\n")
    matching = [s for s in steps if not s.match_all]
    if any(s.c.skus for s in matching):
        out.append("    skus = list(map(SKU, lines))\n")
    if any(s.c.cats for s in matching):
        out.append("    categories = list(map(CATEGORY, lines))\n")
    if any(s.cond_kind == 2 for s in steps):
        out.append("    net = order.net_goods\n")
    if any(s.cond_kind == 3 for s in steps):  # a condition tested by its own code
        out.append("    facts = order_facts(order, member, zone)\n")
    phase = 0
    excl_before = False  # an exclusive step earlier in this phase
    for k, s in enumerate(steps):
        lines: list[str] = []
        builders: list[str] = []
        if s.phase != phase:
            if s.phase == 2:
                out.append("    current = list(base)\n")
            out.append("    exclusive = None\n")
            phase = s.phase
            excl_before = False
        if excl_before:
            lines.append(_EXCLUSIVE)
        if s.window is not None:
            test, bound = _window(k, s.window)
            names.update(bound)
            lines.append(_WINDOW.replace("$test\n", test))
        if s.cond_kind == 1:
            assert s.noun in _NOUNS
            lines.append(_ONE_OF.replace("$noun", _NOUNS[s.noun]))
        elif s.cond_kind == 2:
            lines.append(_MIN_NET)
        elif s.cond_kind == 3:
            lines.append(_ANY)
        if s.code != MULTIPLIER:
            lines.append("picked = every\n" if s.match_all else _picked(k, s, names))
        if s.code == RATE:
            _rate(s, lines, builders)
        elif s.code == MULTIPLIER:
            later = any(t.code == MULTIPLIER for t in steps[k + 1:])
            if not s.match_all:
                lines.append(_picked(k, s, names))
            _multiplier(s, lines, builders, multiply, later, pseudo)
        elif s.code == FIXED:
            _fixed(s, lines)
        else:
            _stamp(s, lines)
        if s.excl:
            lines.append("exclusive = $c.id\n")
            excl_before = True
        lines.append("break\n")
        body = "".join(lines)
        out.append(f"    while True:  # step {k}\n" + _indent(_names(body, k), "        "))
        after.extend(_names(b, k) for b in builders)
    out.append("    return outcomes, applied, rewards\n")
    return "".join(out + after), names


def _picked(k: int, s: Step, names: dict[str, Any]) -> str:
    """The statement that sets ``picked`` for step ``k`` that selects lines by SKU or
    category: the positions of the lines it selects, in order (a line is selected if
    its SKU is one of the step's or its category is one of the step's); it reads the
    order's ``skus`` and ``categories`` and names of its own (``m...<k>``)."""
    if len(s.c.skus) + len(s.c.cats) == 1:  # one SKU or one category: list methods, in C
        seq = "skus" if s.c.skus else "categories"
        (names[f"mv{k}"],) = s.c.skus or s.c.cats
        return (f"count = {seq}.count(mv{k})\n"
                f"picked = ([{seq}.index(mv{k})] if count == 1 else\n"
                f"          [i for i in every if {seq}[i] == mv{k}] if count else [])\n")
    tests = []
    if s.c.skus:
        names[f"ms{k}"] = s.c.skus.__contains__
        tests.append(f"map(ms{k}, skus)")
    if s.c.cats:
        names[f"mc{k}"] = s.c.cats.__contains__
        tests.append(f"map(mc{k}, categories)")
    if not tests:  # (selects nothing)
        return "picked = []\n"
    mask = tests[0] if len(tests) == 1 else f"map(or_, {tests[0]}, {tests[1]})"
    return f"picked = list(compress(every, {mask}))\n"


def _names(text: str, k: int) -> str:
    """``text`` with step ``k``'s names: its Step, compiled rule, outcome template and
    pending outcome's builder."""
    return text.replace("$s", f"s{k}").replace("$c", f"c{k}").replace(
        "$t", f"t{k}").replace("$b", f"b{k}")


def outcomes_of(pending: list[Any]) -> tuple[RuleOutcome, ...]:
    """The outcomes of a written-out loop's list, its pending ones built by their step's
    builder (in the evaluator's decimal context, as the loop would have built them)."""
    outer = getcontext()
    setcontext(_BUILDING)  # (what localcontext(CONTEXT) does, without a copy per call)
    try:
        return tuple([o[0](o) if type(o) is tuple else o for o in pending])
    finally:
        setcontext(outer)


#: The decimal context pending outcomes are built in: the evaluator's (a copy of CONTEXT
#: of its own, so that no other use of CONTEXT shares its flags)
_BUILDING = CONTEXT.copy()


def specialise(steps: Sequence[Step], multiply: bool, table_size: int) -> tuple[Pricer, str]:
    """The rule loop for ``steps`` written out and compiled, and its source."""
    source, names = write(steps, multiply)
    names |= {
        "ZERO": ZERO, "ONE": ONE, "Decimal": Decimal, "RuleOutcome": RuleOutcome,
        "not_applied": not_applied, "spread": spread,
        "num_text": num_text, "points_text": points_text, "add": add, "mul": mul,
        "repeat": repeat, "quantity": _quantity, "compress": compress, "or_": or_,
        "SKU": attrgetter("sku"), "CATEGORY": attrgetter("category"), "TABLE_SIZE": table_size,
        "new": object.__new__, "order_facts": order_facts, "Run": Run,
    }
    for k, s in enumerate(steps):
        names[f"s{k}"] = s
        names[f"c{k}"] = s.c
        c = s.c
        names[f"t{k}"] = dict(zip(_FIELDS, (c.id, c.kind, c.text, True, ZERO, ZERO, "",
                                            c.group, 0, (), c.tracked), strict=True))
    exec(compile(source, "<loyaltykit rules: specialised loop>", "exec"), names)
    pricer: Pricer = names["price"]
    return pricer, source

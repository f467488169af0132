"""loyaltykit.analytics is an optional extra: the core never imports numpy or scipy, and
without them the analytics module says how to install them, with a typed error."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

#: Run first in the subprocess: numpy (and scipy) cannot be imported.
_BLOCK = """
import sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Blocker())
"""

_CORE = """
import datetime as dt
import loyaltykit
from loyaltykit import Loyalty, Money, Order, OrderLine, Program, TestClock
from loyaltykit.memory import MemoryStorage

program = Program(id="shop", time_zone="UTC", currency="EUR", point_value=Money("0.01", "EUR"))
clock = TestClock(dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
loyalty = Loyalty(program, MemoryStorage(), clock=clock)
loyalty.enrol("m")
loyalty.record_order(Order(id="o1", member_id="m", placed_at=dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
                           currency="EUR", lines=(OrderLine("sku", 1, Money("10", "EUR")),)))
purchases = list(loyalty.reports.purchases())
outcome = {"purchases": len(purchases),
           "numeric": sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "scipy"))}
try:
    import loyaltykit.analytics
except ImportError as exc:
    outcome.update(error=type(exc).__name__, text=str(exc),
                   loyalty_error=isinstance(exc, loyaltykit.LoyaltyError),
                   import_error=isinstance(exc, ImportError), code=getattr(exc, "code", None),
                   missing=exc.details.get("missing") if hasattr(exc, "details") else None)
else:
    outcome.update(error=None)
print(json.dumps(outcome))
"""


def _run(blocked: tuple[str, ...]) -> dict[str, object]:
    code = f"import json\nBLOCKED = {blocked!r}\n" + textwrap.dedent(_BLOCK) + _CORE
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert 0 == proc.returncode, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("blocked", [("numpy",), ("scipy",)])
def test_without_numpy_or_scipy_the_core_works_and_analytics_says_how_to_install(
        blocked: tuple[str, ...]) -> None:
    result = _run(blocked)
    assert 1 == result["purchases"]  # loyalty.reports works
    assert [] == result["numeric"]
    assert "AnalyticsUnavailable" == result["error"]
    assert (True, True) == (result["loyalty_error"], result["import_error"])
    assert "analytics_unavailable" == result["code"]
    assert "pip install loyaltykit[analytics]" in str(result["text"])
    assert str(result["missing"]).startswith(blocked[0])


def test_with_numpy_the_core_still_does_not_import_it() -> None:
    result = _run(())
    assert [] == result["numeric"]
    assert result["error"] is None  # the control: analytics imports when it can

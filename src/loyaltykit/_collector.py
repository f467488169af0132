"""The cyclic garbage collector paused around a set-based write: a leaf helper, used by
``bulk_earn`` and by the history import for each batch.

A bulk write builds a few objects per member (domain values, their stored copies,
rows, events) and keeps them all until its statements run: 100,000 members keep
millions of containers alive, so the collector runs again and again over a growing
heap (1,351 young and 8 full collections for 20,000 awards on SQLite here, 60% of
the call's CPU time) and frees nothing, for none of them is garbage yet. SQL writes
leave no reference cycles (tests/ledger/test_write_path.py), so pausing the
collector for the write loses nothing; it runs again as soon as the last paused
write ends. Reference counting is untouched: garbage without cycles is freed
at once as always.

The collector is process-wide: a host that switches it off itself keeps it off (it
is enabled again only if it was on when the first paused write began); writes in
several threads pause it once, the last to end resumes it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
_paused = 0  # writes inside collector_paused() now
_resume = False  # the collector was on when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector switched off (see the module
    docstring); it is switched back on when the last such block ends, if it was on."""
    global _paused, _resume
    with _lock:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()

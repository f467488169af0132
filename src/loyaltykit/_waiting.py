"""The pause between retries of a conflicting write, and who takes it.

The write pipeline backs off before it retries a write that conflicted
(:meth:`~loyaltykit._pipeline.WritePipeline.backoff`). By default it sleeps the thread
(:func:`time.sleep`); a caller that must not block its thread (the async facade, whose
calls run on the event loop's thread) sets :data:`WAITER` in the context the write runs in
to a function that takes the pause instead (it raises, and the caller waits with
``asyncio.sleep`` and runs the call again).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["WAITER", "delay", "wait"]

#: Takes the retry's attempt (0, 1, ...) instead of sleeping the thread (None: sleep).
WAITER: ContextVar[Callable[[int], None] | None] = ContextVar("loyaltykit_waiter",
                                                               default=None)


def delay(attempt: int) -> float:
    """A jittered, exponentially growing pause (seconds) before retry ``attempt``, so
    retried writers do not collide again in step."""
    return random.uniform(0, 0.005 * 2 ** min(attempt, 6))


def wait(attempt: int) -> None:
    """Pause before retry ``attempt``: the context's :data:`WAITER`, else a sleep."""
    waiter = WAITER.get()
    if waiter is None:
        time.sleep(delay(attempt))
    else:
        waiter(attempt)

"""Run test workers as real processes or as threads, and collect what they report.

Processes are forked (``multiprocessing.get_context("fork")``): the test process has
already imported loyaltykit, SQLAlchemy and psycopg, so twenty workers start in a
fraction of a second, where ``spawn`` re-imports everything in each (seconds apiece on
a small machine). A forked worker never uses the parent's engines: it opens its own
from the database URL (:func:`worker_loyalty`). Two rules keep forking safe:

* the parent runs no threads of its own while it forks (a :class:`Team` of processes
  uses only process-safe primitives and starts no threads in the parent);
* the parent holds no open SQLite connection to the file when it forks (SQLite's
  per-process lock bookkeeping must not be inherited); dispose the engine first.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import queue
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from loyaltykit import Loyalty, Program
from loyaltykit.sql import SQLStorage

__all__ = ["FORK", "SharedIds", "Team", "wait_until", "worker_loyalty"]

FORK = multiprocessing.get_context("fork")


@contextlib.contextmanager
def worker_loyalty(url: str, program: Program, **engine_kwargs: Any) -> Iterator[Loyalty]:
    """A facade over a storage with its own engine for ``url``, disposed on exit."""
    storage = SQLStorage.from_url(url, **engine_kwargs)
    try:
        yield Loyalty(program, storage)
    finally:
        storage.dispose()


class Team:
    """Workers started together, as forked processes or as threads; each reports the
    value its target returns (or the traceback of what it raised)."""

    def __init__(self, kind: str) -> None:
        if kind not in ("process", "thread"):
            raise ValueError(kind)
        self.kind = kind
        # threads report through a queue without a feeder thread, so a later fork in
        # the same test session never copies a live thread of this one
        self._results: Any = FORK.Queue() if kind == "process" else queue.SimpleQueue()
        self._workers: dict[str, Any] = {}

    # primitives of the right kind for the workers to share
    def barrier(self, parties: int) -> Any:
        return FORK.Barrier(parties) if self.kind == "process" else threading.Barrier(parties)

    def event(self) -> Any:
        return FORK.Event() if self.kind == "process" else threading.Event()

    def start(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        if name in self._workers:
            raise ValueError(f"worker {name!r} started twice")
        results = self._results

        def run() -> None:
            try:
                outcome = (name, True, target(*args))
            except BaseException:
                outcome = (name, False, traceback.format_exc())
            results.put(outcome)

        worker: Any
        if self.kind == "process":
            worker = FORK.Process(target=run, name=name, daemon=True)
        else:
            worker = threading.Thread(target=run, name=name, daemon=True)
        worker.start()
        self._workers[name] = worker

    @property
    def pids(self) -> dict[str, int]:
        return {name: w.pid for name, w in self._workers.items() if self.kind == "process"}

    def results(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for every worker's value; raise AssertionError naming the workers that
        failed (with their tracebacks) or did not finish within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        values: dict[str, Any] = {}
        failures: dict[str, str] = {}
        while len(values) + len(failures) < len(self._workers):
            try:
                name, ok, value = self._results.get(timeout=max(deadline - time.monotonic(),
                                                                0.01))
            except queue.Empty:
                missing = sorted(set(self._workers) - set(values) - set(failures))
                self.stop()
                raise AssertionError(
                    f"workers {missing} did not finish within {timeout} s; failed: "
                    f"{failures}") from None
            (values if ok else failures)[name] = value
        for worker in self._workers.values():
            worker.join(timeout=max(deadline - time.monotonic(), 1.0))
        if failures:
            text = "\n".join(f"--- worker {n} ---\n{tb}" for n, tb in sorted(failures.items()))
            raise AssertionError(f"{len(failures)} worker(s) failed:\n{text}")
        return values

    def stop(self) -> None:
        """Kill this team's processes that are still running (threads are daemons)."""
        if self.kind != "process":
            return
        for worker in self._workers.values():
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=5)

    def __enter__(self) -> Team:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SharedIds:
    """A small ring of UUIDs in shared memory: workers publish the ids they create
    (holds, transactions) and pick others' at random, so they fight over them."""

    def __init__(self, slots: int = 64) -> None:
        self._slots = slots
        self._array = FORK.Array(ctypes.c_char, 16 * slots)  # with a process-safe lock

    def put(self, value: uuid.UUID, rng: random.Random) -> None:
        slot = rng.randrange(self._slots)
        with self._array.get_lock():
            self._array[16 * slot:16 * slot + 16] = value.bytes

    def pick(self, rng: random.Random) -> uuid.UUID | None:
        slot = rng.randrange(self._slots)
        with self._array.get_lock():
            raw = bytes(self._array[16 * slot:16 * slot + 16])
        return None if raw == bytes(16) else uuid.UUID(bytes=raw)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)

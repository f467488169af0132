"""What the benchmarks share: loading a script as a module (``load_script``), in
particular benchmarks/ledger.py for its backend set-up (``open_backend``), its interleaved
measuring and its profiler switch (``ledger_helpers``) and tests/_postgres.py for a
throwaway server (``postgres_tools``); and the planner's statistics after a seed.

A benchmark runs as a script, so this directory is first on its ``sys.path``:
``from _shared import ledger_helpers``. A test loading a benchmark by path puts it there
too (tests/_benchmarks.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

__all__ = ["analyse", "ledger_helpers", "load_script", "postgres_tools"]

#: The repository's ``benchmarks/`` directory.
HERE = Path(__file__).resolve().parent


def load_script(path: Path, name: str) -> ModuleType:
    """The Python file at ``path`` run afresh as module ``name``, registered in
    ``sys.modules`` (so its dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def ledger_helpers() -> ModuleType:
    """benchmarks/ledger.py as a module."""
    return load_script(HERE / "ledger.py", "_loyaltykit_bench_ledger")


def postgres_tools() -> ModuleType:
    """tests/_postgres.py as a module: finds the machine's PostgreSQL binaries and starts
    a throwaway server."""
    return load_script(HERE.parent / "tests" / "_postgres.py", "_loyaltykit_bench_postgres")


def analyse(engine: sa.Engine) -> None:
    """ANALYZE every table after a seed, as a live database has its statistics (else a
    plan depends on whether autovacuum happened to analyse the tables yet)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

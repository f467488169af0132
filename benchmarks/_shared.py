"""What the benchmarks share: benchmarks/ledger.py loaded as a module, for its backend
set-up (``open_backend``), its interleaved measuring and its profiler switch; and the
planner's statistics after a seed.

A benchmark runs as a script, so this directory is first on its ``sys.path``:
``from _shared import ledger_helpers``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

__all__ = ["analyse", "ledger_helpers"]


def ledger_helpers() -> ModuleType:
    """benchmarks/ledger.py as a module (registered, so its dataclasses resolve)."""
    path = Path(__file__).resolve().parent / "ledger.py"
    spec = importlib.util.spec_from_file_location("_loyaltykit_bench_ledger", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def analyse(engine: sa.Engine) -> None:
    """ANALYZE every table after a seed, as a live database has its statistics (else a
    plan depends on whether autovacuum happened to analyse the tables yet)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

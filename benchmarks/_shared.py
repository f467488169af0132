"""What the benchmarks share: loading a script as a module (``load_script``), in
particular benchmarks/ledger.py for its backend set-up (``open_backend``), its interleaved
measuring and its profiler switch (``ledger_helpers``); the PostgreSQL server to measure
on (``postgresql_url``: the one given, else a throwaway one); and the planner's
statistics after a seed.

A benchmark runs as a script, so this directory is first on its ``sys.path``:
``from _shared import ledger_helpers``. A test loading a benchmark by path puts it there
too (tests/_benchmarks.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

__all__ = ["URL_VARIABLE", "analyse", "backend_parser", "ledger_helpers", "load_script",
           "postgresql_url"]

#: The repository's ``benchmarks/`` directory.
HERE = Path(__file__).resolve().parent
#: The environment variable naming the PostgreSQL server to measure on.
URL_VARIABLE = "LOYALTYKIT_BENCH_POSTGRESQL_URL"


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


def backend_parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line every backend benchmark starts from: ``--backend``, ``--quick``
    and ``--url`` (described by the first paragraph of the script's ``doc``)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "memory"), required=True)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--url",
                        help=f"PostgreSQL URL (else ${URL_VARIABLE}, else a throwaway server)")
    return parser


def ledger_helpers() -> ModuleType:
    """benchmarks/ledger.py as a module."""
    return load_script(HERE / "ledger.py", "_loyaltykit_bench_ledger")


@contextlib.contextmanager
def postgresql_url(url: str | None) -> Iterator[tuple[str, bool]]:
    """Yield (the URL of the server to measure on, whether it is a throwaway one): ``url``,
    else ``$LOYALTYKIT_BENCH_POSTGRESQL_URL``, else a server started from the machine's
    PostgreSQL binaries (tests/_postgres.py) and stopped on leaving."""
    url = url or os.environ.get(URL_VARIABLE)
    if url is not None:
        yield url, False
        return
    tools = load_script(HERE.parent / "tests" / "_postgres.py", "_loyaltykit_bench_postgres")
    binaries = tools.find_binaries()
    if binaries is None:
        raise SystemExit(f"no PostgreSQL binaries found: give --url or set {URL_VARIABLE}")
    server = tools.PostgresServer(binaries)
    started = server.start()
    try:
        yield started, True
    finally:
        server.stop()


def analyse(engine: sa.Engine) -> None:
    """ANALYZE every table after a seed, as a live database has its statistics (else a
    plan depends on whether autovacuum happened to analyse the tables yet)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

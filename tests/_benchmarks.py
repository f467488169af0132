"""Load a script of ``benchmarks/`` as a module, so a test can call its functions (its
programs, its hand-written baselines) without running it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

#: The repository's ``benchmarks/`` directory.
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a fresh module, ``loyaltykit_benchmark_<name>``."""
    spec = importlib.util.spec_from_file_location(f"loyaltykit_benchmark_{name}",
                                                  BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

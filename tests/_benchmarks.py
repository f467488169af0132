"""A script of ``benchmarks/`` for a test: loaded as a module, so a test can call its
functions (its programs, its hand-written baselines) without running it; or run as a
plain script, its one line of JSON returned."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

#: The repository's ``benchmarks/`` directory.
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# a benchmark imports benchmarks/_shared.py as a script does, from its own directory
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))

from _shared import load_script  # noqa: E402


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a fresh module, ``loyaltykit_benchmark_<name>``."""
    return load_script(BENCHMARKS / f"{name}.py", f"loyaltykit_benchmark_{name}")


def run_benchmark(name: str, tmp_path: Path, *args: str, postgresql: bool = False,
                  timeout: float = 600) -> dict[str, Any]:
    """Run ``benchmarks/<name>.py *args`` as a plain script in ``tmp_path`` (with
    ``postgresql``, ``--url`` of the test server, its tables emptied), check it exits with
    0 and prints one JSON object, as its last line, and return that object."""
    command = [sys.executable, str(BENCHMARKS / f"{name}.py"), *args]
    if postgresql:
        from conftest import POSTGRESQL

        command += ["--url", POSTGRESQL.get_url()]
        POSTGRESQL.storage()  # empty tables, schema in place
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path, check=False)
    assert 0 == proc.returncode, proc.stderr
    lines = proc.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    assert not any(line.startswith("{") for line in lines[:-1])
    return result
